// A token typed again on the same line or just below: an issue's number in its link (`[#383](…/pull/383)`), a version
// in a changelog's compare link, a name in its call, a word a table's column repeats. Once a token's first characters
// are typed, the last token on the line (else on the line before) that begins with them says how it goes on. The
// n-grams and the match models read the characters just before, which are the link's or the path's, not the token's.
import { currentLineIsWhole, currentLineOf, lineBeforeOf } from './line-above';
import { pathNodeProbabilities } from './logistic';
import { CHARACTER_CLASS, characterClasses } from './online-mixer';
import { oncePerVocabulary, type Vocabulary } from './vocab';

/**
 * How often a guess is right, by how many of the token's characters are typed (1, 2, 3, 4 or more), as the training
 * notes showed (docs/measurements.md): after one character, about as often as not.
 */
const GUESSES_RIGHT = [0.5, 0.79, 0.9, 0.95];

/** What the echo guesses next, and how many of the token's characters were typed when it did (0: no guess). */
export interface EchoGuess {
  id: number;
  typed: number;
}

/**
 * What a guess predicts at each node of the ids' tree (heap-numbered, `bits` deep): along the guessed id's path, as
 * sure at each node as makes it right as often as GUESSES_RIGHT says; elsewhere even odds.
 */
export function echoNodeProbabilities(guess: EchoGuess, bits: number, out: Float32Array): Float32Array {
  const right = GUESSES_RIGHT[Math.min(guess.typed, GUESSES_RIGHT.length) - 1];
  return pathNodeProbabilities(guess.id, right ** (1 / bits), bits, out);
}

/** The vocabulary's TokenEcho, made once: every document's predictor reads the same one. */
export const tokenEchoFor = oncePerVocabulary((vocabulary) => new TokenEcho(vocabulary));

/** Reads, from the line being typed and the line before, how the token being typed goes on; per vocabulary. */
export class TokenEcho {
  /** Per id, whether it is a token's character: a letter, a digit or an underscore. */
  private readonly inToken: Uint8Array;

  constructor(vocabulary: Vocabulary) {
    this.inToken = characterClasses(vocabulary).map((characterClass) =>
      characterClass === CHARACTER_CLASS.word ? 1 : 0,
    );
  }

  /**
   * Leaves in `out` the id after the typed part of the token at the end of the line, as the last earlier token that
   * begins with that part goes on; typed 0 where no token is being typed or none earlier goes on from it. A token that
   * ended where the typed part does is passed over: guessing what followed it cost more than it gained
   * (docs/measurements.md).
   */
  guess(lines: Float32Array, out: EchoGuess): EchoGuess {
    out.id = -1;
    out.typed = 0;
    if (!currentLineIsWhole(lines)) return out;
    const line = currentLineOf(lines);
    const n = line.length;
    let start = n;
    while (start > 0 && this.inToken[line[start - 1]]) start--;
    if (start === n) return out;
    const before = lineBeforeOf(lines);
    const id = this.goesOn(line, start, line, start) ?? this.goesOn(before, before.length, line, start);
    if (id !== undefined) {
      out.id = id;
      out.typed = n - start;
    }
    return out;
  }

  /**
   * The id after `typed[from…]` in the last token of `text` (before `end`) that begins with it and goes on past it;
   * undefined where none does.
   */
  private goesOn(text: Float32Array, end: number, typed: Float32Array, from: number): number | undefined {
    const length = typed.length - from;
    let tokenEnd = end;
    while (tokenEnd > 0) {
      while (tokenEnd > 0 && !this.inToken[text[tokenEnd - 1]]) tokenEnd--;
      let tokenStart = tokenEnd;
      while (tokenStart > 0 && this.inToken[text[tokenStart - 1]]) tokenStart--;
      if (tokenEnd - tokenStart > length) {
        let k = 0;
        while (k < length && text[tokenStart + k] === typed[from + k]) k++;
        if (k === length) return text[tokenStart + length];
      }
      tokenEnd = tokenStart;
    }
    return undefined;
  }
}
