// A bitwise context-mixing model over vocabulary ids, in the manner of the PAQ compressors: each id is spelt as bits
// from the most significant, and each bit is predicted from what followed its context before (the characters before,
// at several orders, and the words), the predictions mixed in the logistic domain by a small network that learns
// online and refined by adaptive probability maps. A context remembers a bit history rather than a count: how many 0s
// and 1s, the older discounted, so a context that changed its mind lately is trusted less than one that never did, and
// what each history predicts is itself learnt. That is what lets the compressors beat fixed-discount n-grams.
//
// The model answers with a distribution over every id, which takes one prediction per node of the ids' binary tree
// (a few hundred at most); a context's histories for the 15 nodes of one nibble share a 17-byte slot, eight slots to a
// bucket, so that a node's lookups stay within a few cache lines. The first group of bits is shorter than a nibble
// unless the id's bits divide by four (3 bits of 7, 1 of 9), and every context has one, so its slots are as short as
// its nodes need and live in a region of their own: in a full slot they left most of the table empty.
import {
  atLimitOnSideOf,
  clampNodeProbability,
  clampStretch,
  idBits,
  onlyZeroBranch,
  ProbabilityMap,
  squash,
  stretch,
} from './logistic';
import {
  advanceWords,
  currentWord,
  lineColumn,
  lineStartRuns,
  shapeRuns,
  WORD_STATE_SIZE,
  wordContext,
} from './word-model';

/**
 * A slot: a check byte, then the bit histories of a nibble tree's 15 nodes, then a second check
 * byte. With one, a context not in a full bucket of four found another's slot in one lookup in 64,
 * and read its histories as its own; the byte costs a seventeenth of the slots, and pays.
 */
const SLOT = 17;
/**
 * Slots per bucket: a context takes whichever holds its checks, or else the least used. Eight
 * rather than four keep more of what the notes use often where they overfill the table.
 */
const WAYS = 8;

/** The mixer's rate of learning, and where its weights start. */
const MIXER_RATE = 0.001;
const MIXER_INITIAL_WEIGHT = 0.3;
/** The adaptive probability maps' rate. */
const MAP_RATE = 0.02;
/**
 * Rows of the map selected by the two characters before and the node, hashed into 2^this; fewer
 * for a small table, whose few notes could not fill them (and whose file should stay small).
 */
const sideBitsFor = (tableBits: number) => Math.min(12, tableBits - 2);
/** Mixer weight sets selected by a context and the node, hashed into 2^this: four times the rows where those are full. */
const selectedBitsFor = (sideBits: number) => (sideBits < 12 ? sideBits : sideBits + 2);
/**
 * The contexts that select the mixer's weight sets with the node, besides the set selected by the
 * order and the one by the node alone: the two characters before, the shapes of the last four runs
 * and the word being typed. Which input to trust differs between "a letter after a letter" and
 * "after a digit and a bracket", and within a word, where the word contexts know the rest of it.
 */
const SELECTED_SETS = 3;
/** The runs whose shapes select a weight set: 4 bits each, the one being typed lowest. */
const SELECTING_RUNS_MASK = 0xffff;

/**
 * Where another model gives all the ids under a nibble's slot less than this, its nodes are left
 * at even odds rather than predicted: most of the tree lies under such slots, and what this model
 * would say of ids that unlikely seldom matters (docs/measurements.md has the A/B).
 */
const UNLIKELY_MASS = 1e-3;

/** A history's probability learns at 1 / (count + 1.5), the count stopping here so it keeps adapting. */
const HISTORY_LIMIT = 1023;

/**
 * The bit histories: pairs (zeros, ones) with the last bit, bounded so that there are fewer than
 * 256 of them. A context that has seen only one bit may count it far (a deterministic context is
 * the most telling there is); one that has seen both is kept to small counts, since what it will
 * do next is less certain the longer ago it last changed.
 */
