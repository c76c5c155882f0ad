// One step of the LSTM's adaptation to a document (lstm-adaptation.ts), on a copy of the weights held as arrays: the
// rule that moves each weight along its gradient, and the gradients of one sequence through the whole-layer kernel,
// without tfjs. Through tfjs the step's gradients and temporaries grow the wasm backend's heap, which never gives
// memory back; here the products run in the kernel's own memory and the arrays are updated in place.
//
// The gradients are CharLstm.trainStep's without dropout (of the mean cross-entropy over the sequence), and each
// weight is updated as soon as nothing later in the backward pass reads it, so no gradient outlives its own update.
import type { NetworkConfig } from './architecture';
import { alignUp, LayerKernel, padColumns } from '../backends/layer-kernel';

/**
 * The rule, as in Krause et al.'s dynamic evaluation: each weight steps by its gradient over the root of its recent
 * mean square, so that rarely moved weights learn as fast as busy ones, and is then pulled part of the way back to the
 * shared weights, so that what the document taught long ago fades unless its text renews it and the copy cannot
 * drift far. Plain gradient descent without the pull, as the adaptation took before, gained less (docs/measurements.md
 * has the A/B).
 */
export const ADAPTATION_STEP = {
  rate: 0.0009,
  /** How much of a weight's mean square is carried to the next step. */
  squareDecay: 0.99,
  /**
   * The share of the way back to the shared weight each weight moves after each step: small, since a note's names and
   * phrasing stay useful for thousands of characters, which a larger pull forgot within a few hundred. It is per step,
   * so it goes with LSTM_ADAPTATION.segment: a step over twice the characters pulls about twice as far, for the same
   * fading per character.
   */
  pullBack: 0.006,
};
export type AdaptationSettings = typeof ADAPTATION_STEP;

/**
 * Moves weight array `name` (its `values`) by its `gradient`, in place: the whole of it, or a block of it from `offset`
 * on. A step's first block of each weight starts at 0.
 */
export type WeightUpdate = (name: string, values: Float32Array, gradient: Float32Array, offset?: number) => void;

/**
 * A copy's side of the rule: each weight's mean square so far, and the shared weights it is pulled back to. The mean
 * squares are held in bfloat16 (a float's top 16 bits): they only scale each step, which their 8 bits of precision do
 * to within half a percent, and in f32 they would cost as much memory as the copy's weights.
 */
export class AdaptationStep {
  private readonly squares = new Map<string, { bf16: Uint16Array; steps: number }>();

  constructor(
    private readonly shared: Map<string, Float32Array>,
    private readonly settings: AdaptationSettings = ADAPTATION_STEP,
  ) {}

  readonly update: WeightUpdate = (name, values, gradient, offset = 0) => {
    const shared = this.shared.get(name);
    if (!shared || shared.length !== values.length || !(offset >= 0 && offset < values.length))
      throw new Error(`adaptation step: ${name} does not match the shared weights or its gradient`);
    let squares = this.squares.get(name);
    if (!squares) this.squares.set(name, (squares = { bf16: new Uint16Array(values.length), steps: 0 }));
    const { rate, squareDecay, pullBack } = this.settings;
    if (offset === 0) squares.steps++;
    // The mean squares start at 0, so early ones are scaled up to what they estimate, as Adam's are.
    const unbias = 1 / (1 - squareDecay ** squares.steps);
    const meanSquares = squares.bf16;
    const end = Math.min(values.length, offset + gradient.length);
    for (let i = offset; i < end; i++) {
      const g = gradient[i - offset];
      floatBits[0] = meanSquares[i] << 16;
      const meanSquare = squareDecay * asFloat[0] + (1 - squareDecay) * g * g;
      asFloat[0] = meanSquare;
      // Rounded to nearest, ties to even.
      const bits = floatBits[0];
      meanSquares[i] = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
      const stepped = values[i] - (rate * g) / (Math.sqrt(meanSquare * unbias) + 1e-8);
      values[i] = stepped + pullBack * (shared[i] - stepped);
    }
  };
}

/** One float seen as a float and as its bits, to move mean squares in and out of bfloat16. */
const asFloat = new Float32Array(1);
const floatBits = new Uint32Array(asFloat.buffer);

