// A token typed again on the same line or just below: an issue's number in its link (`[#383](…/pull/383)`), a version
// in a changelog's compare link, a name in its call, a word a table's column repeats. Once a token's first characters
// are typed, the last token on the line (else on the line before) that begins with them says how it goes on. The
// n-grams and the match models read the characters just before, which are the link's or the path's, not the token's.
// How often such a guess comes right differs between a path, an issue's link and prose, so each document learns it.
// Where no token begins with the typed part as typed, one that does but for case is read, in the typed part's case: a
// link's path spells its text in lower case (`[`ClientSecretCredential`](…/clientsecretcredential)`).
import { currentLineIsWhole, currentLineOf, lineBeforeOf } from './line-above';
import { CHARACTER_CLASS, characterClasses } from './online-mixer';
import { oncePerVocabulary, type Vocabulary } from './vocab';
import { characterShapes, DIGIT_SHAPE, wordLetters } from './word-model';

/**
 * How often a guess is right, by how many of the token's characters are typed (1, 2, 3, 4 or more), as the training
 * notes showed (docs/measurements.md): after one character, about as often as not. A document starts from these.
 */
const GUESSES_RIGHT = [0.5, 0.79, 0.9, 0.95];
/** The same for a token that begins with the typed part but for case. */
const FOLDED_GUESSES_RIGHT = [0.41, 0.65, 0.8, 0.9];
/** The training notes' rates count as this many guesses of each row when a document starts. */
const PRIOR_GUESSES = 4;
/** A row counts this many guesses at most, so that its rate goes on following the document. */
const MAX_GUESSES = 255;
/**
 * The kinds of guess counted apart, each from its own rates: a token found as typed or but for case, each where the
 * typed part ends in a letter and where it ends in a digit.
 */
const RATES_BY_KIND = [GUESSES_RIGHT, FOLDED_GUESSES_RIGHT, GUESSES_RIGHT, FOLDED_GUESSES_RIGHT];
const FOLDED_KIND = 1;
const NUMBER_KIND = 2;
/** characterShapes' shapes fit 4 bits. */
const SHAPES = 16;
/** No guess is read as surer than this: one that has never failed may yet. */
const MAX_SURENESS = 0.999;

/**
 * What the echo guesses next, how many of the token's characters were typed when it did (0: no guess), the id
 * before the token (-1 at the line's start), and whether the earlier token began with the typed part only but for case.
 */
export interface EchoGuess {
  id: number;
  typed: number;
  before: number;
  folded: boolean;
  /** Whether the typed part ends in a digit: a number is typed again more often than a path's word. */
  number: boolean;
}

/**
 * How often a document's guesses came right, by how many of the token's characters were typed and the shape of the
 * character before the token (a path's `/`, an issue's `#`, prose's space): how sure the echo's guess is read as.
 */
export class EchoConfidence {
  private readonly right = new Float32Array(RATES_BY_KIND.length * GUESSES_RIGHT.length * SHAPES);
  private readonly guesses = new Float32Array(this.right.length).fill(PRIOR_GUESSES);
  private readonly shapes: Uint8Array;

  constructor(vocabulary: Vocabulary) {
    this.shapes = characterShapes(vocabulary);
    const rates = RATES_BY_KIND.flat();
    for (let row = 0; row < this.right.length; row++) this.right[row] = PRIOR_GUESSES * rates[Math.floor(row / SHAPES)];
  }

  /** The row that counts `guess`. */
  rowOf(guess: EchoGuess): number {
    const kind = (guess.folded ? FOLDED_KIND : 0) + (guess.number ? NUMBER_KIND : 0);
    const typed = kind * GUESSES_RIGHT.length + Math.min(guess.typed, GUESSES_RIGHT.length) - 1;
    return typed * SHAPES + (guess.before < 0 ? 0 : this.shapes[guess.before]);
  }

  /** How sure a guess of row `row` is. */
  sureness(row: number): number {
    return Math.min(MAX_SURENESS, this.right[row] / this.guesses[row]);
  }