function historyBound(fewer: number): number {
  return [40, 16, 8, 6, 6, 6, 6][fewer] ?? -1;
}

interface HistoryTable {
  zeros: Uint8Array;
  ones: Uint8Array;
  /** The state after a 0 and after a 1: next[2 * state + bit]. */
  next: Uint8Array;
  count: number;
}

function buildHistories(): HistoryTable {
  const keys: string[] = ['0,0,0'];
  const zeros = [0];
  const ones = [0];
  const valid = (z: number, o: number) => Math.max(z, o) <= historyBound(Math.min(z, o));
  for (let z = 0; z <= historyBound(0); z++)
    for (let o = 0; o <= historyBound(0); o++)
      for (const last of [0, 1]) {
        if ((z === 0 && o === 0) || !valid(z, o)) continue;
        // With one side unseen, the last bit is that side's.
        if ((z === 0 && last === 0) || (o === 0 && last === 1)) continue;
        keys.push(`${z},${o},${last}`);
        zeros.push(z);
        ones.push(o);
      }
  if (keys.length > 256) throw new Error(`${keys.length} bit histories do not fit a byte`);
  const index = new Map(keys.map((key, i) => [key, i]));
  const next = new Uint8Array(2 * keys.length);
  keys.forEach((key, state) => {
    const [z0, o0] = key.split(',').map(Number);
    for (const bit of [0, 1]) {
      let z = z0;
      let o = o0;
      if (bit) {
        o++;
        if (z > 2) z = (z >>> 1) + 1;
      } else {
        z++;
        if (o > 2) o = (o >>> 1) + 1;
      }
      while (!valid(z, o)) {
        if (bit) o--;
        else z--;
      }
      next[2 * state + bit] = index.get(`${z},${o},${bit}`)!;
    }
  });
  return { zeros: Uint8Array.from(zeros), ones: Uint8Array.from(ones), next, count: keys.length };
}

const HISTORIES = buildHistories();

/** Splits `bits` into groups from the top, each at most four bits, the first taking the remainder. */
function nibbleGroups(bits: number): number[] {
  const groups: number[] = [];
  let rest = bits;
  while (rest > 0) {
    const size = rest % 4 === 0 ? 4 : rest % 4;
    groups.push(size);
    rest -= size;
  }
  return groups;
}

/**
 * The orders of the character contexts; the inputs are order 0, these, the two word contexts, the
 * line's column with the character before, the shape of the characters before, the shapes of the
 * runs before, then those the line began with. The long orders know a phrase or a line the notes
 * hold several times over as a whole, where the match model follows only one earlier copy of it.
 */
const CONTEXT_ORDERS = [1, 2, 3, 4, 5, 6, 8, 12, 20];
/** The characters before whose shapes (4 bits each) make one context. */
const SHAPES_SPAN = 8;
const INPUTS = CONTEXT_ORDERS.length + 7;
/** The inputs that are contexts of the characters before, by increasing length: the highest seen selects weights. */
const ORDERED_INPUTS = CONTEXT_ORDERS.length + 1;
/** The characters before that the contexts read. */
export const CONTEXT_SPAN = CONTEXT_ORDERS[CONTEXT_ORDERS.length - 1];
/** The input of the order-2 context, whose hash (two characters before, or 0 at the start) also selects a weight set and a map's row. */
const TWO_BEFORE_INPUT = 1 + CONTEXT_ORDERS.indexOf(2);

/**
 * The model. Its contexts at a position are read from the ids before it (most recent last) and
 * from a word slot (word-model.ts) that stands after them.
 */
