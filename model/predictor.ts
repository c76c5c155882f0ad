// "Step a batch of states by one character": the one thing completion needs from a model, and the tfjs LSTM behind it.
import * as tf from '@tensorflow/tfjs';
import type { SavedModel } from './format';
import { CharLstm, LstmState, parametersFromWeights } from './network';
import { ADAPTATION_STEP, AdaptationSettings, AdaptationStep, gradientStepInKernel } from './lstm-adaptation-step';
import { LstmStepKernel, stepKernelUnavailable, StepWeights, stepWeightsWanted } from '../backends/step-kernel';
import { activeLayerKernel, callingThreadLayerKernel, LayerKernel } from '../backends/layer-kernel';
import { BUILT_DIRS } from '../backends/built-files';
import { Vocabulary } from './vocab';
import type { NetworkConfig } from './architecture';
import { LstmStepCache } from './lstm-step-cache';

/** A model state plus the distribution of the character that follows it. */
export interface Snapshot {
  state: Float32Array;
  logProbs: Float32Array;
}

/** A frozen character model over a vocabulary, stepped for a batch of states held as Float32Arrays. */
export interface Predictor {
  readonly vocabulary: Vocabulary;
  zeroState(): Float32Array;
  /**
   * Feeds one character to each state; returns the new states and next-character log-probabilities.
   * `exploring`: the characters extend completions being searched for, not the text itself, and a
   * predictor may answer more cheaply there.
   */
  step(states: Float32Array[], ids: ArrayLike<number>, exploring?: boolean): Promise<Snapshot[]>;
  /** Learns, where the model learns online, that `id` came after `before`, a snapshot of its own, in the real text. */
  observe?(before: Snapshot, id: number): void;
  /** Whether observe() left learning for idle time (adaptLstm). */
  readonly adaptationPending?: boolean;
  /** Does the next piece of the learning observe() left for idle time: a gradient step of the LSTM on text typed (lstm-adaptation.ts). */
  adaptLstm?(): Promise<void>;
  /**
   * What UNKNOWN (id 0) would most likely be, where the document has shown characters outside the
   * vocabulary: its code point and its cost in nats beyond UNKNOWN's own, after `completion`, the
   * text a completion has so far, which follows what the model has read.
   */
  nameUnknown?(completion: string): { codePoint: number; nats: number } | undefined;
  dispose(): void;
}

/** How stepsRunOn() names the ways the step kernel holds weights. */
const STEP_WEIGHTS_NAMED: Record<StepWeights, string> = { f32: 'f32', bf16: 'bfloat16', i8: '8-bit integers' };

/** The tfjs backends on the CPU, where the step kernel steps the LSTM instead of tfjs. */
const STEP_KERNEL_BACKENDS = ['wasm', 'cpu'];

/**
 * The LSTM of a saved model, stepped with tfjs on the active backend, or on a CPU backend in the
 * step kernel (backends/step-kernel.ts), which holds its own packed copy of the weights.
 *
 * The weights live as arrays, as loaded, and as tfjs variables only once tfjs steps them: on the
 * CPU nothing of the network need sit in tfjs's heap, which never gives memory back.
 */
export class LstmPredictor implements Predictor {
  readonly vocabulary: Vocabulary;
  readonly config: NetworkConfig;
  private readonly stateSize: number;

  private disposed = false;
  /** The weights as arrays, as loaded or as adapted: always current. */
  private readonly weights: Map<string, Float32Array>;
  /** The weights as tfjs variables, made when tfjs first steps or adapts them; undefined when stale. */
  private network?: CharLstm;
  /** Counts changes of the weights, so that a kernel packed from older ones is not taken as current. */
  private weightsVersion = 0;
  /** A fork's rule for adapting, with what it keeps between steps; the shared weights have none. */
  private adaptation?: AdaptationStep;
  private stepKernel?: { kernel: LstmStepKernel; version: number };
  /** A fork whose arrays are still the shared weights' own: it has not adapted yet. */
  private readsSharedWeights = false;
  /** The layer kernel whose memory holds a fork's weights once it adapts there, rather than arrays of their own. */
  private residentIn?: LayerKernel;
  /** Why the step kernel failed for this network, once it has. */
  private stepKernelFailure?: string;
  /** The kernel's latest steps, and the weights they were taken with. */
  private readonly stepCache: { cache: LstmStepCache; version: number };

