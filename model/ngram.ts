// Character n-gram memory of the user's text (interpolated modified Kneser-Ney), for mixing with the LSTM.
// The n-grams form a forward trie (ngram-trie.ts): the successors of a context are the children of
// its node.
//
// Counts follow Kneser-Ney: n-grams of the highest order hold raw counts; every lower order holds
// continuation counts (how many distinct symbols were seen before it), incremented when its left
// extension is new. Discounts are modified KN's three per order (ngram-discounts.ts).

import { ContextNodes } from './ngram-contexts';
import { KneserNeyDiscounts } from './ngram-discounts';
import { checkInteger, EMPTY, NgramArrays, NgramTrie, ROOT } from './ngram-trie';

export type { NgramArrays } from './ngram-trie';

export const NGRAM_DEFAULT_ORDER = 9;
export const NGRAM_MAX_ORDER = 16;
/** Each node costs 18 bytes of arrays, and an index slot while training (memoryBytes()): about 95 MB at this bound. */
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

// Pruning leaves room so that it runs again only after a good share of new text.
const PRUNE_TARGET = 0.75;

export class NgramModel {
  readonly vocabSize: number;
  readonly order: number;
  readonly maxNodes: number;

  private readonly trie: NgramTrie;
  private readonly kn: KneserNeyDiscounts;
  private readonly nodes: ContextNodes;
  private pruned = 0;
  private prunes = 0;
  // Scratch reused by every call, so queries allocate nothing.
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
    this.trie = new NgramTrie(maxNodes, order);
    this.kn = new KneserNeyDiscounts(order, options.discountScale ?? NGRAM_DEFAULT_DISCOUNT_SCALE);
    this.nodes = new ContextNodes(this.trie, order);
    this.scratch = new Float64Array(vocabSize);
    this.rootDist = new Float64Array(vocabSize);
    this.firstStamp = new Uint32Array(vocabSize);
    this.firstSums = new Float64Array(2 * vocabSize);
  }

  get discountScale(): number {
    return this.kn.scale;
  }

  set discountScale(scale: number) {
    this.kn.scale = scale;
    this.version++;
  }

  /**
   * Sets the discount scale that scores `heldOut` best (text not added to the model, such as the
   * trainer's validation split) and returns it, because the best scale depends on how repetitive
   * the user's text is. Each candidate costs one score() of heldOut, so a short sample is enough.
   */
  tuneDiscountScale(heldOut: ArrayLike<number>, candidates: number[] = [0.9, 1, 1.1, 1.2, 1.3]): number {
    let best = this.kn.scale;
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
    return this.trie.nodeCount;
  }

  /** Bytes held by the typed arrays (what the model costs in RSS, give or take the scratch). */
  memoryBytes(): number {
    return this.trie.memoryBytes() + this.scratch.byteLength;
  }

  stats(): NgramStats {
    const { trie } = this;
    const depth = trie.depths(trie.parents());
    const perOrder = new Array<number>(this.order + 1).fill(0);
    for (let i = 0; i < trie.nodeCount; i++) perOrder[depth[i]]++;
    return { nodes: trie.nodeCount, perOrder, pruned: this.pruned, prunes: this.prunes, refused: trie.refused };
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
    this.nodes.resync(ids, from);
    const n = this.order;
    const prunedBefore = this.pruned;
    for (let t = from; t < ids.length; t++) {
      if (this.trie.nodeCount + n > this.maxNodes) {
        this.prune(Math.floor(this.maxNodes * PRUNE_TARGET));
        this.nodes.resync(ids, t);
      }
      this.countPosition(ids[t], t);
    }
    return this.pruned - prunedBefore;
  }

  /**
   * The share of the text's n-grams of the highest order (the whole text when it is shorter) that are counted: 1 for a
   * text the model was built from, unless pruning dropped some; near 0 for text it never saw.
   */
  countedShare(ids: ArrayLike<number>): number {
    const n = Math.min(this.order, ids.length);
    let counted = 0;
    for (let end = n; end <= ids.length; end++) {
      let node = ROOT;
      for (let i = end - n; i < end && node !== EMPTY; i++) node = this.trie.find(node, ids[i]);
      if (node !== EMPTY && this.trie.countOf(node) > 0) counted++;
    }
    return n === 0 ? 0 : counted / (ids.length - n + 1);
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
    const { trie } = this;
    const { firstChild, symbol } = trie;
    const discounts = this.kn.values;
    const q = this.scratch;
    if (top < 0) q.fill(1 / V);
    else q.set(this.rootDistribution());
    // p = scale * q, so that mixing in an order touches only its successors, not all V entries.
    let scale = 1;
    for (let k = 1; k <= top; k++) {
      const node = this.nodes.contexts[k];
      this.sums(node, k);
      const total = this.sumTotal;
      const d1 = discounts[(k + 1) * 3];
      const d2 = discounts[(k + 1) * 3 + 1];
      const d3 = discounts[(k + 1) * 3 + 2];
      scale *= this.sumRemoved / total;
      const inv = 1 / (total * scale);
      for (let c = firstChild[node]; c !== EMPTY; c = trie.next(c)) {
        const n = trie.countOf(c);
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
        for (let c = firstChild[this.nodes.contexts[top]]; c !== EMPTY; c = trie.next(c)) {
          mass += out[symbol[c]];
          successors++;
        }
        this.sums(this.nodes.contexts[top], top);
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
    this.kn.refresh();
    this.nodes.resync(ids, from);
    const { ends, contexts } = this.nodes;
    let nats = 0;
    for (let t = from; t < ids.length; t++) {
      let top = 0;
      contexts[0] = ROOT;
      while (top + 1 < this.order && ends[top + 1] !== EMPTY && this.trie.firstChild[ends[top + 1]] !== EMPTY) {
        contexts[top + 1] = ends[top + 1];
        top++;
      }
      if (this.trie.firstChild[ROOT] === EMPTY) top = -1;
      nats -= Math.log(this.probabilityAt(top, ids[t]));
      this.nodes.step(ids[t], false);
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
    const { trie } = this;
    const parent = trie.parents();
    const depth = trie.depths(parent);
    const keep = new Int32Array(trie.nodeCount);
    let kept = trie.nodeCount;
    for (let threshold = 1; kept > target && threshold < 0x7fffffff; threshold *= 2) {
      for (let minDepth = this.order; minDepth >= 2 && kept > target; minDepth--) {
        kept = trie.markKept(parent, keep, depth, minDepth, threshold);
      }
    }
    if (kept === trie.nodeCount) return;
    this.version++;
    this.prunes++;
    this.pruned += trie.nodeCount - kept;
    trie.compact(keep, parent);
  }

  /**
   * The model's arrays, with the nodes in breadth-first order (NgramTrie.breadthFirst), so that
   * fromArrays() validates and indexes them in one sequential pass.
   */
  toArrays(): NgramArrays {
    const { nodeCount, parent, symbol, count } = this.trie.breadthFirst();
    return {
      order: this.order,
      vocabSize: this.vocabSize,
      maxNodes: this.maxNodes,
      discountScale: this.kn.scale,
      nodeCount,
      parent,
      symbol,
      count,
      countOfCounts: this.kn.countOfCounts.slice(),
      pruned: this.pruned,
      prunes: this.prunes,
      refused: this.trie.refused,
    };
  }

  /**
   * Rebuilds a model from arrays in toArrays() order, checking the counts of counts here and the
   * nodes in NgramTrie.load. Throws RangeError naming the first problem. With `adopt` the model
   * takes the arrays as its own rather than copying them (NgramTrie.load).
   */
  static fromArrays(a: NgramArrays, adopt = false): NgramModel {
    const model = new NgramModel(a.vocabSize, { order: a.order, maxNodes: a.maxNodes, discountScale: a.discountScale });
    if (a.countOfCounts.length !== model.kn.countOfCounts.length)
      throw new RangeError('ngram: countOfCounts has the wrong length');
    for (const v of a.countOfCounts)
      if (!Number.isInteger(v) || v < 0) throw new RangeError('ngram: countOfCounts holds a value that is not a count');
    model.trie.load(a, a.order, a.vocabSize, adopt);
    model.kn.load(a.countOfCounts);
    model.pruned = a.pruned;
    model.prunes = a.prunes;
    model.trie.refused = a.refused;
    return model;
  }

  private checkIds(ids: ArrayLike<number>, from: number, to: number): void {
    const V = this.vocabSize;
    for (let i = from; i < to; i++) {
      const x = ids[i];
      if (!(x >= 0 && x < V && (x | 0) === x)) throw new RangeError(`ngram: id ${x} at ${i} is not in [0, ${V})`);
    }
  }

  private countPosition(sym: number, t: number): void {
    const n = this.order;
    const { ends } = this.nodes;
    // The n-gram of the highest order is never a context, so it is not kept in `ends`.
    const topParent = ends[n - 1];
    const { fresh } = this.trie;
    const top = topParent === EMPTY ? EMPTY : this.trie.findOrCreate(topParent, sym, n);
    if (top !== EMPTY) this.kn.counted(n, this.trie.increment(top));
    this.nodes.step(sym, true);
    // The left extension of the m-gram is the (m+1)-gram ending here; a new one means a new
    // distinct predecessor. Before the start of the text, or where the extension was not stored,
    // the m-gram counts one unseen predecessor the first time only.
    for (let m = n - 1; m >= 1; m--) {
      const node = ends[m];
      if (node === EMPTY) continue;
      const longer = m + 1 === n ? top : ends[m + 1];
      // A new m-gram always counts: its extension may survive a pruning that removed it.
      const extensionNew = fresh[m] === 1 || (m + 1 <= t + 1 && longer !== EMPTY && fresh[m + 1] === 1);
      if (extensionNew) this.kn.counted(m, this.trie.increment(node));
    }
  }

  /** Finds the nodes of the suffixes of `context` (nodes.contexts); the longest usable length, -1 for an empty model. */
  private findContexts(context: ArrayLike<number>): number {
    this.kn.refresh();
    const L = context.length;
    const longest = Math.min(this.order - 1, L);
    this.checkIds(context, L - longest, L);
    return this.nodes.find(context, longest, this.version);
  }

  private probabilityAt(top: number, id: number): number {
    if (top < 0) return 1 / this.vocabSize;
    const discounts = this.kn.values;
    let p = this.rootDistribution()[id];
    for (let k = 1; k <= top; k++) {
      const node = this.nodes.contexts[k];
      this.sums(node, k);
      const c = this.trie.find(node, id);
      const n = c === EMPTY ? 0 : this.trie.countOf(c);
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
    const { trie } = this;
    const { firstChild, symbol } = trie;
    const discounts = this.kn.values;
    this.sums(ROOT, 0);
    const total = this.sumTotal;
    q.fill(this.sumRemoved / total / this.vocabSize);
    for (let c = firstChild[ROOT]; c !== EMPTY; c = trie.next(c)) {
      const n = trie.countOf(c);
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
    const s = this.trie.symbol[node];
    if (k === 1 && this.firstStamp[s] === this.version) {
      this.sumTotal = this.firstSums[2 * s];
      this.sumRemoved = this.firstSums[2 * s + 1];
      return;
    }
    const { trie } = this;
    const { firstChild } = trie;
    const discounts = this.kn.values;
    const d1 = discounts[(k + 1) * 3];
    const d2 = discounts[(k + 1) * 3 + 1];
    const d3 = discounts[(k + 1) * 3 + 2];
    let total = 0;
    let removed = 0;
    for (let c = firstChild[node]; c !== EMPTY; c = trie.next(c)) {
      const n = trie.countOf(c);
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
