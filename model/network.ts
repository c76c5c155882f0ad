// Embedding → stacked LSTM → softmax, with a hand-written backward pass.
//
// tfjs autodiff and tfjs-layers step through time op by op and compute weight gradients once per
// timestep. Writing the backward pass out lets every weight gradient (and the non-recurrent input
// projection) be one large matmul over all timesteps, which is where XNNPACK is fast; only the
// recurrent h·Wh product and the cell's elementwise math stay inside the time loop.
import * as tf from '@tensorflow/tfjs';
import { NetworkConfig, parameterShapes } from './architecture';
import { hasCellKernels, lstmCellBackward, lstmCellForward } from '../backends/lstm-cell';
import { withExactMatMuls } from '../backends/webgpu-cell';
import { activeLayerKernel, LayerKernel, LayerKernelMemoryError } from '../backends/layer-kernel';
import { columnSums, heapView } from '../backends/wasm-kernels';
import { mulberry32 } from './random';

// Reads go through data(), never dataSync(): WebGPU in Node cannot read a tensor synchronously.

// A type alias rather than an interface, so tf.tidy accepts it as a tensor container.
export type LstmState = {
  h: tf.Tensor2D[];
  c: tf.Tensor2D[];
};

export type Parameters = Map<string, tf.Variable>;

/**
 * Small uniform weights as in char-rnn, and forget-gate bias 1 so the cell remembers from the
 * start. (tfjs-layers' orthogonal initialiser takes minutes on the cpu backend.)
 */
export function initialParameters(config: NetworkConfig, seed: number): Parameters {
  const params: Parameters = new Map();
  const H = config.hidden;
  parameterShapes(config).forEach(([name, shape], i) => {
    const value = tf.tidy(() => {
      if (name.endsWith('/b') && name.startsWith('lstm')) {
        const bias = new Float32Array(4 * H);
        bias.fill(1, H, 2 * H); // gate order is [input, forget, output, cell]
        return tf.tensor1d(bias);
      }
      if (name === 'output/b') return tf.zeros(shape);
      const fanIn = shape[0];
      // Embeddings start at unit scale, as nn.Embedding's do: smaller ones starve layer 0 of input
      // signal and training sits at the unigram loss for its first hundred steps.
      const scale = name === 'embedding' ? 1 : 1 / Math.sqrt(fanIn);
      return tf.randomUniform(shape, -scale, scale, 'float32', seed + i);
    });
    // Unnamed: tfjs variable names are process-global, and several models may be loaded at once.
    params.set(name, tf.variable(value, true));
    value.dispose(); // the variable keeps its own reference
  });
  return params;
}

/** Variables holding the given weights, e.g. from a saved model. */
export function parametersFromWeights(config: NetworkConfig, weights: Map<string, Float32Array>): Parameters {
  const params: Parameters = new Map();
  for (const [name, shape] of parameterShapes(config)) {
    const values = weights.get(name);
    if (!values) throw new Error(`network: missing weights for ${name}`);
    const variable = tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), true));
    params.set(name, variable);
  }
  return params;
}

/** A copy of the current weights, for saving or for keeping the best checkpoint in memory. */
export async function readWeights(params: Parameters): Promise<Map<string, Float32Array>> {
  const values = await Promise.all([...params.values()].map((v) => v.data() as Promise<Float32Array>));
  return new Map([...params.keys()].map((name, i) => [name, values[i]]));
}

export function assignWeights(params: Parameters, weights: Map<string, Float32Array>): void {
  for (const [name, v] of params) tf.tidy(() => v.assign(tf.tensor(weights.get(name)!, v.shape, 'float32')));
}

export function zeroState(config: NetworkConfig, batch: number): LstmState {
  const zeros = () => Array.from({ length: config.layers }, () => tf.zeros([batch, config.hidden]) as tf.Tensor2D);
  return { h: zeros(), c: zeros() };
}

export function disposeState(state: LstmState): void {
  tf.dispose([...state.h, ...state.c]);
}

/** Reorders [batch, time] ids to time-major, so each timestep's rows are one contiguous slice. */
function timeMajor(ids: Int32Array, batch: number, steps: number): Int32Array {
  const out = new Int32Array(ids.length);
  for (let b = 0; b < batch; b++) for (let t = 0; t < steps; t++) out[t * batch + b] = ids[b * steps + t];
  return out;
}

