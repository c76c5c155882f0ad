// Character n-gram memory of the user's text (interpolated modified Kneser-Ney), for mixing with the LSTM.
//
// The n-grams form a forward trie: node = (parent node, last symbol), so the successors of a
// context are the children of its node and a beam's distribution is one walk over few short lists.
// Nodes live in parallel typed arrays, found through an open-addressing index of node ids, because
// millions of JS objects or string keys would cost several times the memory and stall the GC.
// Saved and loaded models keep their nodes in breadth-first order, siblings adjacent, so a loaded
// model's successor lists are read from consecutive memory: load it for serving rather than use
// the one just built.
//
// Counts follow Kneser-Ney: n-grams of the highest order hold raw counts; every lower order holds
// continuation counts (how many distinct symbols were seen before it), incremented when its left
// extension is new. Discounts are modified KN's three per order, from count-of-counts kept as the
// counts change, so adding text never needs a recount.

export const NGRAM_DEFAULT_ORDER = 9;
export const NGRAM_MAX_ORDER = 16;
/** Each node costs 18 bytes of arrays plus its index slot (memoryBytes()), so about 95 MB at this bound. */
export const NGRAM_DEFAULT_MAX_NODES = 4_000_000;
// Symbols are stored in 16 bits.
export const NGRAM_MAX_VOCAB = 65535;
// Chen and Goodman's estimates are leave-one-out optima for raw counts; on prose (tiny-shakespeare,
// the Chinese seed articles) held-out likelihood is better with larger discounts, because most
// high-order n-grams are singletons that do not recur. Repetitive text (changelogs, templates)
// prefers smaller ones, so the trainer can pick per corpus with tuneDiscountScale().
export const NGRAM_DEFAULT_DISCOUNT_SCALE = 1.15;

export interface NgramOptions {
  /** n: the longest n-gram counted; contexts are the last n - 1 ids. */
  order?: number;
  /** Hard bound on trie nodes (one per distinct n-gram of any order, plus the root). */
  maxNodes?: number;
  /** Multiplies the estimated discounts; see NGRAM_DEFAULT_DISCOUNT_SCALE. */
  discountScale?: number;
}

/**
 * How much the n-gram knows about a context, filled by distribution() for the mixer.
 * `order` is the length of the longest context that was seen with a successor (0: only the
 * unigram level, i.e. nothing of the context was seen; -1: the model is empty and the distribution
 * is uniform); `contextCount` is the summed count of
 * that context's successors (raw occurrences when order = n - 1, else the number of distinct
 * left extensions, Kneser-Ney's continuation count); `successors` is how many distinct ids
 * followed it; `seenMass` is the final probability given to those successors.
 */
export interface NgramConfidence {
  order: number;
  contextCount: number;
  successors: number;
  seenMass: number;
}

export interface NgramStats {
  nodes: number;
  /** Distinct n-grams per order, index 1..n (index 0 is the root). */
  perOrder: number[];
  /** Nodes removed by pruning since construction or load, and how many times pruning ran. */
  pruned: number;
  prunes: number;
  /** New n-grams dropped because pruning could not make room. */
  refused: number;
}

/** The arrays that define a model; what the file format stores. */
export interface NgramArrays {
  order: number;
  vocabSize: number;
  maxNodes: number;
  discountScale: number;
  nodeCount: number;
  parent: Int32Array;
  symbol: Uint16Array;
  count: Uint32Array;
  /** Count-of-counts n1..n4 per order: index order * 5 + c for c in 1..4. */
  countOfCounts: Float64Array;
  pruned: number;
  prunes: number;
  refused: number;
}

const ROOT = 0;
const EMPTY = -1;
const MAX_LOAD = 0.7;
// Contexts remembered for the next query: more than a beam search keeps alive at once.
const RECENT = 256;
const BUCKET_BITS = 12;
// Pruning leaves room so that it runs again only after a good share of new text.
const PRUNE_TARGET = 0.75;

// Defaults when an order has too few n-grams to estimate its discounts (a short document).
const FALLBACK_DISCOUNTS = [0.6, 1.0, 1.4];
const MIN_COUNT_OF_COUNTS = 10;

