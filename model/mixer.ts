// Mixes several next-character distributions into one, with weights that depend on how much each model knows here (a
// gated linear mixture).
//
// Why linear and gated: the n-gram is sharp where the notes repeat themselves and knows nothing
// elsewhere, the LSTM is smooth everywhere; a linear mixture keeps the n-gram's sharpness where
// it is right and the LSTM's cover where it is not, and the gate, a softmax over a linear function
// of features such as the n-gram's matched order and count, says which case this is. Fitting it
// needs only each model's probability of the character that came, so the trainer can fit it on
// the whole validation split cheaply.

export class MixerFormatError extends Error {
  override name = 'MixerFormatError';
}

/** What the gate sees: a feature vector per position; feature 0 is always the constant 1. */
export interface MixerShape {
  /** Names of the mixed models, in order. */
  components: string[];
  featureCount: number;
}

/** Per position, each component's probability of what came, and the gate's features. */
export interface MixerSamples {
  count: number;
  /** [count × components] probabilities of the target, row-major. */
  targetProbs: Float32Array;
  /** [count × featureCount] features, row-major. */
  features: Float32Array;
}

export class Mixer {
  /** [components × featureCount] gate weights, row-major. */
  readonly weights: Float32Array;

  constructor(
    readonly shape: MixerShape,
    weights?: Float32Array,
  ) {
    const size = shape.components.length * shape.featureCount;
    if (weights && weights.length !== size) throw new Error(`mixer: expected ${size} weights, got ${weights.length}`);
    this.weights = weights ?? new Float32Array(size);
  }

  /** A mixer that always gives these shares (in components' order), whatever the features. */
  static fixed(shape: MixerShape, shares: number[]): Mixer {
    const mixer = new Mixer(shape);
    shares.forEach((share, k) => (mixer.weights[k * shape.featureCount] = Math.log(Math.max(share, 1e-9))));
    return mixer;
  }

  /** The share of each component at a position with these features (softmax of the gate). */
  gate(features: ArrayLike<number>, out: Float32Array = new Float32Array(this.shape.components.length)): Float32Array {
    const K = this.shape.components.length;
    const F = this.shape.featureCount;
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      let g = 0;
      for (let f = 0; f < F; f++) g += this.weights[k * F + f] * features[f];
      out[k] = g;
      if (g > max) max = g;
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += out[k] = Math.exp(out[k] - max);
    for (let k = 0; k < K; k++) out[k] /= sum;
    return out;
  }

  /** Mixes probability vectors (one per component) into `out`, returning the log-probabilities. */
  mixLog(distributions: ArrayLike<number>[], features: ArrayLike<number>, out: Float32Array): Float32Array {
    const shares = this.gate(features);
    out.fill(0);
    for (let k = 0; k < distributions.length; k++) {
      const share = shares[k];
      const p = distributions[k];
      for (let i = 0; i < out.length; i++) out[i] += share * p[i];
    }
    for (let i = 0; i < out.length; i++) out[i] = Math.log(out[i]);
    return out;
  }

  /** Mean negative log-likelihood in nats of the mixture on samples. */
  loss(samples: MixerSamples): number {
    const K = this.shape.components.length;
    const F = this.shape.featureCount;
    const shares = new Float32Array(K);
    let total = 0;
    for (let n = 0; n < samples.count; n++) {
      this.gate(samples.features.subarray(n * F, (n + 1) * F), shares);
      let p = 0;
      for (let k = 0; k < K; k++) p += shares[k] * samples.targetProbs[n * K + k];
      total -= Math.log(Math.max(p, 1e-30));
    }
    return total / Math.max(1, samples.count);
  }

  /**
   * Fits the gate to samples by full-batch Adam on the mixture's log loss, starting from the
   * current weights; returns the final loss. The gradient of −log Σ π_k p_k with respect to gate
   * k is π_k − (π_k p_k / p): the share a component had minus the share of the credit it earned.
   * With a prior, the weights are also pulled towards it (L2), so that situations the samples never
   * show, such as a context the notes have never seen, keep the prior's judgement.
   */
  fit(
    samples: MixerSamples,
    iterations = 200,
    learningRate = 0.05,
    prior?: { weights: Float32Array; strength: number },
  ): number {
    const K = this.shape.components.length;
    const F = this.shape.featureCount;
    const w = this.weights;
    const m = new Float64Array(w.length);
    const v = new Float64Array(w.length);
    const grad = new Float64Array(w.length);
    const shares = new Float32Array(K);
    for (let it = 1; it <= iterations; it++) {
      grad.fill(0);
      for (let n = 0; n < samples.count; n++) {
        const x = samples.features.subarray(n * F, (n + 1) * F);
        this.gate(x, shares);
        let p = 0;
        for (let k = 0; k < K; k++) p += shares[k] * samples.targetProbs[n * K + k];
        p = Math.max(p, 1e-30);
        for (let k = 0; k < K; k++) {
          const g = shares[k] - (shares[k] * samples.targetProbs[n * K + k]) / p;
          if (g === 0) continue;
          for (let f = 0; f < F; f++) if (x[f] !== 0) grad[k * F + f] += g * x[f];
        }
      }
      for (let i = 0; i < w.length; i++) {
        const g = grad[i] / Math.max(1, samples.count) + (prior ? prior.strength * (w[i] - prior.weights[i]) : 0);
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        w[i] -= (learningRate * (m[i] / (1 - 0.9 ** it))) / (Math.sqrt(v[i] / (1 - 0.999 ** it)) + 1e-8);
      }
    }
    return this.loss(samples);
  }

  toJSON(): { components: string[]; featureCount: number; weights: number[] } {
    return {
      components: this.shape.components.slice(),
      featureCount: this.shape.featureCount,
      weights: Array.from(this.weights),
    };
  }

  /** Checks a saved mixer against the shape this program computes features for. */
  static fromJSON(json: unknown, expected: MixerShape): Mixer {
    if (typeof json !== 'object' || json === null) throw new MixerFormatError('mixer must be an object');
    const { components, featureCount, weights } = json as Record<string, unknown>;
    if (!Array.isArray(components) || components.join(',') !== expected.components.join(',')) {
      throw new MixerFormatError(`mixer components must be ${expected.components.join(', ')}`);
    }
    if (featureCount !== expected.featureCount)
      throw new MixerFormatError(
        `mixer must have ${expected.featureCount} features, got ${JSON.stringify(featureCount)}`,
      );
    const size = expected.components.length * expected.featureCount;
    if (
      !Array.isArray(weights) ||
      weights.length !== size ||
      !weights.every((x) => typeof x === 'number' && Number.isFinite(x))
    ) {
      throw new MixerFormatError(`mixer weights must be ${size} finite numbers`);
    }
    return new Mixer(expected, Float32Array.from(weights as number[]));
  }
}
