// One LSTM timestep, forward and backward, on whichever backend is active: WebGPU's own kernels
// where they are registered (webgpu-cell.ts), plain tfjs ops where no kernel is, and on the wasm and
// cpu backends the cell's elementwise math as fused kernels written here. On wasm every tfjs op is
// a dispatch plus, for slices, a copy of the whole input tensor, and a timestep needs a dozen of
// them; these kernels work directly on memory views of the tensors.
import * as tf from '@tensorflow/tfjs';
import { registerKernel, getKernel, TensorInfo, NamedAttrMap } from '@tensorflow/tfjs';

/**
 * The forward cell is split around tfjs's sigmoid, which is vectorised, because JS has no SIMD and
 * exp dominates a scalar loop. tanh is written as 2σ(2x) − 1 so that one sigmoid serves all gates:
 *   gatePreactivations → sigmoid → cellState → sigmoid → cellOutput.
 */

/** pre = recurrent[b] + inputProjection[row + b], with the cell-input (g) columns doubled. */
export function gatePreactivations(
  hidden: number,
  batch: number,
  recurrent: Float32Array,
  inputProjection: Float32Array,
  row: number,
  pre: Float32Array,
): void {
  const width = 4 * hidden;
  for (let b = 0; b < batch; b++) {
    const zo = b * width;
    const xo = (row + b) * width;
    for (let k = 0; k < 3 * hidden; k++) pre[zo + k] = recurrent[zo + k] + inputProjection[xo + k];
    for (let k = 3 * hidden; k < width; k++) pre[zo + k] = 2 * (recurrent[zo + k] + inputProjection[xo + k]);
  }
}

/** From σ(pre): acts = [i, f, o, g], c = f·cPrev + i·g, and 2c for the next sigmoid. */
export function cellState(
  hidden: number,
  batch: number,
  sig: Float32Array,
  cPrev: Float32Array,
  acts: Float32Array,
  c: Float32Array,
  twoC: Float32Array,
): void {
  const H = hidden;
  for (let b = 0; b < batch; b++) {
    const zo = b * 4 * H;
    const so = b * H;
    for (let k = 0; k < H; k++) {
      const i = sig[zo + k];
      const f = sig[zo + H + k];
      const g = 2 * sig[zo + 3 * H + k] - 1;
      acts[zo + k] = i;
      acts[zo + H + k] = f;
      acts[zo + 2 * H + k] = sig[zo + 2 * H + k];
      acts[zo + 3 * H + k] = g;
      const cell = f * cPrev[so + k] + i * g;
      c[so + k] = cell;
      twoC[so + k] = 2 * cell;
    }
  }
}

/** From σ(2c): tanhC = 2σ(2c) − 1 and h = o·tanhC. */
export function cellOutput(
  hidden: number,
  batch: number,
  sigTwoC: Float32Array,
  acts: Float32Array,
  tanhC: Float32Array,
  h: Float32Array,
): void {
  const H = hidden;
  for (let b = 0; b < batch; b++) {
    const zo = b * 4 * H;
    const so = b * H;
    for (let k = 0; k < H; k++) {
      const t = 2 * sigTwoC[so + k] - 1;
      tanhC[so + k] = t;
      h[so + k] = acts[zo + 2 * H + k] * t;
    }
  }
}

/**
 * Backward through one timestep. dH holds the gradient from above for all timesteps (rows
 * row..row+batch are this one); dhNext/dcNext come from the following timestep.
 */
export function cellBackward(
  hidden: number,
  batch: number,
  dH: Float32Array,
  row: number,
  dhNext: Float32Array,
  dcNext: Float32Array,
  acts: Float32Array,
  cPrev: Float32Array,
  tanhC: Float32Array,
  dZ: Float32Array,
  dcPrev: Float32Array,
): void {
  const H = hidden;
  for (let b = 0; b < batch; b++) {
    const zo = b * 4 * H;
    const so = b * H;
    const ro = (row + b) * H;
    for (let k = 0; k < H; k++) {
      const i = acts[zo + k];
      const f = acts[zo + H + k];
      const o = acts[zo + 2 * H + k];
      const g = acts[zo + 3 * H + k];
      const t = tanhC[so + k];
      const dh = dH[ro + k] + dhNext[so + k];
      const dc = dh * o * (1 - t * t) + dcNext[so + k];
      dZ[zo + k] = dc * g * i * (1 - i);
      dZ[zo + H + k] = dc * cPrev[so + k] * f * (1 - f);
      dZ[zo + 2 * H + k] = dh * t * o * (1 - o);
      dZ[zo + 3 * H + k] = dc * i * (1 - g * g);
      dcPrev[so + k] = dc * f;
    }
  }
}

