// The wasm backend's missing or slow kernels, replaced: matmul shapes XNNPACK mishandles, unsortedSegmentSum (the
// gradient of gather), and a row gather; and the wasm specifics the network's backward pass uses directly.
import * as tf from '@tensorflow/tfjs';
import { getKernel, registerKernel, unregisterKernel, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { activeLayerKernel, LayerKernelMemoryError } from './layer-kernel';

/**
 * Replaces a wasm kernel with `wrap(original)`, once: the replacement carries `marker`, so a second
 * call (another backend start in the same process) does not wrap the wrapper.
 */
function wrapWasmKernel(kernelName: string, marker: string, wrap: (original: KernelConfig) => KernelFunc): void {
  const original = getKernel(kernelName, 'wasm');
  if (!original || (original as unknown as Record<string, unknown>)[marker]) return;
  // The original's markers are kept, so every wrapper in the chain still recognises itself.
  const replacement = { ...original, [marker]: true, kernelFunc: wrap(original) } as KernelConfig;
  unregisterKernel(kernelName, 'wasm');
  registerKernel(replacement);
}

/**
 * The wasm backend only reaches XNNPACK when neither operand is transposed and otherwise runs a
 * scalar loop that is ~4x slower; every matmul gradient transposes. Transposing explicitly first
 * keeps all matmuls on the fast path. Where that would transpose a weight matrix to multiply it by a
 * few rows (a gradient through a layer, as when the server adapts the LSTM to a document), the
 * product is computed transposed instead, C = (op(B)ᵀ · op(A)ᵀ)ᵀ, so that only the small operand
 * and the small result are transposed: whichever moves fewer elements.
 */
export function registerWasmMatMulFix(): void {
  for (const kernelName of ['BatchMatMul', '_FusedMatMul']) {
    wrapWasmKernel(kernelName, 'transposeFixed', (original) => {
      const transpose = getKernel('Transpose', 'wasm')!;
      return (args) => {
        const { inputs, backend, attrs } = args as unknown as {
          inputs: Record<string, TensorInfo>;
          backend: { disposeData(id: object): void };
          attrs: Record<string, unknown>;
        };
        const transposeA = attrs.transposeA as boolean;
        const transposeB = attrs.transposeB as boolean;
        if (!transposeA && !transposeB) return original.kernelFunc(args);
        const temporaries: TensorInfo[] = [];
        const swapLastAxes = (x: TensorInfo, keep = true): TensorInfo => {
          const perm = x.shape.map((_, i) => i);
          const n = perm.length;
          [perm[n - 2], perm[n - 1]] = [perm[n - 1], perm[n - 2]];
          const result = transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm } } as never) as TensorInfo;
          if (keep) temporaries.push(result);
          return result;
        };
        const multiply = (a: TensorInfo, b: TensorInfo) =>
          original.kernelFunc({
            ...args,
            inputs: { ...inputs, a, b },
            attrs: { ...attrs, transposeA: false, transposeB: false },
          } as never) as TensorInfo;
        const { a, b } = inputs;
        const size = (x: TensorInfo) => x.shape.reduce((product, d) => product * d, 1);
        const rows = a.shape[a.shape.length - (transposeA ? 1 : 2)];
        const columns = b.shape[b.shape.length - (transposeB ? 2 : 1)];
        const batch = size(a) / (a.shape[a.shape.length - 1] * a.shape[a.shape.length - 2]);
        const direct = (transposeA ? size(a) : 0) + (transposeB ? size(b) : 0);
        const transposed = (transposeA ? 0 : size(a)) + (transposeB ? 0 : size(b)) + batch * rows * columns;
        // A bias or activation fused into the product would apply to the transposed result.
        const fused = inputs.bias !== undefined || inputs.preluActivationWeights !== undefined;
        const sameBatch = a.shape.length === b.shape.length && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
        let result: TensorInfo;
        if (transposed < direct && !fused && sameBatch) {
          const product = multiply(transposeB ? b : swapLastAxes(b), transposeA ? a : swapLastAxes(a));
          result = swapLastAxes(product, false);
          backend.disposeData(product.dataId);
        } else result = multiply(transposeA ? swapLastAxes(a) : a, transposeB ? swapLastAxes(b) : b);
        for (const t of temporaries) backend.disposeData(t.dataId);
        return result;
      };
    });
  }
}

/**
 * Large single matrix products go to the whole-layer kernel's matmul when one is running: it uses
 * FMA where the runtime has relaxed SIMD, reads transposed operands in place, and splits columns
 * evenly over the cores. Call after registerWasmMatMulFix; everything else keeps that path.
 */