/**
 * A step's own arrays, the weight-sized ones and the sequence's activations and gradients copied out of the kernel's
 * memory, kept from one step to the next: made anew each step, they leave garbage that malloc keeps, and the server's
 * RSS grows step after step before it levels off. Steps run one at a time, and nothing keeps these past its step.
 */
const stepArrays = new Map<string, Float32Array>();

/** The array `name` of `length` floats, as the last step left it (zeros when new), kept for the next step. */
function stepArray(name: string, length: number): Float32Array {
  let array = stepArrays.get(name);
  if (array?.length === length) return array;
  array = new Float32Array(length);
  stepArrays.set(name, array);
  return array;
}

/** The kept array `name` holding a copy of `values` (a view into the kernel's memory, valid only until its next call). */
function keptCopy(name: string, values: Float32Array): Float32Array {
  const array = stepArray(name, values.length);
  array.set(values);
  return array;
}

/**
 * Computes the gradient of the mean loss of predicting `targets` from `inputs`, read from `state` (per layer h then
 * c, each [hidden]), and hands each weight array's to `update` with the array (named as parameterShapes names them),
 * which changes it in place.
 */
export function gradientStepInKernel(
  kernel: LayerKernel,
  config: NetworkConfig,
  weights: Map<string, Float32Array>,
  state: Float32Array,
  inputs: Int32Array,
  targets: Int32Array,
  update: WeightUpdate,
  gradientRows = GRADIENT_ROWS,
): void {
  const { vocabSize: V, embed: E, hidden: H, layers } = config;
  const G = 4 * H;
  const T = inputs.length;
  if (!(gradientRows >= 1)) throw new Error(`adaptation step: blocks of ${gradientRows} rows`);
  if (T === 0 || targets.length !== T) throw new Error(`adaptation step: ${T} inputs and ${targets.length} targets`);
  const weight = (name: string) => {
    const values = weights.get(name);
    if (!values) throw new Error(`adaptation step: missing weights for ${name}`);
    return values;
  };
  for (const id of [...inputs, ...targets])
    if (!(id >= 0 && id < V)) throw new Error(`adaptation step: id ${id} is outside the vocabulary of ${V}`);
  const embedding = weight('embedding');
  const x = stepArray('inputs', T * E);
  inputs.forEach((id, t) => x.set(embedding.subarray(id * E, (id + 1) * E), t * E));

  // Forward; the kernel's products need whole vectors of columns, so the output's are padded to Vp.
  const hSeqs: Float32Array[] = [];
  let xProj = keptCopy('xProj', kernel.matmul(x, false, weight('lstm0/wx'), false, T, G, E, weight('lstm0/b')));
  for (let l = 0; l < layers; l++) {
    const h0 = state.subarray(2 * l * H, (2 * l + 1) * H);
    const c0 = state.subarray((2 * l + 1) * H, (2 * l + 2) * H);
    const { hSeq } = kernel.forward(l, 1, H, T, xProj, weight(`lstm${l}/wh`), h0, c0, true);
    hSeqs.push(keptCopy(`hSeq${l}`, hSeq));
    if (l + 1 < layers)
      xProj = keptCopy(
        'xProj',
        kernel.matmul(hSeqs[l].subarray(H), false, weight(`lstm${l + 1}/wx`), false, T, G, H, weight(`lstm${l + 1}/b`)),
      );
  }
  const top = hSeqs[layers - 1].subarray(H);
  const Vp = alignUp(V, 4);
  const outputW = weight('output/w');
  const paddedW = padColumns(outputW, H, V, stepArray('paddedOutput', H * Vp));
  const paddedB = padColumns(weight('output/b'), 1, V, stepArray('paddedOutputBias', Vp));
  const dLogits = keptCopy('dLogits', kernel.matmul(top, false, paddedW, false, T, Vp, H, paddedB));

  // The mean cross-entropy's gradient at the logits: (softmax − one-hot) / T; the padding columns stay 0.
  for (let t = 0; t < T; t++) {
    const row = dLogits.subarray(t * Vp, t * Vp + V);
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, row[j]);
    let sum = 0;
    for (let j = 0; j < V; j++) {
      row[j] = Math.exp(row[j] - max);
      sum += row[j];
    }
    for (let j = 0; j < V; j++) row[j] /= sum * T;
    row[targets[t]] -= 1 / T;
  }

  // Backward, top down.
  let dH = keptCopy('dH', kernel.matmul(dLogits, false, paddedW, true, T, H, Vp));
  const outputGradient = kernel.matmul(top, true, dLogits, false, H, Vp, T);
  const unpadded = stepArray('outputGradient', H * V);
  for (let k = 0; k < H; k++) unpadded.set(outputGradient.subarray(k * Vp, k * Vp + V), k * V);
  update('output/w', outputW, unpadded);
  update('output/b', weight('output/b'), columnSums('output/b', dLogits, T, Vp, V));
  for (let l = layers - 1; l >= 0; l--) {
    const wh = weight(`lstm${l}/wh`);
    const dZ = keptCopy('dZ', kernel.backward(l, dH, wh));
    updateByRowBlocks(kernel, `lstm${l}/wh`, wh, hSeqs[l], H, T, dZ, G, update, gradientRows);
    update(`lstm${l}/b`, weight(`lstm${l}/b`), columnSums(`lstm${l}/b`, dZ, T, G, G));
    const wx = weight(`lstm${l}/wx`);
    if (l > 0) {
      dH = keptCopy('dH', kernel.matmul(dZ, false, wx, true, T, H, G));
      updateByRowBlocks(kernel, `lstm${l}/wx`, wx, hSeqs[l - 1].subarray(H), H, T, dZ, G, update, gradientRows);
      continue;
    }
    // Layer 0's input is the embedding's rows: their gradient goes through wx before wx moves, with wx's rows
    // padded to whole vectors, as the kernel's products need of their columns.
    const Ep = alignUp(E, 4);
    // Only the first E rows are ever written, so the padding rows stay the zeros the array was made with.
    const paddedWx = stepArray('paddedInput', Ep * G);
    paddedWx.set(wx);
    const dX = keptCopy('dX', kernel.matmul(dZ, false, paddedWx, true, T, Ep, G));
    update('lstm0/wx', wx, kernel.matmul(x, true, dZ, false, E, G, T));
    // Summed into below, so it starts from zeros each step.
    const embeddingGradient = stepArray('embeddingGradient', embedding.length).fill(0);
    inputs.forEach((id, t) => {
      for (let e = 0; e < E; e++) embeddingGradient[id * E + e] += dX[t * Ep + e];
    });
    update('embedding', embedding, embeddingGradient);
  }
}

