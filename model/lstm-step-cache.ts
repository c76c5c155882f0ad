// The LSTM's latest steps, kept so that a step taken again costs a lookup. A search after a keystroke starts where the
// search before it had been, one character on, and steps some of the same states by the same characters again. A step
// is a function of the state, the id and the weights alone, so what is kept is what the step would give, as long as
// the weights have not changed since: the owner empties the cache when they do.
/** What a step gives: the state after it and the log-probabilities of the id that follows (a predictor's Snapshot). */
interface Step {
  state: Float32Array;
  logProbs: Float32Array;
}

/** How many of a state's values keyOf() reads: a few hundred tell apart the states of a search. */
const HASHED_VALUES = 256;

export class LstmStepCache {
  /** The slot holding each key (a hash of the state and the id) kept. */
  private readonly slotOf = new Map<number, number>();
  private keys: number[] = [];
  private ids: number[] = [];
  /** When each slot was last read or written, to let go of the least recently used. */
  private used: number[] = [];
  private clock = 0;
  /**
   * The states stepped (compared in full, so that two with the same key are told apart), the states they stepped to,
   * and the log-probabilities after, a slot after another. Kept in arrays made once, so that keeping a step makes no
   * garbage: a cache that allocated its copies had the server collect more, and its slowest requests came slower.
   */
  private from = new Float32Array(0);
  private to = new Float32Array(0);
  private logProbs = new Float32Array(0);
  private stateSize = 0;
  private vocabSize = 0;

  constructor(readonly capacity: number) {}

  /** A copy of the snapshot that stepping `from` by `id` gave, if it is still kept. */
  get(from: Float32Array, id: number): Step | undefined {
    if (from.length !== this.stateSize) return undefined;
    const slot = this.slotOf.get(keyOf(from, id));
    if (slot === undefined || this.ids[slot] !== id || !this.holds(slot, from)) return undefined;
    this.used[slot] = ++this.clock;
    const S = this.stateSize;
    const V = this.vocabSize;
    return {
      state: this.to.slice(slot * S, (slot + 1) * S),
      logProbs: this.logProbs.slice(slot * V, (slot + 1) * V),
    };
  }

  /** Keeps a copy of what stepping `from` by `id` gave; the least recently used goes when the cache is full. */
  set(from: Float32Array, id: number, snapshot: Step): void {
    // A step keeps the state's size; a snapshot that did not would not fit the slots.
    if (this.capacity <= 0 || snapshot.state.length !== from.length) return;
    if (from.length !== this.stateSize || snapshot.logProbs.length !== this.vocabSize) {
      this.allocate(from.length, snapshot.logProbs.length);
    }
    const key = keyOf(from, id);
    let slot = this.slotOf.get(key);
    if (slot === undefined) {
      slot = this.keys.length < this.capacity ? this.keys.length : this.leastRecentlyUsed();
      if (slot < this.keys.length) this.slotOf.delete(this.keys[slot]);
      this.slotOf.set(key, slot);
    }
    this.keys[slot] = key;
    this.ids[slot] = id;
    this.used[slot] = ++this.clock;
    this.from.set(from, slot * this.stateSize);
    this.to.set(snapshot.state, slot * this.stateSize);
    this.logProbs.set(snapshot.logProbs, slot * this.vocabSize);
  }

  clear(): void {
    this.slotOf.clear();
    this.keys = [];
    this.ids = [];
    this.used = [];
  }

  get size(): number {
    return this.slotOf.size;
  }

  private allocate(stateSize: number, vocabSize: number): void {
    this.clear();
    this.stateSize = stateSize;
    this.vocabSize = vocabSize;
    this.from = new Float32Array(this.capacity * stateSize);
    this.to = new Float32Array(this.capacity * stateSize);
    this.logProbs = new Float32Array(this.capacity * vocabSize);
  }

  private leastRecentlyUsed(): number {
    let oldest = 0;
    for (let slot = 1; slot < this.used.length; slot++) if (this.used[slot] < this.used[oldest]) oldest = slot;
    return oldest;
  }

  /** Whether the slot's state holds the same bits as `state` (NaN included, which no state should hold). */
  private holds(slot: number, state: Float32Array): boolean {
    const kept = new Int32Array(this.from.buffer, slot * this.stateSize * 4, this.stateSize);
    const given = new Int32Array(state.buffer, state.byteOffset, state.length);
    for (let i = 0; i < given.length; i++) if (kept[i] !== given[i]) return false;
    return true;
  }
}

/** A hash of the id and of HASHED_VALUES of the state's values, spread over it. */
function keyOf(state: Float32Array, id: number): number {
  const bits = new Int32Array(state.buffer, state.byteOffset, state.length);
  const stride = Math.max(1, Math.floor(bits.length / HASHED_VALUES));
  let hash = Math.imul(id + 1, 0x9e3779b1);
  for (let i = 0; i < bits.length; i += stride) hash = Math.imul(hash ^ bits[i], 0x85ebca6b) ^ (hash >>> 15);
  return hash >>> 0;
}
