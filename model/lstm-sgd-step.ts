// One step of plain gradient descent for one sequence, on weights held as arrays, through the whole-layer kernel:
// the LSTM's adaptation to a document (lstm-adaptation.ts) without tfjs. Through tfjs the step's gradients and
// temporaries grow the wasm backend's heap, which never gives memory back; here the products run in the kernel's own
// memory and the arrays are updated in place.
//
// The math is CharLstm.trainStep's without dropout (the mean cross-entropy over the sequence), and each weight is
// updated as soon as nothing later in the backward pass reads it, so no gradient outlives its own update.
import type { NetworkConfig } from './architecture';
import { alignUp, LayerKernel, padColumns } from '../backends/layer-kernel';

/**
 * Descends the gradient of the mean loss of predicting `targets` from `inputs`, read from `state` (per layer h then c,
 * each [hidden]), by `learningRate`, changing `weights` (named as parameterShapes names them) in place.
 */
export function sgdStepInKernel(
  kernel: LayerKernel,
  config: NetworkConfig,
  weights: Map<string, Float32Array>,
  state: Float32Array,
  inputs: Int32Array,
  targets: Int32Array,
  learningRate: number,
): void {
  const { vocabSize: V, embed: E, hidden: H, layers } = config;
  const G = 4 * H;
  const T = inputs.length;
  if (T === 0 || targets.length !== T) throw new Error(`sgd step: ${T} inputs and ${targets.length} targets`);
  const weight = (name: string) => {
    const values = weights.get(name);
    if (!values) throw new Error(`sgd step: missing weights for ${name}`);
    return values;
  };
  for (const id of [...inputs, ...targets])
    if (!(id >= 0 && id < V)) throw new Error(`sgd step: id ${id} is outside the vocabulary of ${V}`);
  const embedding = weight('embedding');
  const x = new Float32Array(T * E);
  inputs.forEach((id, t) => x.set(embedding.subarray(id * E, (id + 1) * E), t * E));

  // Forward; the kernel's products need whole vectors of columns, so the output's are padded to Vp.
  const hSeqs: Float32Array[] = [];
  let xProj = kernel.matmul(x, false, weight('lstm0/wx'), false, T, G, E, weight('lstm0/b')).slice();
  for (let l = 0; l < layers; l++) {
    const h0 = state.subarray(2 * l * H, (2 * l + 1) * H);
    const c0 = state.subarray((2 * l + 1) * H, (2 * l + 2) * H);
    const { hSeq } = kernel.forward(l, 1, H, T, xProj, weight(`lstm${l}/wh`), h0, c0, true);
    hSeqs.push(hSeq.slice());
    if (l + 1 < layers)
      xProj = kernel
        .matmul(hSeqs[l].subarray(H), false, weight(`lstm${l + 1}/wx`), false, T, G, H, weight(`lstm${l + 1}/b`))
        .slice();
  }
  const top = hSeqs[layers - 1].subarray(H);
  const Vp = alignUp(V, 4);
  const outputW = weight('output/w');
  const paddedW = padColumns(outputW, H, V);
  const paddedB = padColumns(weight('output/b'), 1, V);
  const dLogits = kernel.matmul(top, false, paddedW, false, T, Vp, H, paddedB).slice();

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
  let dH = kernel.matmul(dLogits, false, paddedW, true, T, H, Vp).slice();
  const outputGradient = kernel.matmul(top, true, dLogits, false, H, Vp, T);
  for (let k = 0; k < H; k++)
    for (let j = 0; j < V; j++) outputW[k * V + j] -= learningRate * outputGradient[k * Vp + j];
  descendByColumnSums(weight('output/b'), dLogits, T, Vp, learningRate);
  for (let l = layers - 1; l >= 0; l--) {
    const wh = weight(`lstm${l}/wh`);
    const dZ = kernel.backward(l, dH, wh).slice();
    descend(wh, kernel.matmul(hSeqs[l], true, dZ, false, H, G, T), learningRate);
    descendByColumnSums(weight(`lstm${l}/b`), dZ, T, G, learningRate);
    const wx = weight(`lstm${l}/wx`);
    if (l > 0) {
      dH = kernel.matmul(dZ, false, wx, true, T, H, G).slice();
      descend(wx, kernel.matmul(hSeqs[l - 1].subarray(H), true, dZ, false, H, G, T), learningRate);
      continue;
    }
    // Layer 0's input is the embedding's rows: their gradient goes through wx before wx moves, with wx's rows
    // padded to whole vectors, as the kernel's products need of their columns.
    const Ep = alignUp(E, 4);
    const paddedWx = new Float32Array(Ep * G);
    paddedWx.set(wx);
    const dX = kernel.matmul(dZ, false, paddedWx, true, T, Ep, G).slice();
    descend(wx, kernel.matmul(x, true, dZ, false, E, G, T), learningRate);
    inputs.forEach((id, t) => {
      for (let e = 0; e < E; e++) embedding[id * E + e] -= learningRate * dX[t * Ep + e];
    });
  }
}

function descend(values: Float32Array, gradient: Float32Array, learningRate: number): void {
  for (let i = 0; i < values.length; i++) values[i] -= learningRate * gradient[i];
}

/** The gradient of a bias is its rows' gradients summed: `rows` rows of `stride` columns, the bias's length of them read. */
function descendByColumnSums(
  bias: Float32Array,
  rowsGradient: Float32Array,
  rows: number,
  stride: number,
  learningRate: number,
): void {
  for (let j = 0; j < bias.length; j++) {
    let sum = 0;
    for (let t = 0; t < rows; t++) sum += rowsGradient[t * stride + j];
    bias[j] -= learningRate * sum;
  }
}