/** Uniform access to tensor memory on the backends whose memory JS can see. */
interface MemoryAccess {
  view(backend: unknown, info: TensorInfo): Float32Array;
  allocate(backend: unknown, shapes: number[][]): { infos: TensorInfo[]; views: () => Float32Array[] };
}

interface WasmBackend {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}
interface CpuBackend {
  data: { get(id: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array): TensorInfo;
}

const memoryAccess: Record<string, MemoryAccess> = {
  wasm: {
    view: (backend, info) => (backend as WasmBackend).typedArrayFromHeap(info),
    allocate(backend, shapes) {
      const wasm = backend as WasmBackend;
      const infos = shapes.map((shape) => wasm.makeOutput(shape, 'float32'));
      // Views are taken only after every allocation, because growing the heap detaches old views.
      return { infos, views: () => infos.map((info) => wasm.typedArrayFromHeap(info)) };
    },
  },
  cpu: {
    view: (backend, info) => (backend as CpuBackend).data.get(info.dataId).values,
    allocate(backend, shapes) {
      const arrays = shapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
      const infos = shapes.map((shape, i) => (backend as CpuBackend).makeTensorInfo(shape, 'float32', arrays[i]));
      return { infos, views: () => arrays };
    },
  },
};

/**
 * Registers a kernel that allocates its outputs, then writes them from views of its inputs. Every
 * view is taken after the allocation, because growing the wasm heap detaches older views.
 */
function registerViewKernel(
  kernelName: string,
  backendName: string,
  memory: MemoryAccess,
  outputShapes: (inputs: Record<string, TensorInfo>) => number[][],
  compute: (
    input: (name: string) => Float32Array,
    outputs: Float32Array[],
    inputs: Record<string, TensorInfo>,
    attrs: { row: number },
  ) => void,
): void {
  registerKernel({
    kernelName,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const infos = inputs as Record<string, TensorInfo>;
      const out = memory.allocate(backend, outputShapes(infos));
      const outputs = out.views();
      compute((name) => memory.view(backend, infos[name]), outputs, infos, attrs as { row: number });
      return out.infos;
    },
  });
}

function registerForBackend(backendName: string): void {
  const memory = memoryAccess[backendName];
  if (!memory || getKernel('LstmCellBackward', backendName)) return;
  registerViewKernel(
    'LstmGatePreactivations',
    backendName,
    memory,
    ({ recurrent }) => [[...recurrent.shape]],
    (input, [pre], { recurrent }, { row }) => {
      const [batch, width] = recurrent.shape;
      gatePreactivations(width / 4, batch, input('recurrent'), input('inputProjection'), row, pre);
    },
  );
  registerViewKernel(
    'LstmCellState',
    backendName,
    memory,
    ({ cPrev }) => {
      const [batch, H] = cPrev.shape;
      return [
        [batch, 4 * H],
        [batch, H],
        [batch, H],
      ];
    },
    (input, [acts, c, twoC], { cPrev }) => {
      const [batch, H] = cPrev.shape;
      cellState(H, batch, input('sig'), input('cPrev'), acts, c, twoC);
    },
  );
  registerViewKernel(
    'LstmCellOutput',
    backendName,
    memory,
    ({ sigTwoC }) => [[...sigTwoC.shape], [...sigTwoC.shape]],
    (input, [tanhC, h], { sigTwoC }) => {
      const [batch, H] = sigTwoC.shape;
      cellOutput(H, batch, input('sigTwoC'), input('acts'), tanhC, h);
    },
  );
  registerViewKernel(
    'LstmCellBackward',
    backendName,
    memory,
    ({ cPrev }) => {
      const [batch, H] = cPrev.shape;
      return [
        [batch, 4 * H],
        [batch, H],
      ];
    },
    (input, [dZ, dcPrev], { cPrev }, { row }) => {
      const [batch, H] = cPrev.shape;
      cellBackward(
        H,
        batch,
        input('dH'),
        row,
        input('dhNext'),
        input('dcNext'),
        input('acts'),
        input('cPrev'),
        input('tanhC'),
        dZ,
        dcPrev,
      );
    },
  );
}

/** True when the active backend runs the fused cell kernels (wasm and cpu). */
export function hasCellKernels(): boolean {
  const name = tf.getBackend();
  registerForBackend(name);
  return getKernel('LstmCellBackward', name) !== undefined;
}

/**
 * One timestep: z = recurrent + inputProjection[row..row+batch]; returns the gates (acts, in the
 * order [i, f, o, g]) and the new state. Fused kernels where the backend has them; otherwise
 * plain ops, which every backend runs (and autodiff can differentiate). Without trace, a GPU
 * kernel may skip acts and tanhC, which only the backward pass needs.
 */