interface CellTrace {
  acts: tf.Tensor2D;
  cPrev: tf.Tensor2D;
  tanhC: tf.Tensor2D;
}

export interface StepResult {
  loss: number;
  gradients: Map<string, tf.Tensor>;
  state: LstmState;
}

export class CharLstm {
  /** Set by freeze() when the weights will not change again, as in a language server. */
  private frozenTable?: tf.Tensor2D;

  constructor(
    readonly config: NetworkConfig,
    readonly params: Parameters,
  ) {}

  /** Precomputes the layer-0 input table for inference; training must not follow. */
  freeze(): void {
    this.frozenTable ??= tf.tidy(() => this.inputTable());
  }

  /** Recomputes the frozen input table after the weights have changed (dynamic evaluation). */
  refreeze(): void {
    this.frozenTable?.dispose();
    this.frozenTable = tf.tidy(() => this.inputTable());
  }

  dispose(): void {
    this.frozenTable?.dispose();
    tf.dispose([...this.params.values()]);
  }

  private p(name: string): tf.Variable {
    return this.params.get(name)!;
  }

  /** Input-to-gate table for layer 0: the embedding and wx fused, so layer 0 needs no input matmul. */
  private inputTable(): tf.Tensor2D {
    return tf.add(tf.matMul(this.p('embedding'), this.p('lstm0/wx')), this.p('lstm0/b'));
  }

  /**
   * Runs one layer over all timesteps given its input projection [T*B, 4H] (time-major). With
   * fusedKernels the cell is one kernel per step where the backend has them; otherwise plain tfjs
   * ops, which autodiff can differentiate and every backend runs.
   */
  private runLayer(
    wh: tf.Tensor2D,
    xProj: tf.Tensor2D,
    h0: tf.Tensor2D,
    c0: tf.Tensor2D,
    steps: number,
    fusedKernels: boolean,
    trace?: CellTrace[],
  ): LayerRun {
    const B = h0.shape[0];
    const fused = fusedKernels && hasCellKernels();
    const hs: tf.Tensor2D[] = [];
    let h = h0;
    let c = c0;
    for (let t = 0; t < steps; t++) {
      const cPrev = c;
      const cell = lstmCellForward(tf.matMul(h, wh) as tf.Tensor2D, xProj, t * B, c, fused, trace !== undefined);
      ({ c, h } = cell);
      trace?.push({ acts: cell.acts, cPrev, tanhC: cell.tanhC });
      hs.push(h);
    }
    const outputs = (steps === 1 ? hs[0] : tf.concat(hs, 0)) as tf.Tensor2D;
    const previous = trace ? (tf.concat([h0, ...hs.slice(0, -1)], 0) as tf.Tensor2D) : undefined;
    return { outputs, previous, h, c };
  }

  /**
   * runLayer in one call of the whole-layer kernel, which keeps the trace for the backward pass;
   * undefined when the kernel's memory cannot hold this layer.
   */
  private runWholeLayer(
    kernel: LayerKernel,
    l: number,
    wh: tf.Tensor2D,
    xProj: tf.Tensor2D,
    h0: tf.Tensor2D,
    c0: tf.Tensor2D,
    steps: number,
    training: boolean,
  ): LayerRun | undefined {
    const [B, H] = h0.shape;
    let result;
    try {
      result = kernel.forward(l, B, H, steps, heapView(xProj), heapView(wh), heapView(h0), heapView(c0), training);
    } catch (error) {
      if (error instanceof LayerKernelMemoryError) return undefined;
      throw error;
    }
    const { hSeq, cLast } = result;
    return {
      outputs: tf.tensor2d(hSeq.subarray(B * H), [steps * B, H]),
      previous: tf.tensor2d(hSeq.subarray(0, steps * B * H), [steps * B, H]),
      h: tf.tensor2d(hSeq.subarray(steps * B * H), [B, H]),
      c: tf.tensor2d(cLast, [B, H]),
    };
  }

  /** The whole-layer kernel when it runs this forward pass: on wasm, for sequences, not single steps. */
  private wholeLayerKernel(steps: number, fusedKernels: boolean): LayerKernel | undefined {
    if (!fusedKernels || steps === 1 || this.config.hidden % 4 !== 0 || tf.getBackend() !== 'wasm') return undefined;
    return activeLayerKernel();
  }

