// The match model: finds the last place the text before the cursor occurred before, however long ago in the document, and
// predicts the character that followed it there (the last place its last ten characters occurred, where they did, else
// its last five). The n-grams see at most their order's worth of context, so a repeated URL, code block or boilerplate
// line is predicted by them a few characters at a time; the match model follows it whole.
import { pathNodeProbabilities } from './logistic';

/** How many ids a match must share before it is trusted: shorter repeats are the n-grams' to predict. */
export const MATCH_MIN_LENGTH = 5;
/**
 * Repeats this long are also indexed, so that where the last short repeat agrees only briefly, a
 * longer one found further back is followed instead.
 */
export const MATCH_LONG_LENGTH = 10;
/** Matched lengths are counted up to this; beyond it, a longer match says nothing new. */
export const MATCH_MAX_LENGTH = 65_535;
/**
 * Where a prediction's state keeps its match: the history's generation, the matched position and
 * the length; where the match has just missed, where it would have gone on and how long it was; and
 * how many characters a recovered match has followed since.
 */
export const MATCH_STATE_SIZE = 6;
const GENERATION = 0;
const POINTER = 1;
const LENGTH = 2;
const MISSED_POINTER = 3;
const MISSED_LENGTH = 4;
const RECOVERED = 5;
/**
 * Only a match this long is followed again after a changed character: after a shorter one, the
 * character that agrees again mostly does so by chance (docs/measurements.md).
 */
const RECOVERY_MIN_LENGTH = 16;
/** A recovered match that follows this many characters again may recover from another miss. */
const RECOVERY_SETTLES = MATCH_MIN_LENGTH;

/** A document's index: its window is tens of thousands of characters. */
const DOCUMENT_HASH_BITS = 18;

/** What the match model predicts at a position: the id that followed the match, and how long the match is (0: none). */
export interface MatchPrediction {
  id: number;
  length: number;
}

/**
 * How sure a match of `length` ids is of the next, before any mixer weighs it: a repeat that has
 * run longer is likelier to go on. The mixer learns how far to trust it; the A/B of this constant
 * barely moved (docs/measurements.md).
 */
const MATCH_CONFIDENCE_OFFSET = 1.5;

/**
 * What `match` predicts at each node of the ids' binary tree (heap-numbered, `bits` deep): along
 * the path to its id, the probability of that id's branch; elsewhere even odds. Mixed bit by bit,
 * the last stage can learn to trust a copy at the bits where it is right, which the online stage's
 * one factor on the guessed id cannot say.
 */
export function matchNodeProbabilities(match: MatchPrediction, bits: number, out: Float32Array): Float32Array {
  if (match.length === 0) return out.fill(0.5);
  return pathNodeProbabilities(match.id, match.length / (match.length + MATCH_CONFIDENCE_OFFSET), bits, out);
}

/**
 * The text read so far (ids), and where each MATCH_MIN_LENGTH-gram last ended in it. A state's
 * slot follows one match along as characters are fed; beam search's hypotheses each carry their
 * own, pointing into the same history, which only ever grows until it is started afresh.
 */
export class MatchModel {
  /** Ids fit 16 bits (the n-grams' bound on the vocabulary too), which halves a large notes' history. */
  private history = new Uint16Array(1024);
  private length = 0;
  private readonly lastEnd: Int32Array;
  /** Where each MATCH_LONG_LENGTH-gram last ended: a candidate that agrees for longer than the last short repeat. */
  private readonly lastLongEnd: Int32Array;
  /** Changes whenever the history is started afresh, so that states pointing into an old one let go. */
  private generation = 1;

  /** `hashBits` and `longHashBits` size the short and the long repeats' indexes. */
  constructor(
    private readonly hashBits = DOCUMENT_HASH_BITS,
    private readonly longHashBits = hashBits,
  ) {
    this.lastEnd = new Int32Array(1 << hashBits).fill(-1);
    this.lastLongEnd = new Int32Array(1 << longHashBits).fill(-1);
  }

  get size(): number {
    return this.length;
  }

  /** Forgets the history, as when the document is read again from a new start. */
  reset(): void {
    this.length = 0;
    this.lastEnd.fill(-1);
    this.lastLongEnd.fill(-1);
    this.generation++;
  }

  /**
   * Appends ids to the history. A MATCH_MIN_LENGTH-gram is indexed once the id after it is known, so
   * that the text being read, whose last n-gram has no successor yet, finds the previous occurrence.
   */
  append(ids: ArrayLike<number>): void {
    if (this.length + ids.length > this.history.length) {
      const grown = new Uint16Array(Math.max(2 * this.history.length, this.length + ids.length));
      grown.set(this.history.subarray(0, this.length));
      this.history = grown;
    }
    for (let i = 0; i < ids.length; i++) {
      if (this.length >= MATCH_MIN_LENGTH) this.lastEnd[this.hashBefore(this.history, this.length)] = this.length;
      if (this.length >= MATCH_LONG_LENGTH)
        this.lastLongEnd[this.longHashBefore(this.history, this.length)] = this.length;
      this.history[this.length++] = ids[i];
    }
  }