export class ContextMixingModel {
  private readonly bits: number;
  private readonly groups: number[];
  private readonly table: Uint8Array;
  /**
   * Bytes of a slot of the first group; the buckets of nibble slots, which come first; and the
   * buckets of first-group slots (WAYS slots each) after them.
   */
  private readonly firstSlot: number;
  private readonly nibbleBuckets: number;
  private readonly firstGroupBuckets: number;
  /** Per input, the probability of a 1 after each bit history, stretched, and how often that was learnt. */
  private readonly historyMap: Float32Array;
  private readonly historyStretched: Float32Array;
  private readonly historyCounts: Uint16Array;
  /**
   * Mixer weights, summed: the set selected by (depth, highest input seen), the set selected by the
   * node, and one set per SELECTED_SETS context with the node, hashed.
   */
  private readonly weightsByOrder: Float32Array;
  private readonly weightsByNode: Float32Array;
  private readonly weightsBySelected: Float32Array[];
  private readonly mapByNode: ProbabilityMap;
  private readonly mapByTwoBefore: ProbabilityMap;
  // Scratch for the position and the node being predicted.
  private readonly hashes = new Uint32Array(INPUTS);
  private readonly slots = new Int32Array(INPUTS);
  /** Per input, the table its slot lies in: this one's, or where this one has none for its context, a base's. */
  private readonly slotTables: Uint8Array[];
  /**
   * The model under an overlay (see overlay()): the notes' under a document's, or a document's smaller table under
   * the larger one it outgrew, the notes' under that. Its table is read, never written.
   */
  private base?: ContextMixingModel;
  /** The table that the last findBelow() found its slot in. */
  private foundTable: Uint8Array;
  /** Characters learnt (learnAt), by this model alone: what a document's table is sized by. */
  private learntCharacters = 0;
  private readonly stretched = new Float32Array(INPUTS + 1);
  private readonly states = new Uint8Array(INPUTS);
  private orderSet = 0;
  private nodeSet = 0;
  /** The position's contexts that select weight sets, and the sets they select at the node. */
  private readonly selectors = new Uint32Array(SELECTED_SETS);
  private readonly selectedSets = new Int32Array(SELECTED_SETS);
  private readonly selectedBits: number;
  private mixed = 0;
  /** The last predictBit()'s mix before it was clamped. */
  private unclamped = 0;
  /** Where append() stands in the text it reads: the ids before, and the words. */
  private readonly streamContext = new Float32Array(CONTEXT_SPAN);
  private streamKnown = 0;
  private readonly streamWords = new Float32Array(WORD_STATE_SIZE);

  /**
   * `letters` is the vocabulary's wordLetters and `shapes` its characterShapes (word-model.ts); the
   * table is 64 × 2^tableBits bytes, and is `table` where that is given (a loaded file's
   * bytes, not copied).
   */
  constructor(
    readonly vocabSize: number,
    private readonly letters: Int32Array,
    private readonly shapes: Uint8Array,
    readonly tableBits: number,
    table?: Uint8Array,
    private readonly sideBits = sideBitsFor(tableBits),
  ) {
    this.bits = idBits(vocabSize);
    this.selectedBits = selectedBitsFor(sideBits);
    this.groups = nibbleGroups(this.bits);
    if (table && table.length !== ContextMixingModel.tableBytes(tableBits))
      throw new RangeError(`a table of ${table.length} bytes for ${tableBits} bits`);
    this.table = table ?? new Uint8Array(ContextMixingModel.tableBytes(tableBits));
    this.slotTables = new Array<Uint8Array>(INPUTS).fill(this.table);
    this.foundTable = this.table;
    // A slot of the first group is its checks and its nodes; its region's share of the table is its
    // slot's share of the bytes one context claims when it is followed by one nibble per later group.
    this.firstSlot = (1 << this.groups[0]) + 1;
    const bytes = ContextMixingModel.tableBytes(tableBits);
    const firstShare = this.firstSlot < SLOT ? this.firstSlot / (this.firstSlot + SLOT * (this.groups.length - 1)) : 0;
    const firstRegion = Math.round(bytes * firstShare);
    this.nibbleBuckets = Math.floor((bytes - firstRegion) / (WAYS * SLOT));
    this.firstGroupBuckets = Math.floor(firstRegion / (WAYS * this.firstSlot));
    this.historyMap = new Float32Array(INPUTS * 256);
    this.historyStretched = new Float32Array(INPUTS * 256);
    this.historyCounts = new Uint16Array(INPUTS * 256);
    for (let i = 0; i < INPUTS; i++)
      for (let state = 0; state < HISTORIES.count; state++) {
        const p = (HISTORIES.ones[state] + 0.4) / (HISTORIES.zeros[state] + HISTORIES.ones[state] + 0.8);
        this.historyMap[i * 256 + state] = p;
        // From the stored single-precision value, as loaded() derives it, so a saved model predicts the same.
        this.historyStretched[i * 256 + state] = stretch(this.historyMap[i * 256 + state]);
      }
    const width = INPUTS + 1;
    this.weightsByOrder = new Float32Array(this.bits * (ORDERED_INPUTS + 1) * width).fill(MIXER_INITIAL_WEIGHT);
    this.weightsByNode = new Float32Array((1 << this.bits) * width);
    this.weightsBySelected = Array.from({ length: SELECTED_SETS }, () => new Float32Array(width << this.selectedBits));
    this.mapByNode = new ProbabilityMap(1 << this.bits, MAP_RATE);
    this.mapByTwoBefore = new ProbabilityMap(1 << sideBits, MAP_RATE);
  }