  /**
   * The forward pass shared by training, evaluation and stepping: ids [steps*batch] time-major in,
   * logits [steps*batch, vocab] out. With `trace` it keeps what the hand-written backward pass needs.
   */
  private forward(
    ids: tf.Tensor1D,
    batch: number,
    steps: number,
    state: LstmState,
    options: ForwardOptions,
  ): ForwardPass {
    const { layers, hidden } = this.config;
    const kernel = this.wholeLayerKernel(steps, options.fusedKernels);
    const pass: ForwardPass = {
      logits: undefined!,
      finalH: [],
      finalC: [],
      previousH: [],
      layerOutputs: [],
      masks: [],
      recurrent: [],
      recurrentMasks: [],
      traces: [],
      wholeLayer: [],
    };
    let xProj = tf.gather(this.frozenTable ?? this.inputTable(), ids) as tf.Tensor2D;
    for (let l = 0; l < layers; l++) {
      const recurrentMask =
        options.weightDrop > 0
          ? dropoutMask([hidden, 4 * hidden], options.weightDrop, recurrentMaskSeed(options.seed, l))
          : undefined;
      const weights = this.p(`lstm${l}/wh`) as tf.Tensor2D;
      const wh: tf.Tensor2D = recurrentMask ? tf.mul(weights, recurrentMask) : weights;
      pass.recurrent.push(wh);
      pass.recurrentMasks.push(recurrentMask);
      const whole = kernel && this.runWholeLayer(kernel, l, wh, xProj, state.h[l], state.c[l], steps, options.trace);
      const trace: CellTrace[] | undefined = options.trace && !whole ? [] : undefined;
      const run = whole ?? this.runLayer(wh, xProj, state.h[l], state.c[l], steps, options.fusedKernels, trace);
      pass.wholeLayer.push(whole ? kernel : undefined);
      pass.traces.push(trace ?? []);
      pass.finalH.push(run.h);
      pass.finalC.push(run.c);
      if (run.previous) pass.previousH.push(run.previous);
      const hSeq = run.outputs;
      const mask =
        options.dropout > 0 ? dropoutMask([batch * steps, hidden], options.dropout, options.seed + l) : undefined;
      pass.masks.push(mask);
      const output = (mask ? tf.mul(hSeq, mask) : hSeq) as tf.Tensor2D;
      pass.layerOutputs.push(output);
      if (l + 1 < layers) xProj = tf.add(tf.matMul(output, this.p(`lstm${l + 1}/wx`)), this.p(`lstm${l + 1}/b`));
    }
    pass.logits = tf.add(tf.matMul(pass.layerOutputs[layers - 1], this.p('output/w')), this.p('output/b'));
    return pass;
  }

