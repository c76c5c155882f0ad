// Picks the TensorFlow.js backend at run time. Native libtensorflow cannot be a hard dependency
// (its install step downloads a binary), so it is tried first and the wasm build that ships in
// npm is the dependable default.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { getKernel, registerKernel, unregisterKernel, KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { prepareWasmThreads } from './wasm-threads';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendSelection {
  name: string;
  reason: string;
}

let current: BackendSelection | undefined;
let pending: Promise<BackendSelection> | undefined;

/** Sets up the backend once per process; later calls return the first choice. */
export function selectBackend(choice: BackendChoice = 'auto'): Promise<BackendSelection> {
  pending ??= pickBackend(choice).then((selection) => (current = selection));
  return pending;
}

export function currentBackend(): BackendSelection | undefined {
  return current;
}

async function pickBackend(choice: BackendChoice): Promise<BackendSelection> {
  const notes: string[] = [];
  if (choice === 'auto' || choice === 'tensorflow') {
    const native = tryNative(notes);
    if (native) return native;
    if (choice === 'tensorflow') {
      throw new Error(`backend: native TensorFlow is not usable (${notes.join('; ')}). Use --backend auto, wasm or cpu.`);
    }
  }
  if (choice === 'auto' || choice === 'wasm') {
    const wasm = await tryWasm(notes);
    if (wasm) return wasm;
    if (choice === 'wasm') throw new Error(`backend: wasm is not usable (${notes.join('; ')}).`);
  }
  if (!(await tf.setBackend('cpu'))) throw new Error('backend: even the cpu backend failed to start');
  await tf.ready();
  return { name: 'cpu', reason: choice === 'cpu' ? 'requested with --backend cpu' : `fallback: ${notes.join('; ')}` };
}

function tryNative(notes: string[]): BackendSelection | undefined {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      // Loaded by name at run time: these optional packages are absent on most installs.
      require(pkg);
      if (tf.getBackend() !== 'tensorflow' && !tf.findBackend('tensorflow')) continue;
      tf.setBackend('tensorflow');
      return { name: 'tensorflow', reason: `${pkg} loaded libtensorflow` };
    } catch (error) {
      notes.push(`${pkg} not installed or failed to load (${firstLine(error)})`);
    }
  }
  return undefined;
}

async function tryWasm(notes: string[]): Promise<BackendSelection | undefined> {
  try {
    const wasmDir = locateWasmBinaries();
    setWasmPaths(wasmDir.endsWith('/') ? wasmDir : wasmDir + '/');
    const threads = wasmThreadsWanted();
    let threadNote = 'single-threaded';
    let started = false;
    if (threads > 1) {
      try {
        const restore = prepareWasmThreads(wasmDir);
        setThreadsCount(threads);
        started = await tf.setBackend('wasm').catch(() => false);
        restore();
      } catch (error) {
        threadNote = `single-threaded: ${firstLine(error)}`;
      }
      if (started) {
        threadNote = `${getThreadsCount()} threads`;
      } else {
        tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
        if (threadNote === 'single-threaded') threadNote = 'single-threaded: the threaded build failed to start';
      }
    }
    if (!started && !(await tf.setBackend('wasm'))) {
      notes.push('wasm backend failed to initialise');
      return undefined;
    }
    await tf.ready();
    registerWasmMatMulFix();
    registerWasmUnsortedSegmentSum();
    registerWasmRowGather();
    return { name: 'wasm', reason: `native TensorFlow unavailable; WebAssembly SIMD with XNNPACK, ${threadNote}` };
  } catch (error) {
    notes.push(`wasm failed: ${firstLine(error)}`);
    return undefined;
  }
}

/** One XNNPACK thread per core (up to 4); CHAR_COMPLETE_WASM_THREADS overrides, 1 turns threads off. */
function wasmThreadsWanted(): number {
  const asked = Number(process.env.CHAR_COMPLETE_WASM_THREADS);
  if (Number.isInteger(asked) && asked >= 1) return asked;
  return Math.min(4, cpus().length);
}

