// Adam with global-norm gradient clipping. Written out rather than tf.train.adam, which has no such
// clip, and so that its moments can be saved for --resume and restored exactly.
import * as tf from '@tensorflow/tfjs';
import { readWeights, type Parameters } from '../model/network';
import type { OptimizerState } from './optimizer-state';
import { TRAIN_DEFAULTS } from './defaults';
import { averageRate } from './schedule';

export interface AdamSettings {
  beta1: number;
  beta2: number;
  epsilon: number;
  clipNorm: number;
}

export const ADAM_DEFAULTS: AdamSettings = {
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  clipNorm: TRAIN_DEFAULTS.clipNorm,
};

export class Adam {
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    private readonly params: Parameters,
    private readonly settings: AdamSettings = ADAM_DEFAULTS,
  ) {
    // In tidy, so the zeros a variable is made from are released: a timing that builds an optimizer
    // per shape would otherwise leave two model-sized tensors behind each time.
    tf.tidy(() => {
      for (const [name, p] of params) {
        this.m.set(name, tf.variable(tf.zerosLike(p), false));
        this.v.set(name, tf.variable(tf.zerosLike(p), false));
      }
    });
  }

  /** Applies one update. Disposes the gradients. */
  apply(gradients: Map<string, tf.Tensor>, learningRate: number): void {
    const { beta1, beta2, epsilon, clipNorm } = this.settings;
    this.step++;
    // Bias correction folded into the step size, as in the Adam paper's efficient form.
    const stepSize = (learningRate * Math.sqrt(1 - beta2 ** this.step)) / (1 - beta1 ** this.step);
    tf.tidy(() => {
      // The clipping factor stays a tensor, so a GPU never waits for the norm to be read back.
      // Pairwise adds rather than addN: a WebGPU device may bind as few as 8 buffers per shader.
      const norm = tf.sqrt([...gradients.values()].map((g) => tf.sum(tf.square(g))).reduce((a, b) => tf.add(a, b)));
      const clip = tf.minimum(1, tf.div(clipNorm, tf.maximum(norm, 1e-12)));
      for (const [name, p] of this.params) {
        const g = tf.mul(gradients.get(name)!, clip);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        p.assign(tf.sub(p, tf.mul(tf.div(m, tf.add(tf.sqrt(v), epsilon)), stepSize)));
      }
    });
    tf.dispose([...gradients.values()]);
  }

  /** A copy of the moments and step, for saving next to the weights. */
  async state(): Promise<OptimizerState> {
    const read = async (moments: Map<string, tf.Variable>) => {
      const values = await Promise.all([...moments.values()].map((x) => x.data() as Promise<Float32Array>));
      return new Map([...moments.keys()].map((name, i) => [name, values[i]]));
    };
    return { step: this.step, m: await read(this.m), v: await read(this.v) };
  }

  /** Continues from a saved state: the next update is exactly the one the saving run would have made. */
  restore(state: OptimizerState): void {
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        this.m.get(name)!.assign(tf.tensor(state.m.get(name)!, p.shape, 'float32'));
        this.v.get(name)!.assign(tf.tensor(state.v.get(name)!, p.shape, 'float32'));
      }
    });
    this.step = state.step;
  }

  dispose(): void {
    tf.dispose([...this.m.values(), ...this.v.values()]);
  }
}

/**
 * The weights a run saves and validates: an average of the weights Adam steps, reaching back over a share of the steps
 * taken (training/schedule.ts's averageRate). Held apart from them, so training goes on from the weights as they stand.
 */
export class WeightAverage {
  /** The average, as parameters a CharLstm can score with; they belong to this object. */
  readonly parameters: Parameters = new Map();

  /** Starts at `start` (a saved average, on --resume) or at the weights as they stand. */
  constructor(
    private readonly params: Parameters,
    private readonly share: number,
    start?: Map<string, Float32Array>,
  ) {
    tf.tidy(() => {
      for (const [name, p] of params) {
        const initial = start ? tf.tensor(start.get(name)!, p.shape, 'float32') : p;
        this.parameters.set(name, tf.variable(initial, false));
      }
    });
  }

  /** Takes in the weights as they stand after Adam's step `step` (from 1). */
  update(step: number): void {
    const rate = averageRate(step, this.share);
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const average = this.parameters.get(name)!;
        // At a rate of 1 the sum would round away from the weights it must equal.
        average.assign(rate === 1 ? p : tf.add(average, tf.mul(tf.sub(p, average), rate)));
      }
    });
  }

  /** Restarts the average at `weights`. */
  reset(weights: Map<string, Float32Array>): void {
    tf.tidy(() => {
      for (const [name, average] of this.parameters)
        average.assign(tf.tensor(weights.get(name)!, average.shape, 'float32'));
    });
  }

  read(): Promise<Map<string, Float32Array>> {
    return readWeights(this.parameters);
  }

  dispose(): void {
    tf.dispose([...this.parameters.values()]);
  }
}