  /**
   * One truncated-BPTT step. inputs/targets are [batch, steps] row-major. The returned state is
   * the carried LSTM state (no gradient flows into it, as in char-rnn).
   */
  async trainStep(
    inputs: Int32Array,
    targets: Int32Array,
    batch: number,
    steps: number,
    state: LstmState,
    dropout: number,
    seed: number,
    weightDrop = 0,
  ): Promise<StepResult> {
    const { layers, vocabSize: V } = this.config;
    const N = batch * steps;
    const result = withExactMatMuls(() =>
      tf.tidy(() => {
        const ids = tf.tensor1d(timeMajor(inputs, batch, steps), 'int32');
        const pass = this.forward(ids, batch, steps, state, {
          dropout,
          weightDrop,
          seed,
          fusedKernels: true,
          trace: true,
        });
        const oneHotTargets = tf.oneHot(tf.tensor1d(timeMajor(targets, batch, steps), 'int32'), V).asType('float32');
        const logProbs = tf.logSoftmax(pass.logits);
        const loss = tf.neg(tf.mean(tf.sum(tf.mul(logProbs, oneHotTargets), 1)));

        // A plain object, because tidy only keeps tensors it can find in arrays and objects.
        const grads: Record<string, tf.Tensor> = {};
        const dLogits = tf.div(tf.sub(tf.exp(logProbs), oneHotTargets), N);
        grads['output/w'] = tf.matMul(pass.layerOutputs[layers - 1], dLogits, true, false);
        grads['output/b'] = columnSums(dLogits as tf.Tensor2D);
        let dH = tf.matMul(dLogits, this.p('output/w'), false, true);
        for (let l = layers - 1; l >= 0; l--) {
          const mask = pass.masks[l];
          if (mask) dH = tf.mul(dH, mask);
          const kernel = pass.wholeLayer[l];
          const dZ = kernel
            ? tf.tensor2d(kernel.backward(l, heapView(dH), heapView(pass.recurrent[l])), [N, 4 * this.config.hidden])
            : this.backwardLayer(pass.recurrent[l], dH as tf.Tensor2D, pass.traces[l], batch, steps);
          const dWh = tf.matMul(pass.previousH[l], dZ, true, false);
          const recurrentMask = pass.recurrentMasks[l];
          grads[`lstm${l}/wh`] = recurrentMask ? tf.mul(dWh, recurrentMask) : dWh;
          if (l > 0) {
            grads[`lstm${l}/wx`] = tf.matMul(pass.layerOutputs[l - 1], dZ, true, false);
            grads[`lstm${l}/b`] = columnSums(dZ);
            dH = tf.matMul(dZ, this.p(`lstm${l}/wx`), false, true);
          } else {
            const dTable = tf.unsortedSegmentSum(dZ, ids, V);
            grads['lstm0/b'] = columnSums(dTable as tf.Tensor2D);
            grads['lstm0/wx'] = tf.matMul(this.p('embedding'), dTable, true, false);
            grads['embedding'] = tf.matMul(dTable, this.p('lstm0/wx'), false, true);
          }
        }
        return { loss, grads, finalH: pass.finalH, finalC: pass.finalC };
      }),
    );
    const loss = (await result.loss.data())[0];
    result.loss.dispose();
    return { loss, gradients: new Map(Object.entries(result.grads)), state: { h: result.finalH, c: result.finalC } };
  }

  private backwardLayer(
    wh: tf.Tensor2D,
    dH: tf.Tensor2D,
    trace: CellTrace[],
    batch: number,
    steps: number,
  ): tf.Tensor2D {
    // Transposed once here rather than by every per-step matmul.
    const whT = tf.transpose(wh) as tf.Tensor2D;
    const dZs: tf.Tensor2D[] = new Array(steps);
    let dhNext = tf.zeros([batch, this.config.hidden]) as tf.Tensor2D;
    let dcNext = dhNext;
    for (let t = steps - 1; t >= 0; t--) {
      const { acts, cPrev, tanhC } = trace[t];
      const { dZ, dcPrev } = lstmCellBackward(dH, t * batch, dhNext, dcNext, acts, cPrev, tanhC);
      dZs[t] = dZ;
      dcNext = dcPrev;
      dhNext = tf.matMul(dZ, whT) as tf.Tensor2D;
    }
    return tf.concat(dZs, 0);
  }

  /**
   * The forward pass to a mean loss. Without fusedKernels it uses differentiable tfjs ops only, so
   * the gradient tests can check trainStep's hand-written backward pass against tfjs's autodiff.
   */
  lossTensor(
    inputs: Int32Array,
    targets: Int32Array,
    batch: number,
    steps: number,
    state: LstmState,
    dropout = 0,
    seed = 0,
    fusedKernels = false,
    weightDrop = 0,
  ): { loss: tf.Scalar; state: LstmState } {
    const pass = this.forward(tf.tensor1d(timeMajor(inputs, batch, steps), 'int32'), batch, steps, state, {
      dropout,
      weightDrop,
      seed,
      fusedKernels,
      trace: false,
    });
    const logProbs = tf.logSoftmax(pass.logits);
    const targetOneHot = tf
      .oneHot(tf.tensor1d(timeMajor(targets, batch, steps), 'int32'), this.config.vocabSize)
      .asType('float32');
    return {
      loss: tf.neg(tf.mean(tf.sum(tf.mul(logProbs, targetOneHot), 1))) as tf.Scalar,
      state: { h: pass.finalH, c: pass.finalC },
    };
  }

