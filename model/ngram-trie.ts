// The n-gram model's storage (ngram.ts counts and queries it): a forward trie whose node is
// (parent node, last symbol), so the successors of a context are the children of its node and a
// beam's distribution is one walk over few short lists. Nodes live in parallel typed arrays, because
// millions of JS objects or string keys would cost several times the memory and stall the GC; while
// training counts millions of n-grams they are found through an open-addressing index of node ids.
// Saved and loaded tries keep their nodes in breadth-first order, siblings adjacent, so a loaded
// model's successor lists are read from consecutive memory, and a served one finds a node by its
// parent's list, without the index: load it for serving rather than use the one just built.

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

export const ROOT = 0;
export const EMPTY = -1;
/**
 * What a node's 16-bit count holds once its count reaches it: the count itself is then in largeCounts. Nearly every
 * count is small, and a notes' trie of millions of nodes holds half the bytes it would in 32 bits.
 */
const LARGE_COUNT = 0xffff;
const MAX_LOAD = 0.7;
const BUCKET_BITS = 12;

export function hash(parent: number, sym: number): number {
  // Murmur3's finaliser: siblings and the children of neighbouring parents land far apart.
  let h = Math.imul(parent, 0x9e3779b1) + Math.imul(sym, 0x85ebca77);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`ngram: ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

/** The nodes in breadth-first order: what the file format stores of the trie. */
export interface TrieArrays {
  nodeCount: number;
  parent: Int32Array;
  symbol: Uint16Array;
  count: Uint32Array;
}

export class NgramTrie {
  nodeCount = 1;
  /**
   * Node id's parent at parent[id − parentBase]. parentBase is 0, every node's parent kept, where nodes are found
   * through the index; a served trie walks child lists instead, which need no parents of the loaded nodes (the
   * largest of its arrays but one), so it keeps only those of the nodes added since (parentBase = loadedCount) and
   * derives the rest when it prunes or is saved (parents()).
   */
  private parent: Int32Array;
  private parentBase = 0;
  /** Bit id of the loaded nodes: whether node id is the first of its siblings, which ends the list before it. */
  private firstOfSiblings = new Uint8Array(0);
  symbol: Uint16Array;
  /** Node id's count, or LARGE_COUNT where largeCounts holds it (countOf()). */
  private count: Uint16Array;
  private largeCounts = new Map<number, number>();
  firstChild: Int32Array;
  /**
   * The nodes below loadedCount came from load() in breadth-first order, so each parent's loaded
   * children are consecutive ids and need no links: a loaded model's own nodes cost no sibling
   * array. The nodes added since are linked in front of them, through nextAdded[id − loadedCount].
   */
  private loadedCount = 0;
  private nextAdded: Int32Array;
  /** New n-grams dropped because the node bound was reached. */
  refused = 0;
  /** fresh[level]: whether the last findOrCreate at that level created its node. */
  readonly fresh: Uint8Array;
  private index: Int32Array;
  /**
   * Whether nodes are found through `index`. A served model's trie, adopted from its file, walks child lists instead:
   * its queries come one context at a time, and the index would be the biggest of its arrays.
   */
  private indexed = true;
  // Slots per 2^32 hash values: an index of any size, not only powers of two, wastes less memory.
  private slotScale: number;

  constructor(
    readonly maxNodes: number,
    order: number,
  ) {
    const initial = Math.min(maxNodes, 1024);
    this.parent = new Int32Array(initial);
    this.symbol = new Uint16Array(initial);
    this.count = new Uint16Array(initial);
    this.firstChild = new Int32Array(initial);
    this.nextAdded = new Int32Array(initial);
    this.index = new Int32Array(0);
    this.slotScale = 0;
    this.parent[ROOT] = EMPTY;
    this.firstChild[ROOT] = EMPTY;
    this.nextAdded[ROOT] = EMPTY;
    this.rebuildIndex(initial, this.parent);
    this.fresh = new Uint8Array(order + 2);
  }

  /** Bytes held by the typed arrays. */
  memoryBytes(): number {
    return (
      this.parent.byteLength +
      this.firstOfSiblings.byteLength +
      this.symbol.byteLength +
      this.count.byteLength +
      this.firstChild.byteLength +
      this.nextAdded.byteLength +
      this.index.byteLength
    );
  }

  countOf(node: number): number {
    const n = this.count[node];
    return n === LARGE_COUNT ? this.largeCounts.get(node)! : n;
  }

  /** Adds one to `node`'s count; returns the new count. */
  increment(node: number): number {
    const n = this.countOf(node) + 1;
    this.setCount(node, n);
    return n;
  }

  private setCount(node: number, n: number): void {
    if (n < LARGE_COUNT) {
      if (this.count[node] === LARGE_COUNT) this.largeCounts.delete(node);
      this.count[node] = n;
    } else {
      this.count[node] = LARGE_COUNT;
      this.largeCounts.set(node, n);
    }
  }

  /** The sibling after `child` in its parent's list of children, or EMPTY after the last. */
  next(child: number): number {
    const added = child - this.loadedCount;
    if (added >= 0) return this.nextAdded[added];
    const after = child + 1;
    return after < this.loadedCount && !this.startsSiblings(after) ? after : EMPTY;
  }

  private startsSiblings(id: number): boolean {
    return (this.firstOfSiblings[id >>> 3] & (1 << (id & 7))) !== 0;
  }

  /** Marks where each loaded parent's children begin, from `parent` (every node's, in breadth-first order). */
  private markSiblings(parent: Int32Array): void {
    const n = this.loadedCount;
    const bits = new Uint8Array((n + 7) >>> 3);
    for (let id = 1; id < n; id++) if (parent[id] !== parent[id - 1]) bits[id >>> 3] |= 1 << (id & 7);
    this.firstOfSiblings = bits;
  }

  /**
   * Every node's parent: the trie's own array where it keeps them all, else one made from the child lists, which
   * hold the loaded nodes' in breadth-first order.
   */
  parents(): Int32Array {
    if (this.parentBase === 0) return this.parent;
    const parent = new Int32Array(this.nodeCount);
    parent[ROOT] = EMPTY;
    for (let p = 0; p < this.loadedCount; p++) {
      let child = this.firstChild[p];
      while (child >= this.loadedCount) child = this.nextAdded[child - this.loadedCount];
      for (; child !== EMPTY; child = this.next(child)) parent[child] = p;
    }
    parent.set(this.parent.subarray(0, this.nodeCount - this.loadedCount), this.loadedCount);
    return parent;
  }

  find(parent: number, sym: number): number {
    if (!this.indexed) return this.scan(parent, sym);
    const { index } = this;
    const size = index.length;
    for (let h = this.slot(parent, sym); ; h = h + 1 === size ? 0 : h + 1) {
      const id = index[h];
      if (id === EMPTY || (this.parent[id] === parent && this.symbol[id] === sym)) return id;
    }
  }

  private scan(parent: number, sym: number): number {
    for (let c = this.firstChild[parent]; c !== EMPTY; c = this.next(c)) if (this.symbol[c] === sym) return c;
    return EMPTY;
  }

  /** The node, or EMPTY when the bound is reached; `fresh` says whether it was created. */
  findOrCreate(parent: number, sym: number, level: number): number {
    if (!this.indexed) {
      const found = this.scan(parent, sym);
      if (found !== EMPTY) {
        this.fresh[level] = 0;
        return found;
      }
      if (this.nodeCount >= this.maxNodes) {
        this.refused++;
        return EMPTY;
      }
      this.ensureCapacity(this.nodeCount + 1);
      return this.append(parent, sym, level);
    }
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
    if (this.nodeCount >= this.symbol.length) {
      this.ensureCapacity(this.nodeCount + 1);
      // The index may have been rebuilt at another size.
      h = this.slot(parent, sym);
      while (this.index[h] !== EMPTY) h = h + 1 === this.index.length ? 0 : h + 1;
    }
    this.index[h] = this.nodeCount;
    return this.append(parent, sym, level);
  }

  /** A new node, first in its parent's list of children. */
  private append(parent: number, sym: number, level: number): number {
    const id = this.nodeCount++;
    this.parent[id - this.parentBase] = parent;
    this.symbol[id] = sym;
    this.setCount(id, 0);
    this.firstChild[id] = EMPTY;
    this.nextAdded[id - this.loadedCount] = this.firstChild[parent];
    this.firstChild[parent] = id;
    this.fresh[level] = 1;
    return id;
  }

  /** Each node's depth, from `parent` (parents()). */
  depths(parent: Int32Array): Uint8Array {
    const depth = new Uint8Array(this.nodeCount);
    for (let i = 1; i < this.nodeCount; i++) depth[i] = depth[parent[i]] + 1;
    return depth;
  }

  /**
   * keep[i] = 0 for kept nodes, EMPTY for nodes (with their subtrees) at minDepth or deeper whose
   * count is at most threshold; returns how many are kept.
   */
  markKept(parent: Int32Array, keep: Int32Array, depth: Uint8Array, minDepth: number, threshold: number): number {
    let kept = 0;
    for (let i = 0; i < this.nodeCount; i++) {
      const drop = i !== ROOT && (keep[parent[i]] === EMPTY || (depth[i] >= minDepth && this.countOf(i) <= threshold));
      keep[i] = drop ? EMPTY : 0;
      if (!drop) kept++;
    }
    return kept;
  }

  /** Removes the nodes markKept dropped, renumbering the rest in order; `parent` is parents(), and changes with them. */
  compact(keep: Int32Array, parent: Int32Array): void {
    const { symbol, count } = this;
    const largeCounts = new Map<number, number>();
    let j = 0;
    let loaded = 0;
    for (let i = 0; i < this.nodeCount; i++) {
      if (keep[i] === EMPTY) continue;
      keep[i] = j;
      parent[j] = i === ROOT ? EMPTY : keep[parent[i]];
      symbol[j] = symbol[i];
      count[j] = count[i];
      if (count[i] === LARGE_COUNT) largeCounts.set(j, this.largeCounts.get(i)!);
      j++;
      // Dropping nodes keeps the loaded ones in breadth-first order, each parent's still consecutive.
      if (i < this.loadedCount) loaded = j;
    }
    this.nodeCount = j;
    this.largeCounts = largeCounts;
    const capacity = symbol.length;
    if (loaded !== this.loadedCount) {
      this.loadedCount = loaded;
      this.nextAdded = new Int32Array(capacity - loaded);
    }
    this.keepParents(parent, capacity);
    this.rebuildIndex(capacity, parent);
  }

  /**
   * Takes `parent` (every node's) as the trie's parents: all of them where it is indexed, else only the added nodes',
   * in an array with room for `capacity` nodes.
   */
  private keepParents(parent: Int32Array, capacity: number): void {
    this.markSiblings(parent);
    if (this.indexed) {
      // The trie's own array (parents()), already of the capacity.
      this.parentBase = 0;
      this.parent = parent;
      return;
    }
    this.parentBase = this.loadedCount;
    this.parent = new Int32Array(capacity - this.loadedCount);
    this.parent.set(parent.subarray(this.loadedCount, this.nodeCount));
  }

  /**
   * The nodes in breadth-first order: a node's children are adjacent and parents never decrease,
   * so load() validates and indexes in one sequential pass.
   */
  breadthFirst(): TrieArrays {
    const n = this.nodeCount;
    const { firstChild } = this;
    const oldParent = this.parents();
    const byNew = new Int32Array(n);
    const newId = new Int32Array(n);
    let tail = 1;
    for (let head = 0; head < tail; head++) {
      for (let c = firstChild[byNew[head]]; c !== EMPTY; c = this.next(c)) {
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
      parent[i] = newId[oldParent[old]];
      symbol[i] = this.symbol[old];
      count[i] = this.countOf(old);
    }
    return { nodeCount: n, parent, symbol, count };
  }

  /**
   * Replaces the nodes with arrays in breadthFirst() order, checking what an index walk relies on:
   * every parent precedes its child (and parents never decrease), depths stay within the order,
   * symbols within the vocabulary, counts positive and no (parent, symbol) pair twice. Throws
   * RangeError naming the first problem. With `adopt` the arrays become the trie's own, which
   * learning changes in place: for arrays no one else holds, as a file's.
   */
  load(a: TrieArrays, order: number, vocabSize: number, adopt = false): void {
    const n = a.nodeCount;
    checkInteger('nodeCount', n, 1, this.maxNodes);
    if (a.parent.length !== n || a.symbol.length !== n || a.count.length !== n)
      throw new RangeError('ngram: array lengths differ from nodeCount');
    if (a.parent[ROOT] !== EMPTY) throw new RangeError('ngram: node 0 must be the root');
    const depth = new Uint8Array(n);
    // Siblings are adjacent, so a symbol seen twice under the current parent is a duplicate n-gram.
    const lastParent = new Int32Array(vocabSize).fill(EMPTY);
    for (let i = 1; i < n; i++) {
      const p = a.parent[i];
      if (!(p >= 0 && p < i && p >= a.parent[i - 1]))
        throw new RangeError(`ngram: node ${i} has a parent out of breadth-first order`);
      depth[i] = depth[p] + 1;
      const sym = a.symbol[i];
      if (sym < vocabSize) {
        if (lastParent[sym] === p) throw new RangeError(`ngram: node ${i} repeats an n-gram`);
        lastParent[sym] = p;
      }
      if (depth[i] > order) throw new RangeError(`ngram: node ${i} is deeper than the order`);
      if (a.symbol[i] >= vocabSize) throw new RangeError(`ngram: node ${i} has a symbol outside the vocabulary`);
      if (a.count[i] < 1) throw new RangeError(`ngram: node ${i} has count 0`);
    }
    this.nodeCount = 1;
    this.loadedCount = n;
    this.indexed = !adopt;
    if (adopt) {
      this.symbol = a.symbol;
      this.count = new Uint16Array(n);
      this.firstChild = new Int32Array(n);
      this.nextAdded = new Int32Array(0);
    } else {
      this.parentBase = 0;
      this.ensureCapacity(n);
      this.parent.set(a.parent);
      this.symbol.set(a.symbol);
    }
    this.largeCounts.clear();
    for (let i = 0; i < n; i++) this.setCount(i, a.count[i]);
    this.nodeCount = n;
    const capacity = this.symbol.length;
    // The trie's own parents where it copied them; a file's, adopted, are read here for the last time.
    const parent = adopt ? a.parent : this.parent;
    this.keepParents(parent, capacity);
    this.rebuildIndex(capacity, parent);
  }

  private slot(parent: number, sym: number): number {
    return Math.floor((hash(parent, sym) >>> 0) * this.slotScale);
  }

  private ensureCapacity(needed: number): void {
    const current = this.symbol.length;
    if (needed <= current) return;
    // A loaded model (the notes', millions of nodes) grows by little at a time, from what saved notes add.
    const growth = this.loadedCount > 0 ? 1.125 : 1.5;
    const capacity = Math.min(this.maxNodes, Math.max(needed, Math.ceil(current * growth)));
    this.parent = this.grownTo(this.parent, new Int32Array(capacity - this.parentBase), this.parentBase);
    this.symbol = this.grownTo(this.symbol, new Uint16Array(capacity));
    this.count = this.grownTo(this.count, new Uint16Array(capacity));
    this.firstChild = this.grownTo(this.firstChild, new Int32Array(capacity));
    const nextAdded = new Int32Array(capacity - this.loadedCount);
    nextAdded.set(this.nextAdded.subarray(0, Math.max(0, this.nodeCount - this.loadedCount)));
    this.nextAdded = nextAdded;
    if (this.indexed && capacity > this.index.length * MAX_LOAD) this.rebuildIndex(capacity, this.parent);
  }

  /** `made` holding the nodes of `a`, an array of one value per node from node `base` on. */
  private grownTo<T extends Int32Array | Uint16Array | Uint32Array>(a: T, made: T, base = 0): T {
    made.set(a.subarray(0, Math.max(0, this.nodeCount - base)) as never);
    return made;
  }

  /** Rebuilds the index (where there is one) and the child lists from `parent` (every node's) and the symbols. */
  private rebuildIndex(capacity: number, parent: Int32Array): void {
    if (this.indexed) this.fillIndex(capacity);
    else this.index = new Int32Array(0);
    const { firstChild, nextAdded, loadedCount } = this;
    // Backwards, so that each list is in id order and breadthFirst() of a loaded trie is the file;
    // nodes added since loading are linked in front of the loaded children, in id order too.
    firstChild.fill(EMPTY, 0, this.nodeCount);
    for (let id = Math.min(loadedCount, this.nodeCount) - 1; id >= 1; id--) firstChild[parent[id]] = id;
    for (let id = this.nodeCount - 1; id >= Math.max(1, loadedCount); id--) {
      nextAdded[id - loadedCount] = firstChild[parent[id]];
      firstChild[parent[id]] = id;
    }
    if (loadedCount === 0) nextAdded[ROOT] = EMPTY;
  }

  private fillIndex(capacity: number): void {
    const size = Math.max(1024, Math.ceil(capacity / MAX_LOAD));
    if (size !== this.index.length) this.index = new Int32Array(size);
    this.index.fill(EMPTY);
    this.slotScale = size / 2 ** 32;
    const { index, parent, symbol } = this;
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
  }
}