  /**
   * Takes what a saved model holds (metadata is not needed); the weights become this predictor's. `cachedSteps`: how
   * many of its latest steps in the kernel to keep, to answer again without stepping (lstm-step-cache.ts).
   */
  constructor(
    saved: Pick<SavedModel, 'config' | 'vocabulary' | 'weights'>,
    readonly cachedSteps = 0,
  ) {
    this.vocabulary = saved.vocabulary;
    this.config = saved.config;
    this.weights = saved.weights;
    this.stateSize = 2 * this.config.layers * this.config.hidden;
    this.stepCache = { cache: new LstmStepCache(cachedSteps), version: 0 };
  }

  /**
   * A copy with weights of its own, which adapt() changes under `settings` without touching these, and pulls back
   * toward these.
   */
  fork(settings: AdaptationSettings = ADAPTATION_STEP): LstmPredictor {
    // The copy reads these arrays until its first step of adaptation gives it its own.
    const copy = new LstmPredictor(
      {
        config: this.config,
        vocabulary: this.vocabulary,
        weights: new Map(this.weights),
      },
      this.cachedSteps,
    );
    copy.adaptation = new AdaptationStep(this.weights, settings);
    copy.readsSharedWeights = true;
    return copy;
  }

  /**
   * One step of the adaptation (lstm-adaptation-step.ts) on predicting `targets` from `inputs` (one sequence),
   * starting from `state`, one of this predictor's states; the gradients come from the layer kernel where it runs,
   * else from tfjs. Only a fork adapts. Does nothing once disposed, even if that happened meanwhile.
   */
  async adapt(state: Float32Array, inputs: Int32Array, targets: Int32Array): Promise<void> {
    const step = this.adaptation;
    if (!step) throw new Error('only a fork of the LSTM adapts: the shared weights never change');
    if (this.disposed) return;
    const kernel = await this.layerKernelForAdapting();
    if (kernel) {
      if (this.disposed) return;
      this.moveWeightsInto(kernel);
      gradientStepInKernel(kernel, this.config, this.weights, state, inputs, targets, step.update);
      this.network?.dispose();
      this.network = undefined;
      this.weightsVersion++;
      return;
    }
    if (this.readsSharedWeights) for (const [name, values] of this.weights) this.weights.set(name, values.slice());
    this.readsSharedWeights = false;
    const network = this.tfjsNetwork();
    const start = this.tensorsOf([state]);
    const result = await network.trainStep(inputs, targets, 1, inputs.length, start, 0, 0);
    try {
      if (this.disposed) return;
      for (const [name, gradient] of result.gradients) {
        const values = this.weights.get(name)!;
        step.update(name, values, (await gradient.data()) as Float32Array);
        const weight = network.params.get(name)!;
        tf.tidy(() => weight.assign(tf.tensor(values, weight.shape)));
      }
      network.refreeze();
      this.weightsVersion++;
    } finally {
      tf.dispose([...result.gradients.values(), ...start.h, ...start.c, ...result.state.h, ...result.state.c]);
    }
  }

  /**
   * The layer kernel where it can take this network's steps: the process's, with its threads, where a trainer or an
   * evaluation started one, else one on this thread (the server starts none).
   */
  private async layerKernelForAdapting(): Promise<LayerKernel | undefined> {
    if (this.config.hidden % 4 !== 0) return undefined;
    return activeLayerKernel() ?? (await callingThreadLayerKernel(BUILT_DIRS));
  }

  /**
   * Gives a fork weights of its own in the memory of the kernel that adapts them, where its products read them in
   * place: arrays outside it would hold them twice, as the arrays and as the kernel's copy of the largest.
   */
  private moveWeightsInto(kernel: LayerKernel): void {
    if (this.residentIn === kernel) return;
    for (const [name, values] of this.weights) {
      const resident = kernel.residentArray(values.length);
      resident.set(values);
      this.residentIn?.releaseResident(values);
      this.weights.set(name, resident);
    }
    this.residentIn = kernel;
    this.readsSharedWeights = false;
  }

  /** The weights as tfjs variables, made from the arrays if they are not yet. */
  private tfjsNetwork(): CharLstm {
    if (!this.network) {
      this.network = new CharLstm(this.config, parametersFromWeights(this.config, this.weights));
      this.network.freeze();
    }
    return this.network;
  }

  zeroState(): Float32Array {
    return new Float32Array(this.stateSize);
  }