  /** A slot that follows no match. */
  startSlot(slot: Float32Array): void {
    slot.fill(0, 0, MATCH_STATE_SIZE);
    slot[GENERATION] = this.generation;
  }

  /**
   * Moves the slot past `id`, given `context`: the ids fed so far, most recent last, ending with
   * `id` (only the last MATCH_LONG_LENGTH matter). A match that predicted `id` grows; otherwise a
   * new one is looked up from the context: the last longer repeat if there is one, else the last
   * short one.
   *
   * A match that would grow to the end of the history was following the text being read itself:
   * a state read again over text the history already holds (as a document's states are, from a
   * little before the cursor, once it has been typed far or jumped) finds its own text as the last
   * repeat. Kept, it would predict nothing at the end and never let go, so it is looked up afresh.
   */
  advance(slot: Float32Array, context: ArrayLike<number>, id: number): void {
    const pointer = slot[POINTER];
    const length = slot[LENGTH];
    const live = slot[GENERATION] === this.generation;
    if (live && length > 0 && pointer + 1 < this.length && this.history[pointer] === id) {
      slot[POINTER] = pointer + 1;
      slot[LENGTH] = Math.min(MATCH_MAX_LENGTH, length + 1);
      slot[MISSED_POINTER] = 0;
      if (slot[RECOVERED] > 0) slot[RECOVERED] = slot[RECOVERED] >= RECOVERY_SETTLES ? 0 : slot[RECOVERED] + 1;
      return;
    }
    // A repeat with one character changed (a number, a name, a typo) goes on after it: the match that missed
    // the character before is followed again if the history's next agrees with this one.
    const missed = live ? slot[MISSED_POINTER] : 0;
    if (missed > 0 && missed + 1 < this.length && this.history[missed] === id) {
      slot[POINTER] = missed + 1;
      // Counted on from where it missed: restarted at MATCH_MIN_LENGTH instead, it served worse.
      slot[LENGTH] = Math.min(MATCH_MAX_LENGTH, slot[MISSED_LENGTH] + 2);
      slot[MISSED_POINTER] = 0;
      slot[RECOVERED] = 1;
      return;
    }
    const missedNow = live && length >= RECOVERY_MIN_LENGTH && slot[RECOVERED] === 0 && pointer + 1 < this.length;
    slot[MISSED_POINTER] = missedNow ? pointer + 1 : 0;
    slot[MISSED_LENGTH] = missedNow ? length : 0;
    slot[GENERATION] = this.generation;
    slot[POINTER] = 0;
    slot[LENGTH] = 0;
    slot[RECOVERED] = 0;
    const n = context.length;
    if (n < MATCH_MIN_LENGTH) return;
    let end = n >= MATCH_LONG_LENGTH ? this.lastLongEnd[this.longHashBefore(context, n)] : -1;
    if (end < 0 || !this.agrees(context, end, MATCH_LONG_LENGTH)) end = this.lastEnd[this.hashBefore(context, n)];
    if (end < 0 || !this.agrees(context, end, MATCH_MIN_LENGTH)) return;
    slot[POINTER] = end;
    slot[LENGTH] = MATCH_MIN_LENGTH;
  }

  /** What the slot's match predicts next; length 0 when it follows none. */
  predict(slot: Float32Array, out: MatchPrediction): MatchPrediction {
    const pointer = slot[POINTER];
    if (slot[GENERATION] !== this.generation || slot[LENGTH] === 0 || pointer >= this.length) {
      out.id = -1;
      out.length = 0;
    } else {
      out.id = this.history[pointer];
      out.length = slot[LENGTH];
    }
    return out;
  }

  /** Whether the `length` ids of the history before `end` are the last `length` of `context` (hashes collide). */
  private agrees(context: ArrayLike<number>, end: number, length: number): boolean {
    const n = context.length;
    for (let k = 1; k <= length; k++) if (this.history[end - k] !== context[n - k]) return false;
    return true;
  }

  private longHashBefore(ids: ArrayLike<number>, end: number): number {
    return hashBefore(ids, end, MATCH_LONG_LENGTH, this.longHashBits, 0x5bd1e995, 0x1b873593);
  }

  private hashBefore(ids: ArrayLike<number>, end: number): number {
    return hashBefore(ids, end, MATCH_MIN_LENGTH, this.hashBits, 0x2c1b3c6d, 0x297a2d39);
  }
}

/** A `bits`-wide hash of the `length` ids before `end`; each index its own constants, so that their collisions differ. */
function hashBefore(
  ids: ArrayLike<number>,
  end: number,
  length: number,
  bits: number,
  multiplier: number,
  increment: number,
): number {
  let h = 0;
  for (let k = end - length; k < end; k++) h = Math.imul(h ^ ids[k], multiplier) + increment;
  return h >>> (32 - bits);
}
