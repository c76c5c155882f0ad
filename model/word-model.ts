// The word model: what follows the current word's typed part given the word before it, and given the two before it.
// The n-grams see a fixed number of characters, so after a long word they have lost the one before it ("install the
// package", "npm install --save"), and they count every spelling of the gap between two words (a space, a line break,
// ", ") as another context; this model skips the gap and sees the words whole.

import { CHARACTER_CLASS, previousClass } from './online-mixer';
import { oncePerVocabulary } from './vocab';
import { nestingAfter, nestingOf } from './nesting';

/**
 * Where a prediction's state keeps its words: the previous word's hash (two 16-bit halves, as
 * float32 holds 24 bits exactly), the current word's, its length, the word before the previous,
 * how many characters the line has so far (lineColumn()), the shapes of the runs before
 * (shapeRuns()), those the line began with (lineStartRuns()) and the Markdown spans the position
 * is in (nesting()).
 */
export const WORD_STATE_SIZE = 11;
/** A word's typed part is hashed up to this many characters; a longer one is a token, not a word. */
const MAX_WORD_LENGTH = 24;
/** Contexts a table holds at most (a power of two); once the largest is half full, new contexts are not learnt. */
const MAX_CONTEXT_BITS = 20;
/** Successor entries at most, 8 bytes each. */
const MAX_ENTRIES = 2 << 20;
/** Counts stop here, so that they fit 16 bits; the ratios between a context's counts are what matter. */
const MAX_COUNT = 65_535;
/** How full a context table gets before it grows: linear probing slows sharply past a half. */
const MAX_LOAD = 0.5;

const PREVIOUS_HIGH = 0;
const WORD_HIGH = 2;
const WORD_LENGTH = 4;
const EARLIER_HIGH = 5;
const LINE_COLUMN = 7;
const SHAPE_RUNS = 8;
const LINE_START_RUNS = 9;
const NESTING = 10;
/** The runs shapeRuns() tells apart, at 4 bits each: as many as float32 holds exactly. */
const RUNS_KEPT = 6;
/** The runs a line begins with that lineStartRuns() keeps; how many it has is kept above their shapes. */
const LINE_START_KEPT = 3;
const LINE_START_COUNT = 1 << (4 * LINE_START_KEPT);
/** The column stops counting here: past it, a line is long, however long. */
const MAX_COLUMN = 255;

const halves = (slot: ArrayLike<number>, high: number) => ((slot[high] << 16) | slot[high + 1]) >>> 0;

function setHalves(slot: Float32Array, high: number, hash: number): void {
  slot[high] = hash >>> 16;
  slot[high + 1] = hash & 0xffff;
}

/** In wordLetters, an id that ends a word rather than spelling one, and one that also ends a line. */
const NOT_IN_WORD = -1;
const LINE_END = -2;

/**
 * The shape of each id of `vocabulary`, which the contexts of shape read (context-mixing.ts): its
 * class among line break, space, upper and lower case letters, digits, brackets, quotes and a
 * few groups of punctuation. Names differ where their shapes agree (`foo(bar, 1)` and `baz(qux,
 * 2)`, "## Install" and "## Usage"), so what follows a shape in one is learnt for the others, which
 * the contexts of the characters themselves cannot carry over. Built once per vocabulary.
 */
export const characterShapes = oncePerVocabulary((vocabulary) => Uint8Array.from(vocabulary.chars, shapeOf));

const SHAPE_GROUPS = ['([{', ')]}', '"\'`', '.,;:!?', '#', '-*_', '/\\|', '=+<>', '@$%&^~'];
/** The shape characterShapes gives a digit. */
export const DIGIT_SHAPE = 5;

function shapeOf(char: string): number {
  if (char === '\n') return 1;
  if (char === ' ' || char === '\t') return 2;
  if (/\p{Lu}/u.test(char)) return 3;
  if (/\p{L}/u.test(char)) return 4;
  if (/\p{N}/u.test(char)) return DIGIT_SHAPE;
  const group = SHAPE_GROUPS.findIndex((members) => members.includes(char));
  return group < 0 ? 15 : 6 + group;
}