export function registerWasmLayerKernelMatMul(): void {
  wrapWasmKernel('BatchMatMul', 'layerKernel', (fallback) => (args) => {
    const { inputs, backend, attrs } = args as unknown as {
      inputs: { a: TensorInfo; b: TensorInfo };
      backend: WasmBackendInternals;
      attrs: { transposeA: boolean; transposeB: boolean };
    };
    const { a, b } = inputs;
    const kernel = activeLayerKernel();
    // tf.matMul passes 2-D operands as they are; batched ones are [batch, rows, cols].
    const single = (x: TensorInfo) => x.shape.length === 2 || (x.shape.length === 3 && x.shape[0] === 1);
    const [aRows, aCols] = a.shape.slice(-2);
    const [bRows, bCols] = b.shape.slice(-2);
    const [M, K] = attrs.transposeA ? [aCols, aRows] : [aRows, aCols];
    const N = attrs.transposeB ? bRows : bCols;
    if (
      !kernel ||
      !single(a) ||
      !single(b) ||
      a.dtype !== 'float32' ||
      b.dtype !== 'float32' ||
      N % 4 !== 0 ||
      M * N * K < kernel.matmulMinMultiplyAdds
    ) {
      return fallback.kernelFunc(args);
    }
    let product: Float32Array;
    try {
      product = kernel.matmul(
        backend.typedArrayFromHeap(a),
        attrs.transposeA,
        backend.typedArrayFromHeap(b),
        attrs.transposeB,
        M,
        N,
        K,
      );
    } catch (error) {
      if (error instanceof LayerKernelMemoryError) return fallback.kernelFunc(args);
      throw error;
    }
    const output = backend.makeOutput(a.shape.length === 3 ? [1, M, N] : [M, N], 'float32');
    backend.typedArrayFromHeap(output).set(product);
    return output;
  });
}

interface WasmBackendInternals {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

/** The gradient of gather (and so of any embedding lookup) needs this kernel, which wasm lacks. */
export function registerWasmUnsortedSegmentSum(): void {
  if (getKernel('UnsortedSegmentSum', 'wasm')) return;
  registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend, attrs } = args as unknown as {
        inputs: { x: TensorInfo; segmentIds: TensorInfo };
        backend: WasmBackendInternals;
        attrs: { numSegments: number };
      };
      const { x, segmentIds } = inputs;
      if (x.dtype !== 'float32') throw new Error(`UnsortedSegmentSum on wasm supports float32, got ${x.dtype}`);
      const rows = segmentIds.shape.reduce((a, b) => a * b, 1);
      const width = x.shape.slice(segmentIds.shape.length).reduce((a, b) => a * b, 1);
      const ids = backend.readSync(segmentIds.dataId);
      const output = backend.makeOutput([attrs.numSegments, ...x.shape.slice(segmentIds.shape.length)], 'float32');
      // Views of the heap, taken after the allocation that may grow it: copying x out would cost more than the sum.
      const values = backend.typedArrayFromHeap(x);
      const out = backend.typedArrayFromHeap(output);
      out.fill(0);
      for (let r = 0; r < rows; r++) {
        const segment = ids[r];
        if (segment < 0 || segment >= attrs.numSegments) continue;
        const src = r * width;
        const dst = segment * width;
        for (let k = 0; k < width; k++) out[dst + k] += values[src + k];
      }
      return output;
    },
  });
}

/**
 * Gathering rows of a matrix (every embedding lookup) takes ~280 ms for 4096 rows of 1024 in the
 * stock wasm kernel; copying the rows directly takes a few ms. Other gathers keep the original.
 */
export function registerWasmRowGather(): void {
  wrapWasmKernel('GatherV2', 'rowGather', (original) => (args) => {
    const { inputs, backend, attrs } = args as unknown as {
      inputs: { x: TensorInfo; indices: TensorInfo };
      backend: WasmBackendInternals;
      attrs: { axis: number; batchDims: number };
    };
    const { x, indices } = inputs;
    if (
      x.shape.length !== 2 ||
      indices.shape.length !== 1 ||
      x.dtype !== 'float32' ||
      attrs.axis !== 0 ||
      attrs.batchDims !== 0
    ) {
      return original.kernelFunc(args);
    }
    const [rows, width] = x.shape;
    const output = backend.makeOutput([indices.shape[0], width], 'float32');
    const out = backend.typedArrayFromHeap(output);
    const source = backend.typedArrayFromHeap(x);
    const ids = backend.readSync(indices.dataId);
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (id < 0 || id >= rows) throw new Error(`gather: index ${id} is not in [0, ${rows})`);
      out.set(source.subarray(id * width, (id + 1) * width), r * width);
    }
    return output;
  });
}

/**
 * Column sums of a [rows, cols] matrix: the bias gradients. tfjs's wasm Sum over axis 0 transposes
 * first and took as long as one of the step's large matmuls; on wasm the heap is summed in place.
 */
export function columnSums(x: tf.Tensor2D): tf.Tensor1D {
  if (tf.getBackend() !== 'wasm') return tf.sum(x, 0);
  const [rows, cols] = x.shape;
  const values = heapView(x);
  const sums = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let k = 0; k < cols; k++) sums[k] += values[row + k];
  }
  return tf.tensor1d(Float32Array.from(sums));
}

/** A wasm tensor's memory, read in place (the whole-layer kernel copies what it needs). */
export function heapView(tensor: tf.Tensor): Float32Array {
  const backend = tf.backend() as unknown as { typedArrayFromHeap(info: tf.Tensor): Float32Array };
  return backend.typedArrayFromHeap(tensor);
}