export function lstmCellForward(
  recurrent: tf.Tensor2D,
  inputProjection: tf.Tensor2D,
  row: number,
  cPrev: tf.Tensor2D,
  fused = hasCellKernels(),
  trace = true,
): { acts: tf.Tensor2D; c: tf.Tensor2D; tanhC: tf.Tensor2D; h: tf.Tensor2D } {
  if (!fused) return lstmCellForwardOps(recurrent, inputProjection, row, cPrev);
  if (getKernel('LstmCellForward', tf.getBackend())) {
    // One kernel computing every output (backends/webgpu-cell.ts).
    const [c, h, acts, tanhC] = tf.engine().runKernel('LstmCellForward', { recurrent, inputProjection, cPrev }, {
      row,
      trace,
    } as unknown as NamedAttrMap) as tf.Tensor2D[];
    return { acts, c, tanhC, h };
  }
  const run = (name: string, inputs: Record<string, tf.Tensor>, attrs = {}) =>
    tf.engine().runKernel(name, inputs, attrs as NamedAttrMap) as tf.Tensor2D[];
  const [pre] = run('LstmGatePreactivations', { recurrent, inputProjection }, { row });
  const sig = tf.sigmoid(pre);
  const [acts, c, twoC] = run('LstmCellState', { sig, cPrev });
  const sigTwoC = tf.sigmoid(twoC);
  const [tanhC, h] = run('LstmCellOutput', { sigTwoC, acts });
  // Freed now rather than at the end of the enclosing tidy, which may span a whole sequence.
  tf.dispose([pre, sig, twoC, sigTwoC]);
  return { acts, c, tanhC, h };
}

function lstmCellForwardOps(recurrent: tf.Tensor2D, inputProjection: tf.Tensor2D, row: number, cPrev: tf.Tensor2D) {
  const [B, width] = recurrent.shape;
  const H = width / 4;
  return tf.tidy(() => {
    const z = tf.add(recurrent, tf.slice(inputProjection, [row, 0], [B, width]));
    const ifo = tf.sigmoid(tf.slice(z, [0, 0], [B, 3 * H]));
    const g = tf.tanh(tf.slice(z, [0, 3 * H], [B, H]));
    const [i, f, o] = tf.split(ifo, 3, 1);
    const c = tf.add(tf.mul(f, cPrev), tf.mul(i, g)) as tf.Tensor2D;
    const tanhC = tf.tanh(c) as tf.Tensor2D;
    return { acts: tf.concat([ifo, g], 1) as tf.Tensor2D, c, tanhC, h: tf.mul(o, tanhC) as tf.Tensor2D };
  });
}

/** Backward through one timestep (see cellBackward); fused where the backend has the kernel. */
export function lstmCellBackward(
  dH: tf.Tensor2D,
  row: number,
  dhNext: tf.Tensor2D,
  dcNext: tf.Tensor2D,
  acts: tf.Tensor2D,
  cPrev: tf.Tensor2D,
  tanhC: tf.Tensor2D,
  fused = hasCellKernels(),
) {
  if (!fused) return lstmCellBackwardOps(dH, row, dhNext, dcNext, acts, cPrev, tanhC);
  const [dZ, dcPrev] = tf.engine().runKernel('LstmCellBackward', { dH, dhNext, dcNext, acts, cPrev, tanhC }, {
    row,
  } as unknown as NamedAttrMap) as tf.Tensor2D[];
  return { dZ, dcPrev };
}

function lstmCellBackwardOps(
  dH: tf.Tensor2D,
  row: number,
  dhNext: tf.Tensor2D,
  dcNext: tf.Tensor2D,
  acts: tf.Tensor2D,
  cPrev: tf.Tensor2D,
  tanhC: tf.Tensor2D,
) {
  const [B, H] = cPrev.shape;
  return tf.tidy(() => {
    const [i, f, o, g] = tf.split(acts, 4, 1) as tf.Tensor2D[];
    const dh = tf.add(tf.slice(dH, [row, 0], [B, H]), dhNext);
    const dc = tf.add(tf.mul(tf.mul(dh, o), tf.sub(1, tf.square(tanhC))), dcNext);
    const sigmoidGrad = (x: tf.Tensor) => tf.mul(x, tf.sub(1, x));
    const dZ = tf.concat(
      [
        tf.mul(tf.mul(dc, g), sigmoidGrad(i)),
        tf.mul(tf.mul(dc, cPrev), sigmoidGrad(f)),
        tf.mul(tf.mul(dh, tanhC), sigmoidGrad(o)),
        tf.mul(tf.mul(dc, i), tf.sub(1, tf.square(g))),
      ],
      1,
    ) as tf.Tensor2D;
    return { dZ, dcPrev: tf.mul(dc, f) as tf.Tensor2D };
  });
}
