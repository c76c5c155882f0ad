// The trie nodes of contexts, which every count and every query of the n-gram starts from: the
// n-grams ending at each position of a text walked forward (adding and scoring text), and the
// suffixes of a queried context. A beam's next context is a queried one plus a symbol, so the
// suffix nodes of recent contexts are remembered, keyed by their last order - 2 ids, and the next
// context's are one step from them instead of a walk from the root per length.
import { EMPTY, hash, NgramTrie, ROOT } from './ngram-trie';

// Contexts remembered for the next query: more than a beam search keeps alive at once.
const RECENT = 256;

export class ContextNodes {
  /** ends[m]: the node of the m-gram ending at the walk's position (EMPTY where it is not stored). */
  readonly ends: Int32Array;
  /** contexts[k]: the node of the queried context's last k ids, for k up to what find() returned. */
  readonly contexts: Int32Array;
  private readonly walked: Int32Array;
  private readonly recentKeys: Int32Array;
  private readonly recentLength: Int32Array;
  private readonly recentStamp: Uint32Array;
  private readonly recentNodes: Int32Array;

  constructor(
    private readonly trie: NgramTrie,
    private readonly order: number,
  ) {
    this.ends = new Int32Array(order + 1);
    this.contexts = new Int32Array(order);
    this.walked = new Int32Array(order);
    const keyLength = Math.max(0, order - 2);
    this.recentKeys = new Int32Array(RECENT * keyLength);
    this.recentLength = new Int32Array(RECENT);
    this.recentStamp = new Uint32Array(RECENT);
    this.recentNodes = new Int32Array(RECENT * (keyLength + 1));
  }

  /** Sets `ends` to the nodes of the n-grams ending just before `t`, creating nothing. */
  resync(ids: ArrayLike<number>, t: number): void {
    this.ends.fill(EMPTY);
    this.ends[0] = ROOT;
    for (let j = Math.max(0, t - this.order + 1); j < t; j++) this.step(ids[j], false);
  }

  /** Moves `ends` one symbol forward: ends[m] becomes the m-gram that ends with `sym`. */
  step(sym: number, create: boolean): void {
    const { ends, trie } = this;
    for (let m = this.order - 1; m >= 1; m--) {
      const p = ends[m - 1];
      ends[m] = p === EMPTY ? EMPTY : create ? trie.findOrCreate(p, sym, m) : trie.find(p, sym);
    }
  }

  /**
   * Fills `contexts` with the nodes of the suffixes of `context` (its last `longest` ids at most)
   * that have successors, and returns the longest such length; -1 for an empty trie. Nodes
   * remembered under another `version` (the model's, changed by every add and prune) are ignored.
   */
  find(context: ArrayLike<number>, longest: number, version: number): number {
    const { trie } = this;
    const L = context.length;
    if (trie.firstChild[ROOT] === EMPTY) return -1;
    // walked[k]: the node of the last k ids, EMPTY from the first length that was never seen.
    const walked = this.walked;
    walked.fill(EMPTY);
    walked[0] = ROOT;
    const keyLength = this.order - 2;
    const recent = keyLength > 0 && L > 0 ? this.recentEntry(context, L - 1, version) : -1;
    if (recent >= 0) {
      const base = recent * (keyLength + 1);
      const sym = context[L - 1];
      for (let k = 1; k <= longest; k++) {
        const shorter = this.recentNodes[base + k - 1];
        if (shorter === EMPTY) break;
        const node = trie.find(shorter, sym);
        if (node === EMPTY) break;
        walked[k] = node;
      }
    } else {
      for (let k = 1; k <= longest; k++) {
        let node = ROOT;
        for (let j = L - k; j < L && node !== EMPTY; j++) node = trie.find(node, context[j]);
        if (node === EMPTY) break;
        walked[k] = node;
      }
    }
    if (keyLength > 0) this.remember(context, L, version);
    this.contexts[0] = ROOT;
    let top = 0;
    for (let k = 1; k <= longest; k++) {
      const node = walked[k];
      if (node === EMPTY || trie.firstChild[node] === EMPTY) break;
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
  private recentEntry(context: ArrayLike<number>, end: number, version: number): number {
    const slot = this.recentSlot(context, end);
    if (this.recentStamp[slot] !== version) return -1;
    const keyLength = this.order - 2;
    const length = Math.min(keyLength, end);
    if (this.recentLength[slot] !== length) return -1;
    const base = slot * keyLength;
    for (let i = 0; i < length; i++) if (this.recentKeys[base + i] !== context[end - length + i]) return -1;
    return slot;
  }

  private remember(context: ArrayLike<number>, end: number, version: number): void {
    const slot = this.recentSlot(context, end);
    const keyLength = this.order - 2;
    const length = Math.min(keyLength, end);
    const base = slot * keyLength;
    for (let i = 0; i < length; i++) this.recentKeys[base + i] = context[end - length + i];
    this.recentLength[slot] = length;
    this.recentStamp[slot] = version;
    this.recentNodes.set(this.walked.subarray(0, keyLength + 1), slot * (keyLength + 1));
  }
}
