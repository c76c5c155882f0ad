// Dynamic evaluation: the LSTM adapting to the document being written. A document that has been typed for a while gets
// a copy of the LSTM's weights, and each stretch of text the user typed and kept becomes one step of gradient descent
// on that copy, taken while the server is idle, so that the names and turns of phrase of this document grow likelier
// from then on. The shared weights never change, and only the document adapted last keeps its copy, so memory stays
// bounded.
import { ADAPTATION_STEP, type AdaptationSettings } from './lstm-adaptation-step';
import type { LstmPredictor } from './predictor';

export const LSTM_ADAPTATION = {
  /** Characters per step (its rule is in lstm-adaptation-step.ts): each step backpropagates through this many. */
  segment: 32,
  /**
   * Documents with a copy of the weights at once; the one adapted least recently gives its copy up.
   * Each copy costs its weights, their mean squares in bfloat16 and a step kernel packed from them (docs/measurements.md
   * has the server's RSS with them).
   */
  maxDocuments: 1,
  /**
   * Steps waiting for idle time, per document; beyond this the oldest are dropped, so that a long
   * paste or a typist who never pauses does not queue seconds of work.
   */
  maxWaiting: 16,
} as const;

/** The copies of the LSTM's weights, one per adapted document, for at most maxDocuments documents. */
export class AdaptedLstms {
  private readonly copies = new Map<object, LstmPredictor>();
  /** Set with the model's unloading: nothing is copied or adapted after. */
  disposed = false;

  constructor(
    readonly shared: LstmPredictor,
    private readonly maxDocuments: number = LSTM_ADAPTATION.maxDocuments,
    private readonly settings: AdaptationSettings = ADAPTATION_STEP,
  ) {}

  /** The weights `owner` steps with: its copy while it has one, else the shared ones. */
  weightsOf(owner: object): LstmPredictor {
    return this.copies.get(owner) ?? this.shared;
  }

  /** `owner`'s copy, made now if it has none; the least recently adapted copy goes when there are too many. */
  copyFor(owner: object): LstmPredictor {
    let copy = this.copies.get(owner);
    if (copy) this.copies.delete(owner);
    else {
      copy = this.shared.fork(this.settings);
      // Unloaded: the copy is not kept, and a disposed copy adapts nothing.
      if (this.disposed) {
        copy.dispose();
        return copy;
      }
    }
    this.copies.set(owner, copy);
    for (const [other, oldest] of this.copies) {
      if (this.copies.size <= this.maxDocuments) break;
      this.copies.delete(other);
      oldest.dispose();
    }
    return copy;
  }

  get size(): number {
    return this.copies.size;
  }

  dispose(): void {
    this.disposed = true;
    for (const copy of this.copies.values()) copy.dispose();
    this.copies.clear();
  }
}

/**
 * One document's side of dynamic evaluation: the text typed and kept, cut into segments, each with
 * the LSTM's state where it starts, waiting for adaptNext().
 */
export class LstmAdaptation {
  private segment: number[] = [];
  private segmentStart: Float32Array | undefined;
  private readonly waiting: Array<{ start: Float32Array; ids: Int32Array }> = [];
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly lstms: AdaptedLstms) {}

  /** The weights this document steps with. */
  get lstm(): LstmPredictor {
    return this.lstms.weightsOf(this);
  }

  /**
   * `id` was typed and kept after a position whose LSTM state was `lstmState`. A segment holds
   * segment + 1 ids and the state just before the first: its step reads them in turn and is taught
   * each but the first, which ended the segment before.
   */
  observe(lstmState: Float32Array, id: number): void {
    if (this.segment.length === 0) this.segmentStart = lstmState.slice();
    this.segment.push(id);
    if (this.segment.length <= LSTM_ADAPTATION.segment) return;
    this.waiting.push({ start: this.segmentStart!, ids: Int32Array.from(this.segment) });
    if (this.waiting.length > LSTM_ADAPTATION.maxWaiting) this.waiting.shift();
    // The next segment starts from this id, so that the step from it to the id after is taught too.
    this.segment = [id];
    this.segmentStart = lstmState.slice();
  }

  get pending(): boolean {
    return this.waiting.length > 0;
  }

  /** Takes the oldest waiting step on this document's copy of the weights; a call made meanwhile waits its turn. */
  adaptNext(): Promise<void> {
    // A step that failed is not retried, and does not stop the ones after it.
    this.running = this.running
      .catch(() => undefined)
      .then(async () => {
        const next = this.waiting.shift();
        if (!next || this.lstms.disposed) return;
        // Every id but the last is read, and every id but the first is taught.
        const { start, ids } = next;
        const inputs = ids.subarray(0, ids.length - 1);
        await this.lstms.copyFor(this).adapt(start, inputs, ids.subarray(1));
      });
    return this.running;
  }
}
