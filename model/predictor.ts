// "Step a batch of states by one character": the one thing completion needs from a model, and the tfjs LSTM behind it.
import * as tf from '@tensorflow/tfjs';
import type { SavedModel } from './format';
import { CharLstm, LstmState, parametersFromWeights } from './network';
import { Vocabulary } from './vocab';
import type { NetworkConfig } from './architecture';

/** A model state plus the distribution of the character that follows it. */
export interface Snapshot {
  state: Float32Array;
  logProbs: Float32Array;
}

/** A frozen character model over a vocabulary, stepped for a batch of states held as Float32Arrays. */
export interface Predictor {
  readonly vocabulary: Vocabulary;
  zeroState(): Float32Array;
  /** Feeds one character to each state; returns the new states and next-character log-probabilities. */
  step(states: Float32Array[], ids: ArrayLike<number>): Promise<Snapshot[]>;
  /** Learns, where the model learns online, that `id` came after `before`, a snapshot of its own, in the real text. */
  observe?(before: Snapshot, id: number): void;
  /**
   * What UNKNOWN (id 0) would most likely be, where the document has shown characters outside the
   * vocabulary: its code point and its cost in nats beyond UNKNOWN's own, after `completion`, the
   * text a completion has so far, which follows what the model has read.
   */
  nameUnknown?(completion: string): { codePoint: number; nats: number } | undefined;
  dispose(): void;
}

/** The LSTM of a saved model, stepped with tfjs on the active backend. */
export class LstmPredictor implements Predictor {
  readonly vocabulary: Vocabulary;
  private readonly model: CharLstm;
  private readonly stateSize: number;

  /** Takes what a saved model holds; metadata is not needed. */
  constructor(saved: Pick<SavedModel, 'config' | 'vocabulary' | 'weights'>) {
    this.vocabulary = saved.vocabulary;
    this.model = new CharLstm(saved.config, parametersFromWeights(saved.config, saved.weights));
    this.model.freeze();
    this.stateSize = 2 * saved.config.layers * saved.config.hidden;
  }

  get config(): NetworkConfig {
    return this.model.config;
  }

  zeroState(): Float32Array {
    return new Float32Array(this.stateSize);
  }

  async step(states: Float32Array[], ids: ArrayLike<number>): Promise<Snapshot[]> {
    const { layers, hidden: H, vocabSize: V } = this.model.config;
    const B = states.length;
    const pack = (part: number) =>
      Array.from({ length: layers }, (_, l) => {
        const buffer = new Float32Array(B * H);
        for (let b = 0; b < B; b++) buffer.set(states[b].subarray((2 * l + part) * H, (2 * l + part + 1) * H), b * H);
        return tf.tensor2d(buffer, [B, H]);
      });
    const input: LstmState = { h: pack(0), c: pack(1) };
    // Logits and every new state in one tensor, so a GPU pays for one read back per step, not 2L+1.
    const packed = tf.tidy(() => {
      const { logits, state } = this.model.step(Int32Array.from(ids), input);
      return tf.concat([logits, ...state.h.flatMap((h, l) => [h, state.c[l]])], 1);
    });
    tf.dispose([...input.h, ...input.c]);
    const values = (await packed.data()) as Float32Array;
    packed.dispose();
    const row = V + this.stateSize;
    return Array.from({ length: B }, (_, b) => ({
      state: values.slice(b * row + V, (b + 1) * row),
      logProbs: logSoftmax(values.subarray(b * row, b * row + V)),
    }));
  }

  dispose(): void {
    this.model.dispose();
  }
}

export function logSoftmax(logits: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  return Float32Array.from(logits, (x) => x - lse);
}