/**
 * What each id of `vocabulary` spells in a word: the id of its lower-case form where the
 * vocabulary has it, else its own, so that a word's contexts are the same capitalised or not (a
 * sentence's first word, a name and the address made of it: "Volker Mische (volker.mische@…)");
 * NOT_IN_WORD for a character that is not a word's (previousClass, online-mixer.ts), LINE_END for a
 * line break. Built once per vocabulary.
 */
export const wordLetters = oncePerVocabulary((vocabulary) =>
  Int32Array.from(vocabulary.chars, (char, id) => {
    const characterClass = previousClass(char);
    if (characterClass === CHARACTER_CLASS.lineBreak) return LINE_END;
    if (characterClass !== CHARACTER_CLASS.word) return NOT_IN_WORD;
    const lower = vocabulary.id(char.toLowerCase());
    return lower > 0 ? lower : id;
  }),
);

/**
 * Moves a word slot past `id`: a word character extends the current word, another ends it;
 * `letters` is wordLetters, `shapes` characterShapes, for a slot whose shapeRuns() and
 * lineStartRuns() are read, and `marks` nestingMarks (nesting.ts), for one whose nesting() is (the
 * word models' own slots go without).
 */
export function advanceWords(
  slot: Float32Array,
  id: number,
  letters: Int32Array,
  shapes?: Uint8Array,
  marks?: Uint8Array,
): void {
  if (marks) slot[NESTING] = nestingAfter(slot[NESTING], marks[id]);
  const length = slot[WORD_LENGTH];
  const letter = letters[id];
  slot[LINE_COLUMN] = letter === LINE_END ? 0 : Math.min(MAX_COLUMN, slot[LINE_COLUMN] + 1);
  if (shapes) {
    const shape = shapes[id];
    const runs = slot[SHAPE_RUNS];
    const newRun = (runs & 15) !== shape;
    if (newRun) slot[SHAPE_RUNS] = ((runs << 4) | shape) & ((1 << (4 * RUNS_KEPT)) - 1);
    const lineStart = slot[LINE_START_RUNS];
    const began = Math.floor(lineStart / LINE_START_COUNT);
    if (letter === LINE_END) slot[LINE_START_RUNS] = 0;
    else if (began < LINE_START_KEPT && (began === 0 || newRun))
      slot[LINE_START_RUNS] = (began + 1) * LINE_START_COUNT + (((lineStart % LINE_START_COUNT) << 4) | shape);
  }
  if (letter >= 0) {
    if (length >= MAX_WORD_LENGTH) return;
    setHalves(slot, WORD_HIGH, (Math.imul(halves(slot, WORD_HIGH) ^ (letter + 1), 0x9e3779b1) + 0x7f4a7c15) >>> 0);
    slot[WORD_LENGTH] = length + 1;
  } else if (length > 0) {
    setHalves(slot, EARLIER_HIGH, halves(slot, PREVIOUS_HIGH));
    setHalves(slot, PREVIOUS_HIGH, halves(slot, WORD_HIGH));
    setHalves(slot, WORD_HIGH, 0);
    slot[WORD_LENGTH] = 0;
  }
}

/** The context a word slot stands in: the previous word and the current one, never 0 (the tables' empty mark). */
export function wordContext(slot: ArrayLike<number>): number {
  const key = (Math.imul(halves(slot, PREVIOUS_HIGH), 0x85ebca6b) ^ halves(slot, WORD_HIGH) ^ slot[WORD_LENGTH]) >>> 0;
  return key === 0 ? 1 : key;
}

/** The characters since the last line break (or since the text began), up to MAX_COLUMN. */
export const lineColumn = (slot: ArrayLike<number>): number => slot[LINE_COLUMN];

/**
 * The shapes (characterShapes) of the last runs of characters, a run being characters of one
 * shape, the one being typed last: "foo(bar, 12)" and "x(y, 3)" are alike, whatever their names and
 * numbers and however long, which the shapes of a fixed number of characters before cannot see.
 */