  /** A table's bytes: 64 per 2^tableBits, what a bucket of four 16-byte slots took, so that a size means what it did. */
  static tableBytes(tableBits: number): number {
    return 64 * 2 ** tableBits;
  }

  /**
   * Everything the model has learnt, in a fixed order: what saving writes and loading fills
   * (the derived stretched map is rebuilt from the map).
   */
  learnt(): Array<Uint8Array | Uint16Array | Float32Array> {
    return [
      this.table,
      this.historyMap,
      this.historyCounts,
      this.weightsByOrder,
      this.weightsByNode,
      ...this.weightsBySelected,
      this.mapByNode.cells,
      this.mapByTwoBefore.cells,
    ];
  }

  /** The mixer's weight sets selected by context (SELECTED_SETS of them), as learnt: what an ablation zeroes. */
  selectedWeightSets(): readonly Float32Array[] {
    return this.weightsBySelected;
  }

  /**
   * A model for a document, which learns its text as it is typed without touching the notes': it
   * starts as this one has learnt to predict, and its table of its own holds the contexts the
   * document has taught it. A context it does not hold is read from this model's table, and copied
   * into its own when the document first teaches it, so the document goes on from what the notes
   * know of each context, as a compressor that had read the notes would. A document's model that
   * its text has outgrown is overlaid the same way by a larger one: the contexts it holds are read
   * through it, and those under it through both.
   */
  overlay(tableBits: number): ContextMixingModel {
    const copy = new ContextMixingModel(this.vocabSize, this.letters, this.shapes, tableBits, undefined, this.sideBits);
    // Everything but the table, which comes first.
    const [, ...from] = this.learnt();
    const [, ...to] = copy.learnt();
    to.forEach((array, i) => array.set(from[i]));
    copy.loaded();
    copy.base = this;
    return copy;
  }

  /** How many characters this model has learnt itself (learnAt, append), not counting any base's. */
  get charactersLearnt(): number {
    return this.learntCharacters;
  }

  /** Rebuilds what is derived from the learnt arrays, once loading has filled them. */
  loaded(): void {
    for (let i = 0; i < this.historyMap.length; i++) this.historyStretched[i] = stretch(this.historyMap[i]);
  }

