// The character above: the one at the same column of the line before, where that line is as long. Tables, aligned
// comments and indented blocks repeat by column, which the contexts of the characters before see only where the whole
// line repeats. A document learns, as it is typed, what comes below each character after each character before, and
// the last stage of the mixture weighs that as one more input.
import { idBits } from './logistic';
import { CHARACTER_CLASS, characterClasses } from './online-mixer';
import type { Vocabulary } from './vocab';

/** Characters of a line kept; past them a line has nothing above it. */
export const LINE_KEPT = 320;
/** Where a prediction's state keeps the two lines: their lengths, then the line before, then the line being typed. */
export const LINES_STATE_SIZE = 2 + 2 * LINE_KEPT;
const BEFORE_LENGTH = 0;
const CURRENT_LENGTH = 1;
const BEFORE = 2;
const CURRENT = 2 + LINE_KEPT;

/** Moves a lines slot past `id`; `lineBreak` is the id that ends a line. */
export function advanceLines(slot: Float32Array, id: number, lineBreak: number): void {
  const length = slot[CURRENT_LENGTH];
  if (id === lineBreak) {
    slot.copyWithin(BEFORE, CURRENT, CURRENT + length);
    slot[BEFORE_LENGTH] = length;
    slot[CURRENT_LENGTH] = 0;
    return;
  }
  // A line past LINE_KEPT stays at it, where nothing is above.
  if (length < LINE_KEPT) {
    slot[CURRENT + length] = id;
    slot[CURRENT_LENGTH] = length + 1;
  }
}

/** The line being typed, as far as the slot keeps it; a view. */
export function currentLineOf(slot: Float32Array): Float32Array {
  return slot.subarray(CURRENT, CURRENT + slot[CURRENT_LENGTH]);
}

/** The line before the one being typed, as far as the slot keeps it; a view. */
export function lineBeforeOf(slot: Float32Array): Float32Array {
  return slot.subarray(BEFORE, BEFORE + slot[BEFORE_LENGTH]);
}

/** Whether the line being typed is kept whole: past LINE_KEPT characters its end is not. */
export const currentLineIsWhole = (slot: ArrayLike<number>): boolean => slot[CURRENT_LENGTH] < LINE_KEPT;

/** The id above the next character, or -1 where the line before is shorter or the line has run past LINE_KEPT. */
export function characterAbove(slot: ArrayLike<number>): number {
  const column = slot[CURRENT_LENGTH];
  return column < slot[BEFORE_LENGTH] ? slot[BEFORE + column] : -1;
}

/** Rows of the model, chosen by a hash of the character above and the one before. */
const ABOVE_ROW_BITS = 11;
/** A node's rate of learning starts at 1/1.5 and slows as it learns, down to 1/(this + 1.5). */
const COUNT_LIMIT = 255;

/** A row of the model: its probability of a 1 at each node, and how often each node has learnt. */
interface AboveRow {
  probabilities: Float32Array;
  counts: Uint8Array;
}

/**
 * What came below a character after a character before: for each row, the probability of a 1 at
 * each node of the ids' binary tree (heap-numbered), learnt from what was typed there. A document
 * teaches few of the rows, so each is made when it first learns: every document has a model, and
 * all its rows would take megabytes.
 */
export class AboveModel {
  private readonly bits: number;
  private readonly rows: Array<AboveRow | undefined> = new Array(1 << ABOVE_ROW_BITS);
  /** What a row that has learnt nothing says: even odds at every node. Never written. */
  private readonly untaught: Float32Array;
  private readonly classes: Uint8Array;

  constructor(vocabulary: Vocabulary) {
    this.classes = characterClasses(vocabulary);
    this.bits = idBits(vocabulary.size);
    this.untaught = new Float32Array(1 << this.bits).fill(0.5);
  }

  /**
   * The row for a lines slot and the id before it (-1 for none), or -1 where nothing is above or a
   * word's character is: below a letter, what comes is prose's, which the line before does not
   * align, and read there the rows cost more than they gave (docs/measurements.md).
   */
  rowAt(lines: ArrayLike<number>, previousId: number): number {
    const above = characterAbove(lines);
    if (above < 0 || this.classes[above] === CHARACTER_CLASS.word) return -1;
    return Math.imul((above + 1) * 65_536 + previousId + 1, 0x9e3779b1) >>> (32 - ABOVE_ROW_BITS);
  }

  /** Row `row`'s probability of a 1 at each node; a view, not a copy, and not to be written. */
  nodesOf(row: number): Float32Array {
    return this.rows[row]?.probabilities ?? this.untaught;
  }

  /** Learns that `target` came where the row was `row`. */
  learn(row: number, target: number): void {
    const { probabilities, counts } = (this.rows[row] ??= {
      probabilities: this.untaught.slice(),
      counts: new Uint8Array(1 << this.bits),
    });
    let node = 1;
    for (let depth = this.bits - 1; depth >= 0; depth--) {
      const bit = (target >>> depth) & 1;
      const count = counts[node];
      probabilities[node] += (bit - probabilities[node]) / (count + 1.5);
      if (count < COUNT_LIMIT) counts[node] = count + 1;
      node = 2 * node + bit;
    }
  }
}