/**
 * Rows of a weight's gradient taken at once: a whole H×4H gradient would keep its size resident in the kernel's
 * memory, as the product's output, beside the weights it is for.
 */
const GRADIENT_ROWS = 64;

/**
 * update()s weight `name`, [rows, N], with its gradient inputsᵀ · dZ, inputs [T, rows] and dZ [T, N], `blockRows` rows
 * at a time.
 */
function updateByRowBlocks(
  kernel: LayerKernel,
  name: string,
  values: Float32Array,
  inputs: Float32Array,
  rows: number,
  T: number,
  dZ: Float32Array,
  N: number,
  update: WeightUpdate,
  blockRows: number,
): void {
  // The product's rows are the inputs' columns, so each block's are made contiguous.
  const transposed = stepArray(`${name} inputs transposed`, rows * T);
  for (let t = 0; t < T; t++) for (let r = 0; r < rows; r++) transposed[r * T + t] = inputs[t * rows + r];
  for (let first = 0; first < rows; first += blockRows) {
    const count = Math.min(blockRows, rows - first);
    const block = transposed.subarray(first * T, (first + count) * T);
    update(name, values, kernel.matmul(block, false, dZ, false, count, N, T), first * N);
  }
}

/**
 * The gradient of bias `name`: its rows' gradients summed, `rows` rows of `stride` columns, the first `columns` of them.
 */
function columnSums(
  name: string,
  rowsGradient: Float32Array,
  rows: number,
  stride: number,
  columns: number,
): Float32Array {
  const sums = stepArray(`${name} gradient`, columns).fill(0);
  for (let t = 0; t < rows; t++) for (let j = 0; j < columns; j++) sums[j] += rowsGradient[t * stride + j];
  return sums;
}