  /** A batch of states as the network's tensors: per layer, h and c, one row per state. The caller disposes them. */
  private tensorsOf(states: Float32Array[]): LstmState {
    const { layers, hidden: H } = this.config;
    const B = states.length;
    const pack = (part: number) =>
      Array.from({ length: layers }, (_, l) => {
        const buffer = new Float32Array(B * H);
        for (let b = 0; b < B; b++) buffer.set(states[b].subarray((2 * l + part) * H, (2 * l + part + 1) * H), b * H);
        return tf.tensor2d(buffer, [B, H]);
      });
    return { h: pack(0), c: pack(1) };
  }

  /**
   * What the steps run on: the step kernel on a CPU backend where it can run, otherwise tfjs on
   * the active backend (a GPU's own dispatch beats a CPU for all but small models at batch 1, and
   * the server's backend probe decides that).
   */
  stepsRunOn(): string {
    const backend = activeBackend();
    if (!STEP_KERNEL_BACKENDS.includes(backend)) return `tfjs on ${backend}`;
    const unavailable = this.stepKernelUnavailable();
    if (unavailable) return `tfjs on ${backend} (the step kernel cannot run: ${unavailable})`;
    return `the step kernel, weights in ${STEP_WEIGHTS_NAMED[stepWeightsWanted(this.config)]}`;
  }

  /** Why this network cannot step in the kernel here, or undefined when it can (the backend aside). */
  private stepKernelUnavailable(): string | undefined {
    return this.stepKernelFailure ?? stepKernelUnavailable(this.config);
  }

  /** The step kernel with the current weights packed, or undefined where steps go through tfjs. */
  private kernelForSteps(): LstmStepKernel | undefined {
    if (this.stepKernel?.version === this.weightsVersion) return this.stepKernel.kernel;
    if (!STEP_KERNEL_BACKENDS.includes(activeBackend()) || this.stepKernelUnavailable()) return undefined;
    if (this.disposed) return undefined;
    try {
      const kernel =
        this.stepKernel?.kernel ?? new LstmStepKernel(this.config, this.weights, stepWeightsWanted(this.config));
      if (this.stepKernel) kernel.load(this.weights);
      this.stepKernel = { kernel, version: this.weightsVersion };
      return kernel;
    } catch (error) {
      // A model too large for the kernel's memory, say: tfjs steps it as before.
      this.stepKernel = undefined;
      this.stepKernelFailure = (error as Error).message;
      return undefined;
    }
  }

  async step(states: Float32Array[], ids: ArrayLike<number>): Promise<Snapshot[]> {
    const { vocabSize: V } = this.config;
    const kernel = this.kernelForSteps();
    if (kernel) {
      const cache = this.stepCache.cache;
      if (this.stepCache.version !== this.weightsVersion) {
        cache.clear();
        this.stepCache.version = this.weightsVersion;
      }
      const snapshots = states.map((state, b) => cache.get(state, ids[b]));
      const missing = [...snapshots.keys()].filter((b) => !snapshots[b]);
      if (missing.length > 0) {
        const {
          states: next,
          logits,
          stride,
        } = kernel.step(
          missing.map((b) => states[b]),
          missing.map((b) => ids[b]),
        );
        missing.forEach((b, row) => {
          const snapshot = { state: next[row], logProbs: logSoftmax(logits.subarray(row * stride, row * stride + V)) };
          cache.set(states[b], ids[b], snapshot);
          snapshots[b] = snapshot;
        });
      }
      return snapshots as Snapshot[];
    }
    const B = states.length;
    const network = this.tfjsNetwork();
    const input = this.tensorsOf(states);
    // Logits and every new state in one tensor, so a GPU pays for one read back per step, not 2L+1.
    const packed = tf.tidy(() => {
      const { logits, state } = network.step(Int32Array.from(ids), input);
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
    if (this.disposed) return;
    this.disposed = true;
    this.stepKernel = undefined;
    this.network?.dispose();
    this.network = undefined;
    if (this.residentIn) for (const values of this.weights.values()) this.residentIn.releaseResident(values);
    this.residentIn = undefined;
  }
}

/** The active tfjs backend's name, the default one initialised if nothing has chosen one yet. */
function activeBackend(): string {
  tf.backend();
  return tf.getBackend();
}

export function logSoftmax(logits: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  // A loop, not Float32Array.from(logits, map): the mapping form goes through the iterator protocol, many times slower.
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}
