// A Markdown link to a heading of its own note, `[Getting Started](#getting-started)`, spells its anchor from the
// link's text: lowercased, spaces as hyphens, punctuation dropped, as GitHub and most renderers make a heading's id. A
// table of contents is a column of them. The contexts before the anchor know only that some lowercase word comes; the
// link's text, a few characters back on the same line, says which, character by character.
import { currentLineOf } from './line-above';
import { guessNodeProbabilities } from './logistic';
import { oncePerVocabulary, type Vocabulary } from './vocab';

/** What an id becomes in an anchor: another id (itself, lowercased, or a hyphen for a space), nothing, or no anchor can be spelt. */
const DROPPED = -1;
const UNSPELLABLE = -2;

/**
 * How often a guess is right, as the training notes showed (docs/measurements.md); less often at an anchor's first
 * character, which a hand-typed anchor may spell otherwise, but sureness by position served no better. A guess is of
 * its character, so each node on the character's path is this sure to the power 1 / the depth.
 */
const GUESSES_RIGHT = 0.98;

/** What a guess of `id` predicts at each node of the ids' tree (heap-numbered, `bits` deep). */
export const anchorNodeProbabilities = (id: number, bits: number, out: Float32Array): Float32Array =>
  guessNodeProbabilities(id, GUESSES_RIGHT, bits, out);

/** The vocabulary's AnchorGuesser, made once: every document's predictor reads the same one. */
export const anchorGuesserFor = oncePerVocabulary((vocabulary) => new AnchorGuesser(vocabulary));

/** Reads, from the line being typed, the anchor a link's text spells; per vocabulary (anchorGuesserFor). */
export class AnchorGuesser {
  /** Per id, what it becomes in an anchor spelt from a link's text. */
  private readonly spelt: Int32Array;
  /** Per id, whether it may stand in an anchor being typed. */
  private readonly inAnchor: Uint8Array;
  private readonly open: number;
  private readonly close: number;
  private readonly parenthesis: number;
  private readonly closingParenthesis: number;
  private readonly hash: number;
  private readonly space: number;
  /** False where the vocabulary lacks a character a link needs: then it guesses nothing. */
  private readonly usable: boolean;

  constructor(vocabulary: Vocabulary) {
    const idOf = new Map(vocabulary.chars.map((c, id) => [c, id]));
    const required = (c: string) => idOf.get(c) ?? -1;
    this.open = required('[');
    this.close = required(']');
    this.parenthesis = required('(');
    this.closingParenthesis = required(')');
    this.hash = required('#');
    this.space = required(' ');
    const hyphen = required('-');
    this.usable = [this.open, this.close, this.parenthesis, this.closingParenthesis, this.hash, hyphen].every(
      (id) => id >= 0,
    );
    const V = vocabulary.size;
    this.spelt = new Int32Array(V).fill(DROPPED);
    this.inAnchor = new Uint8Array(V);
    vocabulary.chars.forEach((c, id) => {
      if (c === ' ') this.spelt[id] = hyphen;
      else if (c === '-' || c === '_' || /^[\p{L}\p{N}]$/u.test(c))
        this.spelt[id] = idOf.get(c.toLowerCase()) ?? UNSPELLABLE;
      else if (c === '\uFFFD') this.spelt[id] = UNSPELLABLE;
      this.inAnchor[id] = /^[^\s()[\]#]$/u.test(c) ? 1 : 0;
    });
  }

  /**
   * The id an anchor being typed at the end of the line goes on with, as the link's text spells
   * it (the closing parenthesis once it is spelt out); -1 where the line does not end in an anchor
   * that its link's text begins to spell.
   */
  guess(lines: Float32Array): number {
    if (!this.usable) return -1;
    const line = currentLineOf(lines);
    const n = line.length;
    let start = n;
    while (start > 0 && this.inAnchor[line[start - 1]]) start--;
    if (
      start < 4 ||
      line[start - 1] !== this.hash ||
      line[start - 2] !== this.parenthesis ||
      line[start - 3] !== this.close
    )
      return -1;
    const textEnd = start - 3;
    let textStart = textEnd;
    while (textStart > 0 && line[textStart - 1] !== this.open && line[textStart - 1] !== this.close) textStart--;
    if (textStart === 0 || line[textStart - 1] !== this.open) return -1;
    // Spaces around the text make no hyphens.
    while (textStart < textEnd && line[textStart] === this.space) textStart++;
    let last = textEnd;
    while (last > textStart && line[last - 1] === this.space) last--;
    let typed = start;
    for (let k = textStart; k < last; k++) {
      const spelt = this.spelt[line[k]];
      if (spelt === UNSPELLABLE) return -1;
      if (spelt === DROPPED) continue;
      if (typed === n) return spelt;
      if (line[typed] !== spelt) return -1;
      typed++;
    }
    return typed === n ? this.closingParenthesis : -1;
  }
}