  /**
   * Reads `ids` as text that follows what it read before, learning each; returns what they cost in
   * nats, each predicted before it was learnt, as a compressor codes a text.
   */
  append(ids: ArrayLike<number>): number {
    const context = this.streamContext;
    let nats = 0;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      nats += this.learnAt(context, this.streamKnown, this.streamWords, id);
      if (this.streamKnown < CONTEXT_SPAN) context[this.streamKnown++] = id;
      else {
        context.copyWithin(0, 1);
        context[CONTEXT_SPAN - 1] = id;
      }
      advanceWords(this.streamWords, id, this.letters, this.shapes);
    }
    return nats;
  }

  /**
   * The probability of a 1 at every node of the ids' tree (heap-numbered: the root 1, the children
   * of n 2n and 2n + 1, the first bit the most significant) after the `known` ids of `context`
   * (most recent last), in the words of `wordSlot`, into `out` (2^bits long); nodes no id lies
   * under are left alone. Where another model gives the ids under a slot's nodes less than
   * UNLIKELY_MASS in all, those nodes are set to even odds instead: `massBefore` is its
   * distribution as massBefore() leaves it. Given `onPathOf`, only the nodes on that id's path are
   * set, as learning it reads them: the rest of the tree would cost many times as much.
   */
  nodeProbabilitiesAt(
    context: ArrayLike<number>,
    known: number,
    wordSlot: ArrayLike<number>,
    out: Float32Array,
    massBefore?: Float64Array,
    onPathOf?: number,
  ): Float32Array {
    this.readContexts(context, known, wordSlot);
    let above = 0;
    for (let g = 0; g < this.groups.length; g++) {
      const size = this.groups[g];
      const below = this.bits - above;
      const prefixCount = Math.ceil(this.vocabSize / 2 ** below);
      // The path's nodes within this group, heap-numbered from 1 with a leading 1 bit, read off by shifting.
      const pathNodes = onPathOf === undefined ? 0 : (1 << size) | ((onPathOf >>> (below - size)) & ((1 << size) - 1));
      const first = onPathOf === undefined ? 0 : onPathOf >>> below;
      const last = onPathOf === undefined ? prefixCount - 1 : first;
      for (let prefix = first; prefix <= last; prefix++) {
        const unlikely =
          massBefore !== undefined &&
          massBefore[Math.min(this.vocabSize, (prefix + 1) << below)] - massBefore[prefix << below] < UNLIKELY_MASS;
        if (!unlikely) this.findSlots(g, prefix, false);
        for (let node = 1; node < 1 << size; node++) {
          const depth = 31 - Math.clz32(node);
          if (onPathOf !== undefined && pathNodes >>> (size - depth) !== node) continue;
          const path = (prefix << depth) | (node ^ (1 << depth));
          // A node whose ids all lie beyond the vocabulary is never reached.
          if (path << (below - depth) >= this.vocabSize) continue;
          const heapNode = (1 << (above + depth)) | path;
          out[heapNode] = onlyZeroBranch(heapNode, this.bits, this.vocabSize)
            ? 0
            : unlikely
              ? 0.5
              : this.predictBit(above + depth, path, node);
        }
      }
      above += size;
    }
    return out;
  }

  /**
   * Learns that `id` came after the `known` ids of `context`, in the words of `wordSlot`; returns
   * -ln of the probability it gave `id` before learning it.
   */
  learnAt(context: ArrayLike<number>, known: number, wordSlot: ArrayLike<number>, id: number): number {
    this.learntCharacters++;
    this.readContexts(context, known, wordSlot);
    let nats = 0;
    let above = 0;
    for (let g = 0; g < this.groups.length; g++) {
      const size = this.groups[g];
      const prefix = id >>> (this.bits - above);
      this.findSlots(g, prefix, true);
      const value = (id >>> (this.bits - above - size)) & ((1 << size) - 1);
      let node = 1;
      for (let depth = 0; depth < size; depth++) {
        const bit = (value >>> (size - 1 - depth)) & 1;
        const path = (prefix << depth) | (node ^ (1 << depth));
        if (!onlyZeroBranch((1 << (above + depth)) | path, this.bits, this.vocabSize)) {
          const p = this.predictBit(above + depth, path, node);
          nats -= Math.log(bit ? p : 1 - p);
          this.update(node, bit);
        }
        node = 2 * node + bit;
      }
      above += size;
    }
    return nats;
  }

  /** Leaves the contexts at a position in `hashes` and `selectors`. */
  private readContexts(context: ArrayLike<number>, known: number, wordSlot: ArrayLike<number>): void {
    contextHashes(context, known, wordSlot, this.shapes, this.hashes);
    this.selectors[0] = this.hashes[TWO_BEFORE_INPUT];
    this.selectors[1] = (shapeRuns(wordSlot) & SELECTING_RUNS_MASK) + 1;
    this.selectors[2] = currentWord(wordSlot);
  }

  /**
   * Points `slots` at each input's slot for nibble group `g` under `prefix`: the one in its bucket
   * that holds its check, or (when `claim`) one given to it; else the nearest base's for it, its
   * table in `slotTables`; else -1.
   */
  private findSlots(g: number, prefix: number, claim: boolean): void {
    for (let i = 0; i < INPUTS; i++) {
      const context = this.hashes[i];
      this.slots[i] = -1;
      this.slotTables[i] = this.table;
      if (context === 0) continue;
      const hash = slotHash(context, g, prefix);
      this.slots[i] = this.lookup(hash, g, claim);
      if (this.slots[i] < 0 && this.base) {
        this.slots[i] = this.findBelow(hash, g);
        this.slotTables[i] = this.foundTable;
      }
    }
  }

  /**
   * How many of the character orders' contexts at a position this model's own table holds, for
   * the id's first bits: a context it was never taught should find none.
   */
  ordersHeld(context: ArrayLike<number>, known: number, wordSlot: ArrayLike<number>): number {
    this.readContexts(context, known, wordSlot);
    let held = 0;
    for (let i = 1; i < ORDERED_INPUTS; i++)
      if (this.hashes[i] !== 0 && this.lookup(slotHash(this.hashes[i], 0, 0), 0, false) >= 0) held++;
    return held;
  }

  /** The slot for `hash` in the nearest base that holds one, its table left in `foundTable`; else -1. */
  private findBelow(hash: number, g: number): number {
    for (let base = this.base; base; base = base.base) {
      const slot = base.lookup(hash, g, false);
      if (slot >= 0) {
        this.foundTable = base.table;
        return slot;
      }
    }
    return -1;
  }

  /**
   * The slot that holds context hash `hash` for group `g` in this table, else -1, or (when `claim`)
   * the emptiest of its bucket, given to it: cleared, or a copy of the base's slot for it.
   */
  private lookup(hash: number, g: number, claim: boolean): number {
    const table = this.table;
    const slotBytes = g === 0 ? this.firstSlot : SLOT;
    // The hash's high bits choose the bucket, its low byte is the first check (0 marks an empty slot) and a mix of all
    // its bits the second, since within one bucket the high bits hardly differ.
    const bucket =
      g === 0 && slotBytes < SLOT
        ? this.nibbleBuckets * WAYS * SLOT + Math.floor((hash / 2 ** 32) * this.firstGroupBuckets) * WAYS * slotBytes
        : Math.floor((hash / 2 ** 32) * this.nibbleBuckets) * WAYS * SLOT;
    const check = hash & 0xff || 1;
    const secondCheck = Math.imul(hash, 0x9e3779b1) >>> 24;
    const last = slotBytes - 1;
    let emptiest = bucket;
    let least = Infinity;
    for (let way = 0; way < WAYS; way++) {
      const slot = bucket + way * slotBytes;
      if (table[slot] === check && table[slot + last] === secondCheck) return slot;
      const root = table[slot + 1];
      const used = table[slot] === 0 ? -1 : HISTORIES.zeros[root] + HISTORIES.ones[root];
      if (used < least) {
        least = used;
        emptiest = slot;
      }
    }
    if (!claim) return -1;
    const from = this.findBelow(hash, g);
    if (from >= 0) table.set(this.foundTable.subarray(from, from + slotBytes), emptiest);
    else {
      table.fill(0, emptiest, emptiest + slotBytes);
      table[emptiest] = check;
      table[emptiest + last] = secondCheck;
    }
    return emptiest;
  }

  /**
   * The probability that the bit at `node` (heap-numbered within its nibble) is 1, at `depth` bits
   * into the id with `path` the bits above it; leaves what update() needs in scratch.
   */
  private predictBit(depth: number, path: number, node: number): number {
    const n = INPUTS;
    let highest = 0;
    for (let i = 0; i < n; i++) {
      const slot = this.slots[i];
      const state = slot < 0 ? 0 : this.slotTables[i][slot + node];
      this.states[i] = state;
      if (state === 0) {
        this.stretched[i] = 0;
        continue;
      }
      this.stretched[i] = this.historyStretched[i * 256 + state];
      if (i < ORDERED_INPUTS) highest = i + 1;
    }
    this.stretched[n] = 0.5;
    const width = n + 1;
    const heapNode = (1 << depth) | path;
    this.orderSet = (depth * (ORDERED_INPUTS + 1) + highest) * width;
    this.nodeSet = heapNode * width;
    for (let k = 0; k < SELECTED_SETS; k++) {
      const hash = Math.imul(this.selectors[k] ^ Math.imul(heapNode + 1, 0x2545f491), 0x85ebca6b + 2 * k);
      this.selectedSets[k] = ((hash ^ (hash >>> 15)) >>> (32 - this.selectedBits)) * width;
    }
    // Indexed reads rather than destructuring, which would go through an iterator on the innermost path.
    const twoBeforeWeights = this.weightsBySelected[0];
    const runsWeights = this.weightsBySelected[1];
    const wordWeights = this.weightsBySelected[2];
    const twoBeforeSet = this.selectedSets[0];
    const runsSet = this.selectedSets[1];
    const wordSet = this.selectedSets[2];
    let dot = 0;
    for (let i = 0; i <= n; i++) {
      const weight =
        this.weightsByOrder[this.orderSet + i] +
        this.weightsByNode[this.nodeSet + i] +
        twoBeforeWeights[twoBeforeSet + i] +
        runsWeights[runsSet + i] +
        wordWeights[wordSet + i];
      dot += weight * this.stretched[i];
    }
    this.unclamped = dot;
    dot = clampStretch(dot);
    this.mixed = squash(dot);
    const byNode = this.mapByNode.refine(heapNode, dot);
    const twoBefore = this.hashes[TWO_BEFORE_INPUT];
    const row = Math.imul((twoBefore ^ Math.imul(heapNode, 0x2545f491)) >>> 0, 0x9e3779b1) >>> (32 - this.sideBits);
    const byTwoBefore = this.mapByTwoBefore.refine(row, dot);
    return clampNodeProbability((this.mixed + byNode + 2 * byTwoBefore) / 4);
  }

  private update(node: number, bit: number): void {
    const n = INPUTS;
    if (!atLimitOnSideOf(this.unclamped, bit)) {
      const error = bit - this.mixed;
      for (let i = 0; i <= n; i++) {
        const step = MIXER_RATE * error * this.stretched[i];
        this.weightsByOrder[this.orderSet + i] += step;
        this.weightsByNode[this.nodeSet + i] += step;
        for (let k = 0; k < SELECTED_SETS; k++) this.weightsBySelected[k][this.selectedSets[k] + i] += step;
      }
    }
    this.mapByNode.learn(bit);
    this.mapByTwoBefore.learn(bit);
    for (let i = 0; i < n; i++) {
      const slot = this.slots[i];
      if (slot < 0) continue;
      const state = this.states[i];
      if (state !== 0) {
        const index = i * 256 + state;
        const seen = this.historyCounts[index];
        this.historyMap[index] += (bit - this.historyMap[index]) / (seen + 1.5);
        this.historyStretched[index] = stretch(this.historyMap[index]);
        if (seen < HISTORY_LIMIT) this.historyCounts[index] = seen + 1;
      }
      this.table[slot + node] = HISTORIES.next[2 * state + bit];
    }
  }
}

