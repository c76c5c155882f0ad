// The openers of a document's paragraphs (their first word and the character after it) read one after another: in a
// dialogue, a transcript or questions and answers, who speaks next depends on who spoke last, which the document's
// n-gram, reading only the last few characters, cannot see.
import { type Vocabulary, WORD_CHAR } from './vocab';

/** Where a position stands: outside an opener, at a paragraph's start before its first word, or in that word. */
const OUTSIDE = 0;
const BEFORE_WORD = 1;
const IN_WORD = 2;
/** Ends each opener in the openers' sequence; no opener holds a line break except as its last character. */
const SEPARATOR = '\n';

/** Slot layout: phase, whether the line so far is blank, characters of the current opener, known context, context. */
const PHASE = 0;
const BLANK_LINE = 1;
const TYPED = 2;
const KNOWN = 3;
const CONTEXT = 4;

/**
 * Reads text one character at a time, in a slot of floats so that it can ride in a predictor's
 * state, and keeps the last characters of the openers' sequence so far. A paragraph starts after a
 * blank line. The document's owner feeds the same reader its text and counts the sequence in an
 * n-gram; the predictor asks that n-gram what follows while a paragraph's opener is being typed.
 */
export class OpenerReader {
  /** Floats in a slot. */
  readonly size: number;
  private readonly wordIds: Uint8Array;
  private readonly spaceIds: Uint8Array;
  private readonly newline: number;
  private readonly separator: number;

  constructor(
    vocabulary: Vocabulary,
    private readonly contextLength: number,
  ) {
    this.size = CONTEXT + contextLength;
    this.wordIds = Uint8Array.from(vocabulary.chars, (c, id) => (id > 0 && WORD_CHAR.test(c) ? 1 : 0));
    this.spaceIds = Uint8Array.from(vocabulary.chars, (c) => (/\s/u.test(c) ? 1 : 0));
    this.newline = vocabulary.chars.indexOf('\n');
    this.separator = vocabulary.id(SEPARATOR);
  }

  /** A slot at the start of a text, which counts as the start of a paragraph. */
  start(slot: Float32Array): void {
    slot.fill(0, 0, this.size);
    slot[PHASE] = BEFORE_WORD;
  }

  /** Reads one id; `emit` receives what it adds to the openers' sequence. */
  read(slot: Float32Array, id: number, emit?: (id: number) => void): void {
    const phase = slot[PHASE];
    // Blank lines and indentation before an opener are not part of it.
    if (phase === IN_WORD || (phase === BEFORE_WORD && (slot[TYPED] > 0 || !this.spaceIds[id]))) {
      this.push(slot, id, emit);
      slot[TYPED]++;
      if (this.wordIds[id]) slot[PHASE] = IN_WORD;
      else if (phase === IN_WORD) {
        this.push(slot, this.separator, emit);
        slot[PHASE] = OUTSIDE;
      }
    }
    if (id === this.newline) {
      if (slot[BLANK_LINE]) {
        slot[PHASE] = BEFORE_WORD;
        slot[TYPED] = 0;
      }
      slot[BLANK_LINE] = 1;
    } else if (!this.spaceIds[id]) {
      slot[BLANK_LINE] = 0;
    }
  }

  /**
   * While an opener is being typed, the openers' sequence before the next character (most recent
   * last) and how much of it is the opener typed so far; undefined elsewhere.
   */
  context(slot: Float32Array): { ids: Float32Array; typed: number } | undefined {
    if (slot[PHASE] === OUTSIDE) return undefined;
    return { ids: this.tail(slot), typed: slot[TYPED] };
  }

  /** The last characters of the openers' sequence read so far, most recent last. */
  tail(slot: Float32Array): Float32Array {
    return slot.subarray(this.size - slot[KNOWN], this.size);
  }

  private push(slot: Float32Array, id: number, emit?: (id: number) => void): void {
    const context = slot.subarray(CONTEXT, this.size);
    context.copyWithin(0, 1);
    context[this.contextLength - 1] = id;
    slot[KNOWN] = Math.min(this.contextLength, slot[KNOWN] + 1);
    emit?.(id);
  }
}