export const shapeRuns = (slot: ArrayLike<number>): number => slot[SHAPE_RUNS];

/**
 * The shapes of the first runs of the line (its indent, a list's or a table's mark, a heading's
 * #s, a fence, the first word), with how many: lines that begin alike go on alike.
 */
export const lineStartRuns = (slot: ArrayLike<number>): number => slot[LINE_START_RUNS];

/** The Markdown spans the position is in (nesting.ts); 0 outside every span. */
export const nesting = (slot: ArrayLike<number>): number => nestingOf(slot[NESTING]);

/** The current word's typed part alone, hashed with its length. */
export const currentWord = (slot: ArrayLike<number>): number => (halves(slot, WORD_HIGH) ^ slot[WORD_LENGTH]) >>> 0;

/** The longer context: the word before the previous one too, over `shorter` (wordContext(slot)). Kept in the same tables. */
export function twoWordContext(slot: ArrayLike<number>, shorter = wordContext(slot)): number {
  const key = (Math.imul(halves(slot, EARLIER_HIGH), 0xc2b2ae35) ^ shorter ^ 0x5bd1e995) >>> 0;
  return key === 0 ? 1 : key;
}

/**
 * The word models' distribution at `slot` into `out`, each model's counts interpolated with the
 * one before it (`models` from the broadest, the notes', to the document's), over `lower`, first
 * after the previous word, then after the two before; `scratch` is two vectors of its size.
 * Returns false, leaving `out` alone, where no model has seen the previous word and the current.
 */
export function wordsDistribution(
  slot: ArrayLike<number>,
  models: Array<WordModel | undefined>,
  lower: Float32Array,
  out: Float32Array,
  scratch: [Float32Array, Float32Array],
): boolean {
  const shorter = wordContext(slot);
  let current = lower;
  for (let longer = 0; longer < 2; longer++) {
    const key = longer ? twoWordContext(slot, shorter) : shorter;
    for (const model of models) {
      const next = current === scratch[0] ? scratch[1] : scratch[0];
      if (model?.distribution(key, current, next)) current = next;
    }
    // Both contexts are learnt together, so where the shorter is unknown the longer is too.
    if (current === lower) return false;
  }
  out.set(current);
  return true;
}

/**
 * Counts of the id that followed each context, in flat tables: a hash table of contexts, each the
 * head of a list of (id, count) entries, so that a context's successors are read in one walk and
 * ten megabytes of notes fit in tens of megabytes.
 */
export class WordModel {
  private contextKeys: Uint32Array;
  private heads: Int32Array;
  private totals: Uint32Array;
  private distinct: Uint16Array;
  private contexts = 0;
  private entryIds = new Uint16Array(1024);
  private entryCounts = new Uint16Array(1024);
  private entryNext = new Int32Array(1024);
  private entries = 0;
  /** The stream append() reads: where it stands among its words. */
  private readonly streamSlot = new Float32Array(WORD_STATE_SIZE);

  /** `letters` is the vocabulary's wordLetters. */
  constructor(
    private readonly letters: Int32Array,
    contextBits = 12,
  ) {
    const size = 1 << contextBits;
    this.contextKeys = new Uint32Array(size);
    this.heads = new Int32Array(size);
    this.totals = new Uint32Array(size);
    this.distinct = new Uint16Array(size);
  }

  /** Learns that `id` followed the words in `slot`, after the previous word and after the two before. */
  learnAt(slot: ArrayLike<number>, id: number): void {
    const shorter = wordContext(slot);
    this.learn(shorter, id);
    this.learn(twoWordContext(slot, shorter), id);
  }

