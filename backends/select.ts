// Picks the TensorFlow.js backend at run time. Native libtensorflow cannot be a hard dependency
// (its install step downloads a binary), so it is tried when present; WebGPU through Dawn (which
// ships in npm) covers today's GPUs; the wasm build that ships in npm is the dependable CPU default.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { getKernel, registerKernel, unregisterKernel, KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { prepareWasmThreads } from './wasm-threads';
import { registerWebGpuCellKernels } from './webgpu-cell';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendSelection {
  name: string;
  /** Whether the math runs on a GPU: libtensorflow with CUDA, or WebGPU. */
  gpu: boolean;
  reason: string;
}

/**
 * The job the backend is for, run once on each candidate when auto selection has both a GPU and a
 * CPU backend: a CPU step can beat a GPU dispatch for a small model at batch 1.
 */
export type Probe = () => Promise<void>;

/** The backend asked for cannot run here; the message says why and what to use instead. */
export class BackendUnavailableError extends Error {}

let pending: Promise<BackendSelection> | undefined;

/** Sets up the backend once per process; later calls return the first choice. */
export function selectBackend(choice: BackendChoice = 'auto', probe?: Probe): Promise<BackendSelection> {
  pending ??= pickBackend(choice, probe);
  return pending;
}

async function pickBackend(choice: BackendChoice, probe?: Probe): Promise<BackendSelection> {
  const notes: string[] = [];
  const unusable = (name: string) => new BackendUnavailableError(`backend: ${name} is not usable (${notes.join('; ')}). Use --backend auto, or another of ${BACKEND_CHOICES.join(', ')}.`);
  const native = choice === 'auto' || choice === 'tensorflow' ? tryNative(notes) : undefined;
  if (choice === 'tensorflow') {
    if (!native) throw unusable('native TensorFlow');
    return activate(native);
  }
  const webgpu = choice === 'auto' || choice === 'webgpu' ? await tryWebGpu(notes) : undefined;
  if (choice === 'webgpu') {
    if (!webgpu) throw unusable('webgpu');
    return activate(webgpu);
  }
  const gpu = native?.gpu ? native : webgpu;
  let cpu: BackendSelection | undefined = native && !native.gpu ? native : undefined;
  if (!cpu && (choice === 'auto' || choice === 'wasm')) cpu = await tryWasm(notes);
  if (choice === 'wasm') {
    if (!cpu) throw unusable('wasm');
    return activate(cpu);
  }
  if (choice === 'cpu' || (!gpu && !cpu)) {
    return activate({ name: 'cpu', gpu: false, reason: choice === 'cpu' ? 'requested' : `fallback: ${notes.join('; ')}` });
  }
  if (!gpu) return activate(cpu!);
  if (!cpu || !probe) return activate(gpu);
  // Both kinds are here: time the job on each and keep the faster.
  const gpuMs = await timeProbe(gpu.name, probe);
  const cpuMs = await timeProbe(cpu.name, probe);
  const timings = `${gpu.name} ${formatMs(gpuMs)} vs ${cpu.name} ${formatMs(cpuMs)} for this job`;
  const winner = gpuMs <= cpuMs ? gpu : cpu;
  return activate({ ...winner, reason: `${winner.reason}; measured faster: ${timings}` });
}

async function activate(selection: BackendSelection): Promise<BackendSelection> {
  await switchTo(selection.name);
  return selection;
}

async function switchTo(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`backend: ${name} failed to start`);
  await tf.ready();
}

/** Milliseconds for one run of the probe on a backend, after one warm-up run (shader compilation). */
async function timeProbe(name: string, probe: Probe): Promise<number> {
  await switchTo(name);
  await probe();
  const started = performance.now();
  await probe();
  return performance.now() - started;
}

function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
}

/**
 * Switches to the CPU backend auto selection would fall back to (wasm, else cpu), for checking a
 * GPU's results against it; returns its name. selectBackend() must have run.
 */
export async function useReferenceCpuBackend(): Promise<string> {
  const wasm = wasmReady || (await tryWasm([])) !== undefined;
  const name = wasm ? 'wasm' : 'cpu';
  await switchTo(name);
  return name;
}

function tryNative(notes: string[]): BackendSelection | undefined {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      // Loaded by name at run time: these optional packages are absent on most installs.
      require(pkg);
      if (!tf.findBackend('tensorflow')) continue;
      const native = tf.findBackend('tensorflow') as unknown as { isGPUPackage?: boolean; isUsingGpuDevice?: boolean };
      if (pkg.endsWith('-gpu') && !native.isUsingGpuDevice) {
        // libtensorflow 2.9.1 quietly runs on the CPU when it finds no CUDA 11.2 with cuDNN 8.1.
        notes.push(`${pkg} loaded but found no usable GPU (it needs CUDA 11.2 and cuDNN 8.1), so it runs on the CPU`);
        return { name: 'tensorflow', gpu: false, reason: notes[notes.length - 1] };
      }
      const gpu = native.isUsingGpuDevice === true;
      return { name: 'tensorflow', gpu, reason: `${pkg} loaded libtensorflow${gpu ? ' with CUDA' : ''}` };
    } catch (error) {
      notes.push(`${pkg} not installed or failed to load (${firstLine(error)})`);
    }
  }
  return undefined;
}

