// The LSTM cell's elementwise math as single fused kernels. On wasm every tfjs op is a dispatch
// plus, for slices, a copy of the whole input tensor; a timestep needs a dozen of them. These run
// the cell in one pass over memory views of the tensors, on the wasm and cpu backends.
import * as tf from '@tensorflow/tfjs';
import { registerKernel, getKernel, TensorInfo, NamedAttrMap } from '@tensorflow/tfjs';

const POW2 = Float64Array.from({ length: 256 }, (_, n) => 2 ** (n - 128));

/** exp by range reduction and a degree-7 polynomial: ~2x faster than Math.exp, error < 1e-8. */
function fastExp(x: number): number {
  if (x > 80) x = 80;
  else if (x < -80) x = -80;
  const n = Math.round(x * 1.4426950408889634);
  const r = x - n * 0.6931471805599453;
  const p = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r / 5040))))));
  return p * POW2[n + 128];
}

export function sigmoid(x: number): number {
  return 1 / (1 + fastExp(-x));
}

export function tanh(x: number): number {
  const e = fastExp(2 * x);
  return (e - 1) / (e + 1);
}

/**
 * One timestep for a batch. z = recurrent[b] + inputProjection[row + b], gates ordered
 * [input, forget, output, cell]. acts receives the activated gates; c, tanhC and h the new state.
 */
export function cellForward(
  hidden: number, batch: number,
  recurrent: Float32Array, inputProjection: Float32Array, row: number, cPrev: Float32Array,
  acts: Float32Array, c: Float32Array, tanhC: Float32Array, h: Float32Array,
): void {
  const H = hidden;
  for (let b = 0; b < batch; b++) {
    const zo = b * 4 * H;
    const xo = (row + b) * 4 * H;
    const so = b * H;
    for (let k = 0; k < H; k++) {
      const i = sigmoid(recurrent[zo + k] + inputProjection[xo + k]);
      const f = sigmoid(recurrent[zo + H + k] + inputProjection[xo + H + k]);
      const o = sigmoid(recurrent[zo + 2 * H + k] + inputProjection[xo + 2 * H + k]);
      const g = tanh(recurrent[zo + 3 * H + k] + inputProjection[xo + 3 * H + k]);
      acts[zo + k] = i;
      acts[zo + H + k] = f;
      acts[zo + 2 * H + k] = o;
      acts[zo + 3 * H + k] = g;
      const cell = f * cPrev[so + k] + i * g;
      const t = tanh(cell);
      c[so + k] = cell;
      tanhC[so + k] = t;
      h[so + k] = o * t;
    }
  }
}

/**
 * Backward through one timestep. dH holds the gradient from above for all timesteps (rows
 * row..row+batch are this one); dhNext/dcNext come from the following timestep.
 */
export function cellBackward(
  hidden: number, batch: number,
  dH: Float32Array, row: number, dhNext: Float32Array, dcNext: Float32Array,
  acts: Float32Array, cPrev: Float32Array, tanhC: Float32Array,
  dZ: Float32Array, dcPrev: Float32Array,
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

function registerForBackend(backendName: string): void {
  const memory = memoryAccess[backendName];
  if (!memory || getKernel('LstmCellForward', backendName)) return;
  registerKernel({
    kernelName: 'LstmCellForward',
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { recurrent, inputProjection, cPrev } = inputs as Record<string, TensorInfo>;
      const [batch, H] = cPrev.shape;
      const out = memory.allocate(backend, [[batch, 4 * H], [batch, H], [batch, H], [batch, H]]);
      const [acts, c, tanhC, h] = out.views();
      cellForward(H, batch, memory.view(backend, recurrent), memory.view(backend, inputProjection), (attrs as { row: number }).row,
        memory.view(backend, cPrev), acts, c, tanhC, h);
      return out.infos;
    },
  });
  registerKernel({
    kernelName: 'LstmCellBackward',
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { dH, dhNext, dcNext, acts, cPrev, tanhC } = inputs as Record<string, TensorInfo>;
      const [batch, H] = cPrev.shape;
      const out = memory.allocate(backend, [[batch, 4 * H], [batch, H]]);
      const [dZ, dcPrev] = out.views();
      const v = (t: TensorInfo) => memory.view(backend, t);
      cellBackward(H, batch, v(dH), (attrs as { row: number }).row, v(dhNext), v(dcNext), v(acts), v(cPrev), v(tanhC), dZ, dcPrev);
      return out.infos;
    },
  });
}

/** True when the active backend runs the fused cell kernels (wasm and cpu). */
export function hasCellKernels(): boolean {
  const name = tf.getBackend();
  registerForBackend(name);
  return getKernel('LstmCellForward', name) !== undefined;
}

export function lstmCellForward(recurrent: tf.Tensor2D, inputProjection: tf.Tensor2D, row: number, cPrev: tf.Tensor2D) {
  const [acts, c, tanhC, h] = tf.engine().runKernel('LstmCellForward', { recurrent, inputProjection, cPrev }, { row } as unknown as NamedAttrMap) as tf.Tensor2D[];
  return { acts, c, tanhC, h };
}

export function lstmCellBackward(dH: tf.Tensor2D, row: number, dhNext: tf.Tensor2D, dcNext: tf.Tensor2D, acts: tf.Tensor2D, cPrev: tf.Tensor2D, tanhC: tf.Tensor2D) {
  const [dZ, dcPrev] = tf.engine().runKernel('LstmCellBackward', { dH, dhNext, dcNext, acts, cPrev, tanhC }, { row } as unknown as NamedAttrMap) as tf.Tensor2D[];
  return { dZ, dcPrev };
}