/** The hash of a context's slot for nibble group `g` under `prefix`, the bits of the id above it. */
function slotHash(context: number, g: number, prefix: number): number {
  let hash = Math.imul(context ^ Math.imul(prefix + 1, 0x2545f491) ^ Math.imul(g + 1, 0x9e3779b9), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/**
 * The probability of the ids before each id (and of all of them last), from log-probabilities,
 * into `out` (one longer than `logProbs`): what nodeProbabilitiesAt() reads a distribution as.
 */
export function massBefore(logProbs: Float32Array, out: Float64Array): Float64Array {
  out[0] = 0;
  for (let id = 0; id < logProbs.length; id++) out[id + 1] = out[id] + Math.exp(logProbs[id]);
  return out;
}

/**
 * The contexts' hashes at a position, one per input, 0 where an input has none: order 0, the
 * orders of CONTEXT_ORDERS from the `known` ids of `context` (most recent last), the word being
 * typed with the one before it, the word being typed alone, the line's column (in fours, since
 * where a line of verse or of wrapped prose ends varies by a few characters) with the character
 * before, the shapes (`shapes`, characterShapes) of the SHAPES_SPAN characters before, the shapes
 * of the runs of characters before (shapeRuns, word-model.ts), the shapes of the runs the line
 * began with (lineStartRuns) with the last two runs'.
 */
function contextHashes(
  context: ArrayLike<number>,
  known: number,
  wordSlot: ArrayLike<number>,
  shapes: Uint8Array,
  out: Uint32Array,
): Uint32Array {
  out[0] = 0x12345;
  let h = 0;
  let shape = 0;
  let k = 0;
  for (let order = 1; order <= Math.min(known, CONTEXT_SPAN); order++) {
    const id = context[known - order];
    h = (Math.imul(h ^ (id + 1), 0x9e3779b1) + order) >>> 0;
    if (CONTEXT_ORDERS[k] === order) out[1 + k++] = h || 1;
    if (order <= SHAPES_SPAN) shape = (Math.imul(shape, 16) + shapes[id]) >>> 0;
  }
  while (k < CONTEXT_ORDERS.length) out[1 + k++] = 0;
  out[ORDERED_INPUTS] = wordContext(wordSlot);
  out[ORDERED_INPUTS + 1] = (Math.imul(currentWord(wordSlot) ^ 0x6a09e667, 0x9e3779b1) + 0x3c6ef372) >>> 0 || 1;
  const before = known > 0 ? context[known - 1] : -1;
  out[ORDERED_INPUTS + 2] =
    (Math.imul(((lineColumn(wordSlot) >>> 2) << 16) ^ (before + 2) ^ 0x1b873593, 0x9e3779b1) + 0x5bd1e995) >>> 0 || 1;
  out[ORDERED_INPUTS + 3] =
    (Math.imul(Math.imul(shape ^ Math.min(known, SHAPES_SPAN), 0x9e3779b1) >>> 0, 0x27d4eb2f) + 0x165667b1) >>> 0 || 1;
  out[ORDERED_INPUTS + 4] = (Math.imul(shapeRuns(wordSlot) ^ 0x2f6b9d35, 0x85ebca6b) + 0x61c88647) >>> 0 || 1;
  const lineStart = Math.imul(lineStartRuns(wordSlot) ^ 0x1b873593, 0x85ebca6b) ^ (shapeRuns(wordSlot) & 0xff);
  out[ORDERED_INPUTS + 5] = (Math.imul(lineStart, 0x9e3779b1) + 0x7f4a7c15) >>> 0 || 1;
  return out;
}