interface Dawn {
  create(flags: string[]): { requestAdapter(options?: object): Promise<GpuAdapter | null> };
  globals: Record<string, unknown>;
}
interface GpuAdapter {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  limits: Record<string, number>;
  requestDevice(descriptor: object): Promise<unknown>;
}

/** Dawn's Node binding: next to the bundle after a build (the .vsix has no node_modules), else from the webgpu package. */
function loadDawn(): Dawn {
  const platformDir = `${process.platform}-${process.platform === 'darwin' ? 'universal' : process.arch}`;
  const candidates = [join(__dirname, 'dawn.node'), join(__dirname, '..', 'dawn.node')];
  try {
    candidates.push(join(dirname(require.resolve('webgpu/package.json')), 'dist', platformDir, 'dawn.node'));
  } catch {
    // The optional webgpu package is not installed.
  }
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`dawn.node for ${platformDir} not found (the optional npm package webgpu is not installed)`);
  return require(found) as Dawn;
}

/**
 * The device limits tfjs asks for, plus storage buffers per stage: the default 8 is too few for
 * tfjs's AddN and Concat over many tensors, whose pipelines then fail validation and yield garbage.
 */
const WEBGPU_LIMITS = [
  'maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize',
  'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup', 'maxStorageBuffersPerShaderStage',
];

/**
 * WebGPU through Dawn (Vulkan, Metal or D3D12), with the adapter checked before tfjs sees it: with
 * no adapter tfjs's setBackend fails yet leaves getBackend() saying 'webgpu', and a software
 * adapter is slower than wasm and has returned wrong numbers.
 */
async function tryWebGpu(notes: string[]): Promise<BackendSelection | undefined> {
  try {
    if (!webGpuAdapterDescription) {
      if (process.platform === 'linux' && !hasVulkanLoader()) {
        // Checked first because Dawn would print its own warning to stderr on every start.
        notes.push('webgpu: no Vulkan loader (libvulkan.so.1; on Debian and Ubuntu: apt install libvulkan1)');
        return undefined;
      }
      const dawn = loadDawn();
      Object.assign(globalThis, dawn.globals);
      const gpu = dawn.create([]);
      const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      if (!adapter) {
        notes.push('webgpu: no GPU adapter (it needs a Vulkan, Metal or Direct3D 12 driver)');
        return undefined;
      }
      const info = adapter.info ?? {};
      const described = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
      if (info.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(described)) {
        notes.push(`webgpu: only a software adapter (${described})`);
        return undefined;
      }
      // Node 20 has no navigator, and later versions have one without gpu; tfjs-backend-webgpu
      // wants navigator.gpu to exist before its backend can be constructed.
      const navigator = ((globalThis as { navigator?: object }).navigator ??= {});
      Object.defineProperty(navigator, 'gpu', { value: gpu, configurable: true });
      const { WebGPUBackend } = require('@tensorflow/tfjs-backend-webgpu') as typeof import('@tensorflow/tfjs-backend-webgpu');
      // Replaces the factory the import registered, to ask for the limits above on this adapter.
      tf.removeBackend('webgpu');
      tf.registerBackend('webgpu', async () => {
        const requiredLimits = Object.fromEntries(WEBGPU_LIMITS.map((name) => [name, adapter.limits[name]]));
        const device = await adapter.requestDevice({ requiredLimits });
        return new WebGPUBackend(device as ConstructorParameters<typeof WebGPUBackend>[0], adapter.info as ConstructorParameters<typeof WebGPUBackend>[1]);
      });
      webGpuAdapterDescription = described || 'a GPU';
    }
    if (!(await tf.setBackend('webgpu'))) {
      notes.push('webgpu: the backend failed to initialise');
      return undefined;
    }
    registerWebGpuCellKernels((require('@tensorflow/tfjs-backend-webgpu') as typeof import('@tensorflow/tfjs-backend-webgpu')).webgpu_util);
    // One real op: a device can initialise and still fail its first dispatch.
    const check = await tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1)).data();
    if (check[0] !== 2 || check[1] !== 3) throw new Error(`a test op returned ${Array.from(check)}`);
    return { name: 'webgpu', gpu: true, reason: `WebGPU on ${webGpuAdapterDescription}` };
  } catch (error) {
    notes.push(`webgpu failed: ${firstLine(error)}`);
    return undefined;
  }
}
let webGpuAdapterDescription = '';

/** Whether the dynamic linker can find libvulkan.so.1, which Dawn loads at run time on Linux. */
function hasVulkanLoader(): boolean {
  const name = 'libvulkan.so.1';
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  if (dirs.some((dir) => existsSync(join(dir, name)))) return true;
  try {
    return readFileSync('/etc/ld.so.cache').includes(name);
  } catch {
    return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'].some((dir) => existsSync(join(dir, name)));
  }
}

let wasmReady = false;

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
    wasmReady = true;
    return { name: 'wasm', gpu: false, reason: `WebAssembly SIMD with XNNPACK, ${threadNote}` };
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