  /** Counts a guess of row `row` that came right or not. */
  learn(row: number, right: boolean): void {
    if (this.guesses[row] < MAX_GUESSES) this.guesses[row]++;
    else this.right[row] *= (MAX_GUESSES - 1) / MAX_GUESSES;
    if (right) this.right[row]++;
  }
}

/** The vocabulary's TokenEcho, made once: every document's predictor reads the same one. */
export const tokenEchoFor = oncePerVocabulary((vocabulary) => new TokenEcho(vocabulary));

/** Reads, from the line being typed and the line before, how the token being typed goes on; per vocabulary. */
export class TokenEcho {
  /** Per id, whether it is a token's character: a letter, a digit or an underscore. */
  private readonly inToken: Uint8Array;
  /** Per id, its shape (characterShapes), which says whether it is a digit. */
  private readonly shapes: Uint8Array;
  /**
   * Per token character, the id of its lower case (wordLetters) and of its upper case, where the vocabulary has them;
   * else its own.
   */
  private readonly lower: Int32Array;
  private readonly upper: Int32Array;

  constructor(vocabulary: Vocabulary) {
    this.inToken = characterClasses(vocabulary).map((characterClass) =>
      characterClass === CHARACTER_CLASS.word ? 1 : 0,
    );
    this.shapes = characterShapes(vocabulary);
    this.lower = wordLetters(vocabulary);
    this.upper = Int32Array.from(vocabulary.chars, (char, id) => {
      const upper = vocabulary.id(char.toUpperCase());
      return upper > 0 ? upper : id;
    });
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
    out.before = -1;
    out.folded = false;
    out.number = false;
    if (!currentLineIsWhole(lines)) return out;
    const line = currentLineOf(lines);
    const n = line.length;
    let start = n;
    while (start > 0 && this.inToken[line[start - 1]]) start--;
    if (start === n) return out;
    const before = lineBeforeOf(lines);
    let id =
      this.goesOn(line, start, line, start, undefined) ?? this.goesOn(before, before.length, line, start, undefined);
    if (id === undefined) {
      id =
        this.goesOn(line, start, line, start, this.lower) ??
        this.goesOn(before, before.length, line, start, this.lower);
      if (id !== undefined) {
        out.folded = true;
        id = this.inCaseOf(line, start, id);
      }
    }
    if (id !== undefined) {
      out.id = id;
      out.typed = n - start;
      out.number = this.shapes[line[n - 1]] === DIGIT_SHAPE;
      if (start > 0) out.before = line[start - 1];
    }
    return out;
  }

  /**
   * The id after `typed[from…]` in the last token of `text` (before `end`) that begins with it (as `fold` maps both, if
   * given) and goes on past it; undefined where none does.
   */
  private goesOn(
    text: Float32Array,
    end: number,
    typed: Float32Array,
    from: number,
    fold: Int32Array | undefined,
  ): number | undefined {
    const length = typed.length - from;
    let tokenEnd = end;
    while (tokenEnd > 0) {
      while (tokenEnd > 0 && !this.inToken[text[tokenEnd - 1]]) tokenEnd--;
      let tokenStart = tokenEnd;
      while (tokenStart > 0 && this.inToken[text[tokenStart - 1]]) tokenStart--;
      if (tokenEnd - tokenStart > length) {
        let k = 0;
        if (fold) while (k < length && fold[text[tokenStart + k]] === fold[typed[from + k]]) k++;
        else while (k < length && text[tokenStart + k] === typed[from + k]) k++;
        if (k === length) return text[tokenStart + length];
      }
      tokenEnd = tokenStart;
    }
    return undefined;
  }

  /** `id` in the case `typed[from…]` is in: lower where it is all lower case, upper where all upper (two or more). */
  private inCaseOf(typed: Float32Array, from: number, id: number): number {
    let lower = true;
    let upper = typed.length - from > 1;
    for (let k = from; k < typed.length; k++) {
      if (this.lower[typed[k]] !== typed[k]) lower = false;
      if (this.upper[typed[k]] !== typed[k]) upper = false;
    }
    return lower ? this.lower[id] : upper ? this.upper[id] : id;
  }
}