  /** Learns that `id` followed the context `key`. */
  private learn(key: number, id: number): void {
    let slot = this.find(key);
    if (slot < 0) {
      if (this.contexts + 1 > MAX_LOAD * this.contextKeys.length && !this.growContexts()) return;
      slot = this.find(key);
      this.contextKeys[~slot] = key;
      this.heads[~slot] = -1;
      slot = ~slot;
      this.contexts++;
    }
    // The entry found moves to the front of its list, so a context's common successors are found in a step or two.
    for (let e = this.heads[slot], before = -1; e >= 0; before = e, e = this.entryNext[e])
      if (this.entryIds[e] === id) {
        if (this.entryCounts[e] < MAX_COUNT) {
          this.entryCounts[e]++;
          this.totals[slot]++;
        }
        if (before >= 0) {
          this.entryNext[before] = this.entryNext[e];
          this.entryNext[e] = this.heads[slot];
          this.heads[slot] = e;
        }
        return;
      }
    if (this.entries === MAX_ENTRIES || (this.entries === this.entryIds.length && !this.growEntries())) return;
    const e = this.entries++;
    this.entryIds[e] = id;
    this.entryCounts[e] = 1;
    this.entryNext[e] = this.heads[slot];
    this.heads[slot] = e;
    this.totals[slot]++;
    this.distinct[slot]++;
  }

  /** Reads `ids` as text that follows what was appended before, learning each. */
  append(ids: ArrayLike<number>): void {
    const slot = this.streamSlot;
    for (let i = 0; i < ids.length; i++) {
      this.learnAt(slot, ids[i]);
      advanceWords(slot, ids[i], this.letters);
    }
  }

  /**
   * The distribution after context `key`, as log-probabilities into `out` (not `lower` itself):
   * Witten-Bell's interpolation of its counts with `lower` (log-probabilities), which it is where
   * the context was never seen. Returns whether it was seen.
   */
  distribution(key: number, lower: Float32Array, out: Float32Array): boolean {
    const slot = this.find(key);
    if (slot < 0) {
      out.set(lower);
      return false;
    }
    const d = this.distinct[slot];
    const logNorm = Math.log(this.totals[slot] + d);
    const logEscape = Math.log(d) - logNorm;
    for (let y = 0; y < out.length; y++) out[y] = lower[y] + logEscape;
    for (let e = this.heads[slot]; e >= 0; e = this.entryNext[e]) {
      const id = this.entryIds[e];
      out[id] = Math.log(this.entryCounts[e] + d * Math.exp(lower[id])) - logNorm;
    }
    return true;
  }

  /** The slot holding `key`, or ~(the empty slot where it would go). */
  private find(key: number): number {
    const mask = this.contextKeys.length - 1;
    for (let i = (Math.imul(key, 0x9e3779b1) >>> 0) & mask; ; i = (i + 1) & mask) {
      const k = this.contextKeys[i];
      if (k === key) return i;
      if (k === 0) return ~i;
    }
  }

  private growContexts(): boolean {
    const size = this.contextKeys.length;
    if (size >= 1 << MAX_CONTEXT_BITS) return false;
    const [keys, heads, totals, distinct] = [this.contextKeys, this.heads, this.totals, this.distinct];
    this.contextKeys = new Uint32Array(2 * size);
    this.heads = new Int32Array(2 * size);
    this.totals = new Uint32Array(2 * size);
    this.distinct = new Uint16Array(2 * size);
    for (let i = 0; i < size; i++)
      if (keys[i] !== 0) {
        const slot = ~this.find(keys[i]);
        this.contextKeys[slot] = keys[i];
        this.heads[slot] = heads[i];
        this.totals[slot] = totals[i];
        this.distinct[slot] = distinct[i];
      }
    return true;
  }

  private growEntries(): boolean {
    const size = Math.min(MAX_ENTRIES, 2 * this.entryIds.length);
    const grow = <T extends Uint16Array | Int32Array>(old: T, made: T): T => {
      made.set(old);
      return made;
    };
    this.entryIds = grow(this.entryIds, new Uint16Array(size));
    this.entryCounts = grow(this.entryCounts, new Uint16Array(size));
    this.entryNext = grow(this.entryNext, new Int32Array(size));
    return true;
  }
}