  /**
   * Per position, the log-probability of its target and the largest log-probability of any
   * character, time-major ([t * batch + b]), carrying state: what fitting the mixture needs.
   */
  async scoreTargets(
    inputs: Int32Array,
    targets: Int32Array,
    batch: number,
    steps: number,
    state: LstmState,
  ): Promise<{ target: Float32Array; max: Float32Array; state: LstmState }> {
    const out = withExactMatMuls(() =>
      tf.tidy(() => {
        const pass = this.forward(tf.tensor1d(timeMajor(inputs, batch, steps), 'int32'), batch, steps, state, {
          dropout: 0,
          weightDrop: 0,
          seed: 0,
          fusedKernels: true,
          trace: false,
        });
        const logProbs = tf.logSoftmax(pass.logits);
        const targetOneHot = tf
          .oneHot(tf.tensor1d(timeMajor(targets, batch, steps), 'int32'), this.config.vocabSize)
          .asType('float32');
        const scores = tf.concat([tf.sum(tf.mul(logProbs, targetOneHot), 1), tf.max(logProbs, 1)]);
        return { scores, state: { h: pass.finalH, c: pass.finalC } };
      }),
    );
    const values = (await out.scores.data()) as Float32Array;
    out.scores.dispose();
    const N = batch * steps;
    return { target: values.subarray(0, N), max: values.subarray(N, 2 * N), state: out.state };
  }

  /** One inference step for a batch of single characters: returns logits [batch, vocab]. */
  step(ids: Int32Array, state: LstmState): { logits: tf.Tensor2D; state: LstmState } {
    return tf.tidy(() => {
      const pass = this.forward(tf.tensor1d(ids, 'int32'), ids.length, 1, state, {
        dropout: 0,
        weightDrop: 0,
        seed: 0,
        fusedKernels: true,
        trace: false,
      });
      return { logits: pass.logits, state: { h: pass.finalH, c: pass.finalC } };
    });
  }
}

interface ForwardOptions {
  dropout: number;
  /** The share of each layer's recurrent weights dropped for the step (DropConnect), one mask for all its timesteps. */
  weightDrop: number;
  seed: number;
  /** The fused cell kernels where the backend has them; autodiff needs plain ops. */
  fusedKernels: boolean;
  /** Keep each step's cell activations for the backward pass. */
  trace: boolean;
}

interface ForwardPass {
  logits: tf.Tensor2D;
  finalH: tf.Tensor2D[];
  finalC: tf.Tensor2D[];
  /** Per layer with a trace, the h each timestep started from [steps*batch, hidden]: h0, then all but the last output. */
  previousH: tf.Tensor2D[];
  /** Per layer, its output over all timesteps [steps*batch, hidden], after dropout. */
  layerOutputs: tf.Tensor2D[];
  masks: Array<tf.Tensor2D | undefined>;
  /** Per layer, the recurrent weights the pass stepped with: wh, or wh times recurrentMasks' mask. */
  recurrent: tf.Tensor2D[];
  recurrentMasks: Array<tf.Tensor2D | undefined>;
  traces: CellTrace[][];
  /** Per layer, the whole-layer kernel when it ran the layer; it holds the layer's trace. */
  wholeLayer: Array<LayerKernel | undefined>;
}

interface LayerRun {
  /** h at every timestep [steps*batch, hidden]. */
  outputs: tf.Tensor2D;
  /** With a trace: h0, then all but the last output. */
  previous?: tf.Tensor2D;
  h: tf.Tensor2D;
  c: tf.Tensor2D;
}

/** Seeds apart from the output masks' (the step's seed plus the layer), so no recurrent mask repeats one of those. */
function recurrentMaskSeed(seed: number, layer: number): number {
  return (seed + 0x9e3779b9 + layer) >>> 0;
}

/**
 * Inverted dropout: kept units are scaled by 1/(1-rate) so evaluation needs no rescaling. Drawn
 * with mulberry32 rather than tf.randomUniform, whose per-element generator cost a few percent of
 * a training step.
 */
export function dropoutMask(shape: [number, number], rate: number, seed: number): tf.Tensor2D {
  const mask = new Float32Array(shape[0] * shape[1]);
  const kept = 1 / (1 - rate);
  const threshold = rate * 2 ** 32;
  const start = seed >>> 0;
  for (let i = 0; i < mask.length; i++) mask[i] = mulberry32(start, i) >= threshold ? kept : 0;
  return tf.tensor2d(mask, shape);
}