/** The .wasm files sit next to the bundle after a build, or in node_modules when run from source. */
function locateWasmBinaries(): string {
  const candidates = [__dirname, join(__dirname, '..'), join(__dirname, '../node_modules/@tensorflow/tfjs-backend-wasm/dist'), join(__dirname, '../../node_modules/@tensorflow/tfjs-backend-wasm/dist')];
  for (const dir of candidates) {
    if (existsSync(join(dir, 'tfjs-backend-wasm-simd.wasm'))) return dir;
  }
  throw new Error(`tfjs-backend-wasm-simd.wasm not found next to ${__dirname}; run npm run build`);
}

/**
 * The wasm backend only reaches XNNPACK when neither operand is transposed and otherwise runs a
 * scalar loop that is ~4x slower; every matmul gradient transposes. Transposing explicitly first
 * keeps all matmuls on the fast path.
 */
function registerWasmMatMulFix(): void {
  for (const kernelName of ['BatchMatMul', '_FusedMatMul']) {
    const original = getKernel(kernelName, 'wasm');
    if (!original || (original as KernelConfig & { transposeFixed?: boolean }).transposeFixed) continue;
    const transpose = getKernel('Transpose', 'wasm')!;
    const fixed: KernelConfig & { transposeFixed: boolean } = {
      kernelName,
      backendName: 'wasm',
      transposeFixed: true,
      kernelFunc: (args) => {
        const { inputs, backend, attrs } = args as unknown as {
          inputs: Record<string, TensorInfo>;
          backend: { disposeData(id: object): void };
          attrs: Record<string, unknown>;
        };
        if (!attrs.transposeA && !attrs.transposeB) return original.kernelFunc(args);
        const temporaries: TensorInfo[] = [];
        const swapLastAxes = (x: TensorInfo): TensorInfo => {
          const perm = x.shape.map((_, i) => i);
          const n = perm.length;
          [perm[n - 2], perm[n - 1]] = [perm[n - 1], perm[n - 2]];
          const result = transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm } } as never) as TensorInfo;
          temporaries.push(result);
          return result;
        };
        const a = attrs.transposeA ? swapLastAxes(inputs.a) : inputs.a;
        const b = attrs.transposeB ? swapLastAxes(inputs.b) : inputs.b;
        const result = original.kernelFunc({
          ...args,
          inputs: { ...inputs, a, b },
          attrs: { ...attrs, transposeA: false, transposeB: false },
        } as never);
        for (const t of temporaries) backend.disposeData(t.dataId);
        return result;
      },
    };
    unregisterKernel(kernelName, 'wasm');
    registerKernel(fixed);
  }
}

interface WasmBackendInternals {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

/** The gradient of gather (and so of any embedding lookup) needs this kernel, which wasm lacks. */
function registerWasmUnsortedSegmentSum(): void {
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
      const values = backend.readSync(x.dataId);
      const ids = backend.readSync(segmentIds.dataId);
      const output = backend.makeOutput([attrs.numSegments, ...x.shape.slice(segmentIds.shape.length)], 'float32');
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
function registerWasmRowGather(): void {
  const original = getKernel('GatherV2', 'wasm');
  if (!original || (original as KernelConfig & { rowGather?: boolean }).rowGather) return;
  const fast: KernelConfig & { rowGather: boolean } = {
    kernelName: 'GatherV2',
    backendName: 'wasm',
    rowGather: true,
    kernelFunc: (args) => {
      const { inputs, backend, attrs } = args as unknown as {
        inputs: { x: TensorInfo; indices: TensorInfo };
        backend: WasmBackendInternals;
        attrs: { axis: number; batchDims: number };
      };
      const { x, indices } = inputs;
      if (x.shape.length !== 2 || indices.shape.length !== 1 || x.dtype !== 'float32' || attrs.axis !== 0 || attrs.batchDims !== 0) {
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
    },
  };
  unregisterKernel('GatherV2', 'wasm');
  registerKernel(fast);
}

function firstLine(error: unknown): string {
  return String(error instanceof Error ? error.message : error).split('\n')[0];
}