function hash(parent: number, sym: number): number {
  // Murmur3's finaliser: siblings and the children of neighbouring parents land far apart.
  let h = Math.imul(parent, 0x9e3779b1) + Math.imul(sym, 0x85ebca77);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function checkDiscountScale(scale: number): void {
  if (!(scale > 0 && scale <= 4)) throw new RangeError(`ngram: discountScale must be in (0, 4], got ${scale}`);
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`ngram: ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

export class NgramModel {
  readonly vocabSize: number;
  readonly order: number;
  readonly maxNodes: number;
  private scaleOfDiscounts: number;

  private nodeCount = 1;
  private parent: Int32Array;
  private symbol: Uint16Array;
  private count: Uint32Array;
  private firstChild: Int32Array;
  private nextSibling: Int32Array;
  private index: Int32Array;
  // Slots per 2^32 hash values: an index of any size, not only powers of two, wastes less memory.
  private slotScale: number;

  private readonly countOfCounts: Float64Array;
  private readonly discounts: Float64Array;
  private discountsStale = true;

  private pruned = 0;
  private prunes = 0;
  private refused = 0;

  // Scratch reused by every call, so queries allocate nothing.
  private readonly ends: Int32Array;
  private readonly fresh: Uint8Array;
  private readonly contexts: Int32Array;
  private readonly walked: Int32Array;

  // The suffix nodes of recent contexts, keyed by their last order - 2 ids: a beam's next context
  // is a queried one plus a symbol, so its suffixes are one step from these instead of a walk from
  // the root per length. Entries from before the last add() or prune() are ignored.
  private readonly recentKeys: Int32Array;
  private readonly recentLength: Int32Array;
  private readonly recentStamp: Uint32Array;
  private readonly recentNodes: Int32Array;
  private readonly scratch: Float64Array;

  // Caches valid while `version` is unchanged; add() and prune() change it.
  private version = 1;
  private rootStamp = 0;
  private readonly rootDist: Float64Array;
  private readonly firstStamp: Uint32Array;
  private readonly firstSums: Float64Array;
  private sumTotal = 0;
  private sumRemoved = 0;

  constructor(vocabSize: number, options: NgramOptions = {}) {
    checkInteger('vocabSize', vocabSize, 2, NGRAM_MAX_VOCAB);
    const order = options.order ?? NGRAM_DEFAULT_ORDER;
    checkInteger('order', order, 1, NGRAM_MAX_ORDER);
    const maxNodes = options.maxNodes ?? NGRAM_DEFAULT_MAX_NODES;
    // Room for every unigram and some longer n-grams, else pruning could never make space.
    checkInteger('maxNodes', maxNodes, 4 * (vocabSize + order) + 64, 0x7fffffff);
    this.vocabSize = vocabSize;
    this.order = order;
    this.maxNodes = maxNodes;
    const discountScale = options.discountScale ?? NGRAM_DEFAULT_DISCOUNT_SCALE;
    checkDiscountScale(discountScale);
    this.scaleOfDiscounts = discountScale;
    const initial = Math.min(maxNodes, 1024);
    this.parent = new Int32Array(initial);
    this.symbol = new Uint16Array(initial);
    this.count = new Uint32Array(initial);
    this.firstChild = new Int32Array(initial);
    this.nextSibling = new Int32Array(initial);
    this.index = new Int32Array(0);
    this.slotScale = 0;
    this.parent[ROOT] = EMPTY;
    this.firstChild[ROOT] = EMPTY;
    this.nextSibling[ROOT] = EMPTY;
    this.rebuildIndex(initial);
    this.countOfCounts = new Float64Array((order + 1) * 5);
    this.discounts = new Float64Array((order + 1) * 3);
    this.ends = new Int32Array(order + 1);
    this.fresh = new Uint8Array(order + 2);
    this.contexts = new Int32Array(order);
    this.walked = new Int32Array(order);
    const keyLength = Math.max(0, order - 2);
    this.recentKeys = new Int32Array(RECENT * keyLength);
    this.recentLength = new Int32Array(RECENT);
    this.recentStamp = new Uint32Array(RECENT);
    this.recentNodes = new Int32Array(RECENT * (keyLength + 1));
    this.scratch = new Float64Array(vocabSize);
    this.rootDist = new Float64Array(vocabSize);
    this.firstStamp = new Uint32Array(vocabSize);
    this.firstSums = new Float64Array(2 * vocabSize);
  }

  get discountScale(): number {
    return this.scaleOfDiscounts;
  }

  set discountScale(scale: number) {
    checkDiscountScale(scale);
    this.scaleOfDiscounts = scale;
    this.discountsStale = true;
    this.version++;
  }

  /**
   * Sets the discount scale that scores `heldOut` best (text not added to the model, such as the
   * trainer's validation split) and returns it, because the best scale depends on how repetitive
   * the user's text is. Each candidate costs one score() of heldOut, so a short sample is enough.
   */
  tuneDiscountScale(heldOut: ArrayLike<number>, candidates: number[] = [0.9, 1, 1.1, 1.2, 1.3]): number {
    let best = this.scaleOfDiscounts;
    let bestNats = this.score(heldOut).nats;
    for (const scale of candidates) {
      this.discountScale = scale;
      const nats = this.score(heldOut).nats;
      if (nats < bestNats) {
        best = scale;
        bestNats = nats;
      }
    }
    this.discountScale = best;
    return best;
  }

  /** Trie nodes in use, the root included. */
  get size(): number {
    return this.nodeCount;
  }

  /** Bytes held by the typed arrays (what the model costs in RSS, give or take the scratch). */
  memoryBytes(): number {
    return (
      this.parent.byteLength +
      this.symbol.byteLength +
      this.count.byteLength +
      this.firstChild.byteLength +
      this.nextSibling.byteLength +
      this.index.byteLength +
      this.scratch.byteLength
    );
  }

  stats(): NgramStats {
    const depth = this.depths();
    const perOrder = new Array<number>(this.order + 1).fill(0);
    for (let i = 0; i < this.nodeCount; i++) perOrder[depth[i]]++;
    return { nodes: this.nodeCount, perOrder, pruned: this.pruned, prunes: this.prunes, refused: this.refused };
  }

  /**
   * Counts the n-grams ending at positions from..ids.length-1; ids before `from` are context only
   * (already added), which lets a document model grow by appending: add(text, previousLength).
   * Prunes when the node bound would be passed (see prune()); returns how many nodes that removed.
   */
  add(ids: ArrayLike<number>, from = 0): number {
    checkInteger('from', from, 0, ids.length);
    this.checkIds(ids, Math.max(0, from - this.order + 1), ids.length);
    this.version++;
    this.resync(ids, from);
    const n = this.order;
    const prunedBefore = this.pruned;
    for (let t = from; t < ids.length; t++) {
      if (this.nodeCount + n > this.maxNodes) {
        this.prune(Math.floor(this.maxNodes * PRUNE_TARGET));
        this.resync(ids, t);
      }
      this.countPosition(ids[t], t);
    }
    return this.pruned - prunedBefore;
  }

  /**
   * Fills out[0..vocabSize-1] with the probabilities (not logs) of the next id after `context`
   * (most recent last; only its last order - 1 ids matter). They sum to 1 and none is 0.
   * Returns the length of the longest context used, as confidence.order.
   */
  distribution(context: ArrayLike<number>, out: Float32Array, confidence?: NgramConfidence): number {
    const V = this.vocabSize;
    if (out.length < V) throw new RangeError(`ngram: out has ${out.length} entries, needs ${V}`);
    const top = this.findContexts(context);
    const { firstChild, nextSibling, count, symbol, discounts } = this;
    const q = this.scratch;
    if (top < 0) q.fill(1 / V);
    else q.set(this.rootDistribution());
    // p = scale * q, so that mixing in an order touches only its successors, not all V entries.
    let scale = 1;
    for (let k = 1; k <= top; k++) {
      const node = this.contexts[k];
      this.sums(node, k);
      const total = this.sumTotal;
      const d1 = discounts[(k + 1) * 3];
      const d2 = discounts[(k + 1) * 3 + 1];
      const d3 = discounts[(k + 1) * 3 + 2];
      scale *= this.sumRemoved / total;
      const inv = 1 / (total * scale);
      for (let c = firstChild[node]; c !== EMPTY; c = nextSibling[c]) {
        const n = count[c];
        q[symbol[c]] += (n - (n >= 3 ? d3 : n === 2 ? d2 : d1)) * inv;
      }
      if (scale < 1e-150) {
        for (let w = 0; w < V; w++) q[w] *= scale;
        scale = 1;
      }
    }
    for (let w = 0; w < V; w++) out[w] = q[w] * scale;
    if (confidence) {
      let mass = 0;
      let successors = 0;
      if (top >= 0) {
        for (let c = firstChild[this.contexts[top]]; c !== EMPTY; c = nextSibling[c]) {
          mass += out[symbol[c]];
          successors++;
        }
        this.sums(this.contexts[top], top);
      }
      confidence.order = top;
      confidence.contextCount = top >= 0 ? this.sumTotal : 0;
      confidence.successors = successors;
      confidence.seenMass = mass;
    }
    return top;
  }

  /** Natural log of the probability of `id` after `context`; agrees with distribution(). */
  logProb(context: ArrayLike<number>, id: number): number {
    checkInteger('id', id, 0, this.vocabSize - 1);
    return Math.log(this.probabilityAt(this.findContexts(context), id));
  }

  /**
   * Sum of -log p over ids[from..], each given everything before it: validation in one pass that
   * walks the context nodes forward instead of searching them again per position.
   */
  score(ids: ArrayLike<number>, from = 0): { nats: number; chars: number } {
    checkInteger('from', from, 0, ids.length);
    this.checkIds(ids, Math.max(0, from - this.order + 1), ids.length);
    this.refreshDiscounts();
    this.resync(ids, from);
    const ends = this.ends;
    const contexts = this.contexts;
    let nats = 0;
    for (let t = from; t < ids.length; t++) {
      let top = 0;
      contexts[0] = ROOT;
      while (top + 1 < this.order && ends[top + 1] !== EMPTY && this.firstChild[ends[top + 1]] !== EMPTY) {
        contexts[top + 1] = ends[top + 1];
        top++;
      }
      if (this.firstChild[ROOT] === EMPTY) top = -1;
      nats -= Math.log(this.probabilityAt(top, ids[t]));
      this.step(ids[t], false);
    }
    return { nats, chars: ids.length - from };
  }

  /**
   * Removes every node of count 1 from the highest order down (with its subtree) until at most
   * `target` nodes remain; then raises the count threshold. A pruned context's mass goes to the
   * orders below it, so probabilities still sum to 1.
   */
  prune(target: number): void {
    checkInteger('target', target, 0, 0x7fffffff);
    const depth = this.depths();
    const keep = new Int32Array(this.nodeCount);
    let kept = this.nodeCount;
    for (let threshold = 1; kept > target && threshold < 0x7fffffff; threshold *= 2) {
      for (let minDepth = this.order; minDepth >= 2 && kept > target; minDepth--) {
        kept = this.markKept(keep, depth, minDepth, threshold);
      }
    }
    if (kept === this.nodeCount) return;
    this.version++;
    this.prunes++;
    this.pruned += this.nodeCount - kept;
    const { parent, symbol, count } = this;
    let j = 0;
    for (let i = 0; i < this.nodeCount; i++) {
      if (keep[i] === EMPTY) continue;
      keep[i] = j;
      parent[j] = i === ROOT ? EMPTY : keep[parent[i]];
      symbol[j] = symbol[i];
      count[j] = count[i];
      j++;
    }
    this.nodeCount = j;
    this.rebuildIndex(this.parent.length);
  }

  /**
   * The model's arrays with the nodes in breadth-first order: a node's children are adjacent and
   * parents never decrease, so fromArrays() validates and indexes in one sequential pass.
   */
  toArrays(): NgramArrays {
    const n = this.nodeCount;
    const { firstChild, nextSibling } = this;
    const byNew = new Int32Array(n);
    const newId = new Int32Array(n);
    let tail = 1;
    for (let head = 0; head < tail; head++) {
      for (let c = firstChild[byNew[head]]; c !== EMPTY; c = nextSibling[c]) {
        newId[c] = tail;
        byNew[tail++] = c;
      }
    }
    const parent = new Int32Array(n);
    const symbol = new Uint16Array(n);
    const count = new Uint32Array(n);
    parent[ROOT] = EMPTY;
    for (let i = 1; i < n; i++) {
      const old = byNew[i];
      parent[i] = newId[this.parent[old]];
      symbol[i] = this.symbol[old];
      count[i] = this.count[old];
    }
    return {
      order: this.order,
      vocabSize: this.vocabSize,
      maxNodes: this.maxNodes,
      discountScale: this.scaleOfDiscounts,
      nodeCount: n,
      parent,
      symbol,
      count,
      countOfCounts: this.countOfCounts.slice(),
      pruned: this.pruned,
      prunes: this.prunes,
      refused: this.refused,
    };
  }

  /**
   * Rebuilds a model from arrays in toArrays() order, checking what an index walk relies on: every
   * parent precedes its child (and parents never decrease), depths stay within the order, symbols
   * within the vocabulary, counts positive and no (parent, symbol) pair twice. Throws RangeError
   * naming the first problem.
   */
  static fromArrays(a: NgramArrays): NgramModel {
    const model = new NgramModel(a.vocabSize, { order: a.order, maxNodes: a.maxNodes, discountScale: a.discountScale });
    const n = a.nodeCount;
    checkInteger('nodeCount', n, 1, a.maxNodes);
    if (a.parent.length !== n || a.symbol.length !== n || a.count.length !== n)
      throw new RangeError('ngram: array lengths differ from nodeCount');
    if (a.countOfCounts.length !== model.countOfCounts.length)
      throw new RangeError('ngram: countOfCounts has the wrong length');
    for (const v of a.countOfCounts)
      if (!Number.isInteger(v) || v < 0) throw new RangeError('ngram: countOfCounts holds a value that is not a count');
    if (a.parent[ROOT] !== EMPTY) throw new RangeError('ngram: node 0 must be the root');
    const depth = new Uint8Array(n);
    // Siblings are adjacent, so a symbol seen twice under the current parent is a duplicate n-gram.
    const lastParent = new Int32Array(a.vocabSize).fill(EMPTY);
    for (let i = 1; i < n; i++) {
      const p = a.parent[i];
      if (!(p >= 0 && p < i && p >= a.parent[i - 1]))
        throw new RangeError(`ngram: node ${i} has a parent out of breadth-first order`);
      depth[i] = depth[p] + 1;
      const sym = a.symbol[i];
      if (sym < a.vocabSize) {
        if (lastParent[sym] === p) throw new RangeError(`ngram: node ${i} repeats an n-gram`);
        lastParent[sym] = p;
      }
      if (depth[i] > a.order) throw new RangeError(`ngram: node ${i} is deeper than the order`);
      if (a.symbol[i] >= a.vocabSize) throw new RangeError(`ngram: node ${i} has a symbol outside the vocabulary`);
      if (a.count[i] < 1) throw new RangeError(`ngram: node ${i} has count 0`);
    }
    model.ensureCapacity(n);
    model.parent.set(a.parent);
    model.symbol.set(a.symbol);
    model.count.set(a.count);
    model.nodeCount = n;
    model.rebuildIndex(model.parent.length);
    model.countOfCounts.set(a.countOfCounts);
    model.pruned = a.pruned;
    model.prunes = a.prunes;
    model.refused = a.refused;
    return model;
  }

  private checkIds(ids: ArrayLike<number>, from: number, to: number): void {
    const V = this.vocabSize;
    for (let i = from; i < to; i++) {
      const x = ids[i];
      if (!(x >= 0 && x < V && (x | 0) === x)) throw new RangeError(`ngram: id ${x} at ${i} is not in [0, ${V})`);
    }
  }

  private slot(parent: number, sym: number): number {
    return Math.floor((hash(parent, sym) >>> 0) * this.slotScale);
  }

  private find(parent: number, sym: number): number {
    const { index } = this;
    const size = index.length;
    for (let h = this.slot(parent, sym); ; h = h + 1 === size ? 0 : h + 1) {
      const id = index[h];
      if (id === EMPTY || (this.parent[id] === parent && this.symbol[id] === sym)) return id;
    }
  }

  /** The node, or EMPTY when the bound is reached; `fresh` says whether it was created. */
  private findOrCreate(parent: number, sym: number, level: number): number {
    const { index } = this;
    const size = index.length;
    let h = this.slot(parent, sym);
    for (; ; h = h + 1 === size ? 0 : h + 1) {
      const id = index[h];
      if (id === EMPTY) break;
      if (this.parent[id] === parent && this.symbol[id] === sym) {
        this.fresh[level] = 0;
        return id;
      }
    }
    if (this.nodeCount >= this.maxNodes) {
      this.refused++;
      return EMPTY;
    }
    if (this.nodeCount >= this.parent.length) {
      this.ensureCapacity(this.nodeCount + 1);
      // The index may have been rebuilt at another size.
      h = this.slot(parent, sym);
      while (this.index[h] !== EMPTY) h = h + 1 === this.index.length ? 0 : h + 1;
    }
    const id = this.nodeCount++;
    this.index[h] = id;
    this.parent[id] = parent;
    this.symbol[id] = sym;
    this.count[id] = 0;
    this.firstChild[id] = EMPTY;
    this.nextSibling[id] = this.firstChild[parent];
    this.firstChild[parent] = id;
    this.fresh[level] = 1;
    return id;
  }

  private ensureCapacity(needed: number): void {
    if (needed <= this.parent.length) return;
    const capacity = Math.min(this.maxNodes, Math.max(needed, Math.ceil(this.parent.length * 1.5)));
    const grow = <T extends Int32Array | Uint16Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a.subarray(0, this.nodeCount) as never);
      return b;
    };
    this.parent = grow(this.parent, (n) => new Int32Array(n));
    this.symbol = grow(this.symbol, (n) => new Uint16Array(n));
    this.count = grow(this.count, (n) => new Uint32Array(n));
    this.firstChild = grow(this.firstChild, (n) => new Int32Array(n));
    this.nextSibling = grow(this.nextSibling, (n) => new Int32Array(n));
    if (capacity > this.index.length * MAX_LOAD) this.rebuildIndex(capacity);
  }

  /** Rebuilds the index and the child lists from parent/symbol. */
  private rebuildIndex(capacity: number): void {
    const size = Math.max(1024, Math.ceil(capacity / MAX_LOAD));
    if (size !== this.index.length) this.index = new Int32Array(size);
    this.index.fill(EMPTY);
    this.slotScale = size / 2 ** 32;
    const { index, parent, symbol, firstChild, nextSibling } = this;
    const n = this.nodeCount;
    // Inserted in the order of their home slots (a counting sort on the slot's high bits), so the
    // writes sweep the index rather than miss the cache once per node.
    const starts = new Int32Array((size >>> BUCKET_BITS) + 2);
    for (let id = 1; id < n; id++) starts[(this.slot(parent[id], symbol[id]) >>> BUCKET_BITS) + 1]++;
    for (let b = 1; b < starts.length; b++) starts[b] += starts[b - 1];
    const ids = new Int32Array(Math.max(0, n - 1));
    const homes = new Int32Array(Math.max(0, n - 1));
    for (let id = 1; id < n; id++) {
      const h = this.slot(parent[id], symbol[id]);
      const k = starts[h >>> BUCKET_BITS]++;
      ids[k] = id;
      homes[k] = h;
    }
    for (let k = 0; k < ids.length; k++) {
      let h = homes[k];
      while (index[h] !== EMPTY) h = h + 1 === size ? 0 : h + 1;
      index[h] = ids[k];
    }
    // Backwards, so that each list is in id order and toArrays() of a loaded model is the file.
    firstChild.fill(EMPTY, 0, this.nodeCount);
    for (let id = this.nodeCount - 1; id >= 1; id--) {
      nextSibling[id] = firstChild[parent[id]];
      firstChild[parent[id]] = id;
    }
    nextSibling[ROOT] = EMPTY;
  }

  private depths(): Uint8Array {
    const depth = new Uint8Array(this.nodeCount);
    for (let i = 1; i < this.nodeCount; i++) depth[i] = depth[this.parent[i]] + 1;
    return depth;
  }

  /** keep[i] = 0 for kept nodes, EMPTY for pruned; returns how many are kept. */
  private markKept(keep: Int32Array, depth: Uint8Array, minDepth: number, threshold: number): number {
    let kept = 0;
    for (let i = 0; i < this.nodeCount; i++) {
      const drop =
        i !== ROOT && (keep[this.parent[i]] === EMPTY || (depth[i] >= minDepth && this.count[i] <= threshold));
      keep[i] = drop ? EMPTY : 0;
      if (!drop) kept++;
    }
    return kept;
  }

  /** Sets `ends` to the nodes of the n-grams ending just before `t`, creating nothing. */
  private resync(ids: ArrayLike<number>, t: number): void {
    this.ends.fill(EMPTY);
    this.ends[0] = ROOT;
    for (let j = Math.max(0, t - this.order + 1); j < t; j++) this.step(ids[j], false);
  }

  /** Moves `ends` one symbol forward: ends[m] becomes the m-gram that ends with `sym`. */
  private step(sym: number, create: boolean): void {
    const ends = this.ends;
    for (let m = this.order - 1; m >= 1; m--) {
      const p = ends[m - 1];
      ends[m] = p === EMPTY ? EMPTY : create ? this.findOrCreate(p, sym, m) : this.find(p, sym);
    }
  }

  private countPosition(sym: number, t: number): void {
    const n = this.order;
    const ends = this.ends;
    // The n-gram of the highest order is never a context, so it is not kept in `ends`.
    const topParent = ends[n - 1];
    const top = topParent === EMPTY ? EMPTY : this.findOrCreate(topParent, sym, n);
    if (top !== EMPTY) this.increment(top, n);
    this.step(sym, true);
    // The left extension of the m-gram is the (m+1)-gram ending here; a new one means a new
    // distinct predecessor. Before the start of the text, or where the extension was not stored,
    // the m-gram counts one unseen predecessor the first time only.
    for (let m = n - 1; m >= 1; m--) {
      const node = ends[m];
      if (node === EMPTY) continue;
      const longer = m + 1 === n ? top : ends[m + 1];
      // A new m-gram always counts: its extension may survive a pruning that removed it.
      const extensionNew = this.fresh[m] === 1 || (m + 1 <= t + 1 && longer !== EMPTY && this.fresh[m + 1] === 1);
      if (extensionNew) this.increment(node, m);
    }
  }

  private increment(node: number, level: number): void {
    const c = ++this.count[node];
    const base = level * 5;
    if (c <= 4) this.countOfCounts[base + c]++;
    if (c >= 2 && c <= 5) this.countOfCounts[base + c - 1]--;
    this.discountsStale = true;
  }

  /** Modified Kneser-Ney's D1, D2, D3+ per order from its count-of-counts (Chen and Goodman). */
  private refreshDiscounts(): void {
    if (!this.discountsStale) return;
    this.discountsStale = false;
    const coc = this.countOfCounts;
    for (let level = 1; level <= this.order; level++) {
      const [n1, n2, n3, n4] = [coc[level * 5 + 1], coc[level * 5 + 2], coc[level * 5 + 3], coc[level * 5 + 4]];
      const estimable = Math.min(n1, n2, n3, n4) >= MIN_COUNT_OF_COUNTS;
      const y = estimable ? n1 / (n1 + 2 * n2) : 0;
      const raw = estimable
        ? [1 - (2 * y * n2) / n1, 2 - (3 * y * n3) / n2, 3 - (4 * y * n4) / n3]
        : FALLBACK_DISCOUNTS;
      // Each discount must leave its count positive and remove something, or a context could
      // give all its mass away or none of it.
      for (let c = 0; c < 3; c++) {
        const d = (Number.isFinite(raw[c]) ? raw[c] : FALLBACK_DISCOUNTS[c]) * this.scaleOfDiscounts;
        this.discounts[level * 3 + c] = Math.min(c + 1 - 0.05, Math.max(0.05, d));
      }
    }
  }

  /** Fills `contexts` with the nodes of the context's suffixes and returns the longest usable length. */
  private findContexts(context: ArrayLike<number>): number {
    this.refreshDiscounts();
    const L = context.length;
    const longest = Math.min(this.order - 1, L);
    this.checkIds(context, L - longest, L);
    if (this.firstChild[ROOT] === EMPTY) return -1;
    // walked[k]: the node of the last k ids, EMPTY from the first length that was never seen.
    const walked = this.walked;
    walked.fill(EMPTY);
    walked[0] = ROOT;
    const keyLength = this.order - 2;
    const recent = keyLength > 0 && L > 0 ? this.recentEntry(context, L - 1) : -1;
    if (recent >= 0) {
      const base = recent * (keyLength + 1);
      const sym = context[L - 1];
      for (let k = 1; k <= longest; k++) {
        const shorter = this.recentNodes[base + k - 1];
        if (shorter === EMPTY) break;
        const node = this.find(shorter, sym);
        if (node === EMPTY) break;
        walked[k] = node;
      }
    } else {
      for (let k = 1; k <= longest; k++) {
        let node = ROOT;
        for (let j = L - k; j < L && node !== EMPTY; j++) node = this.find(node, context[j]);
        if (node === EMPTY) break;
        walked[k] = node;
      }
    }
    if (keyLength > 0) this.remember(context, L);
    this.contexts[0] = ROOT;
    let top = 0;
    for (let k = 1; k <= longest; k++) {
      const node = walked[k];
      if (node === EMPTY || this.firstChild[node] === EMPTY) break;
      this.contexts[k] = node;
      top = k;
    }
    return top;
  }

  /** The slot for the last order - 2 ids of context[0..end) and the hash of those ids. */
  private recentSlot(context: ArrayLike<number>, end: number): number {
    const start = Math.max(0, end - (this.order - 2));
    let h = end - start;
    for (let j = start; j < end; j++) h = hash(h, context[j]);
    return (h >>> 0) % RECENT;
  }

  /** The entry remembered for context[0..end), or -1. */
  private recentEntry(context: ArrayLike<number>, end: number): number {
    const slot = this.recentSlot(context, end);
    if (this.recentStamp[slot] !== this.version) return -1;
    const keyLength = this.order - 2;
    const length = Math.min(keyLength, end);
    if (this.recentLength[slot] !== length) return -1;
    const base = slot * keyLength;
    for (let i = 0; i < length; i++) if (this.recentKeys[base + i] !== context[end - length + i]) return -1;
    return slot;
  }

  private remember(context: ArrayLike<number>, end: number): void {
    const slot = this.recentSlot(context, end);
    const keyLength = this.order - 2;
    const length = Math.min(keyLength, end);
    const base = slot * keyLength;
    for (let i = 0; i < length; i++) this.recentKeys[base + i] = context[end - length + i];
    this.recentLength[slot] = length;
    this.recentStamp[slot] = this.version;
    this.recentNodes.set(this.walked.subarray(0, keyLength + 1), slot * (keyLength + 1));
  }

  private probabilityAt(top: number, id: number): number {
    if (top < 0) return 1 / this.vocabSize;
    const { count, discounts } = this;
    let p = this.rootDistribution()[id];
    for (let k = 1; k <= top; k++) {
      const node = this.contexts[k];
      this.sums(node, k);
      const c = this.find(node, id);
      const n = c === EMPTY ? 0 : count[c];
      const own = n === 0 ? 0 : n - discounts[(k + 1) * 3 + Math.min(n, 3) - 1];
      p = (own + this.sumRemoved * p) / this.sumTotal;
    }
    return p;
  }

  /**
   * The distribution given the empty context alone, cached because every query starts from it and
   * its successor list is the whole vocabulary.
   */
  private rootDistribution(): Float64Array {
    const q = this.rootDist;
    if (this.rootStamp === this.version) return q;
    const { firstChild, nextSibling, count, symbol, discounts } = this;
    this.sums(ROOT, 0);
    const total = this.sumTotal;
    q.fill(this.sumRemoved / total / this.vocabSize);
    for (let c = firstChild[ROOT]; c !== EMPTY; c = nextSibling[c]) {
      const n = count[c];
      q[symbol[c]] += (n - discounts[3 + Math.min(n, 3) - 1]) / total;
    }
    this.rootStamp = this.version;
    return q;
  }

  /**
   * Sets sumTotal and sumRemoved (the discounts taken) over a context's successors. Cached for the
   * one-symbol contexts, whose lists are long and which nearly every query visits.
   */
  private sums(node: number, k: number): void {
    const s = this.symbol[node];
    if (k === 1 && this.firstStamp[s] === this.version) {
      this.sumTotal = this.firstSums[2 * s];
      this.sumRemoved = this.firstSums[2 * s + 1];
      return;
    }
    const { firstChild, nextSibling, count, discounts } = this;
    const d1 = discounts[(k + 1) * 3];
    const d2 = discounts[(k + 1) * 3 + 1];
    const d3 = discounts[(k + 1) * 3 + 2];
    let total = 0;
    let removed = 0;
    for (let c = firstChild[node]; c !== EMPTY; c = nextSibling[c]) {
      const n = count[c];
      total += n;
      removed += n >= 3 ? d3 : n === 2 ? d2 : d1;
    }
    this.sumTotal = total;
    this.sumRemoved = removed;
    if (k === 1) {
      this.firstSums[2 * s] = total;
      this.firstSums[2 * s + 1] = removed;
      this.firstStamp[s] = this.version;
    }
  }
}
