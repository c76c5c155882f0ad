// Finding the backends this machine can run: native libtensorflow, a GPU through Dawn (WebGPU), and wasm; each says why
// when it cannot.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import {
  registerWasmLayerKernelMatMul,
  registerWasmMatMulFix,
  registerWasmRowGather,
  registerWasmUnsortedSegmentSum,
} from './wasm-kernels';
import { prepareWasmThreads } from './wasm-threads';
import { registerWebGpuCellKernels } from './webgpu-cell';
import { foreignBinaryProblem } from './native-binary';
import { BUILT_DIRS, dirHolding } from './built-files';

/** A backend this machine can run, and why it was chosen or what it fell back from. */
export interface BackendSelection {
  name: string;
  /** Whether the math runs on a GPU: libtensorflow with CUDA, or WebGPU. */
  gpu: boolean;
  reason: string;
}

export function tryNative(notes: string[]): BackendSelection | undefined {
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
function locateDawn(): string {
  const platformDir = `${process.platform}-${process.platform === 'darwin' ? 'universal' : process.arch}`;
  const candidates = BUILT_DIRS.map((dir) => join(dir, 'dawn.node'));
  try {
    candidates.push(join(dirname(require.resolve('webgpu/package.json')), 'dist', platformDir, 'dawn.node'));
  } catch {
    // The optional webgpu package is not installed.
  }
  const foreign: string[] = [];
  const found = candidates.find((path) => {
    if (!existsSync(path)) return false;
    const problem = foreignBinaryProblem(path);
    if (problem) foreign.push(problem);
    return !problem;
  });
  if (!found && foreign.length > 0) throw new Error(foreign.join('; '));
  if (!found)
    throw new Error(`dawn.node for ${platformDir} not found (the optional npm package webgpu is not installed)`);
  return found;
}

type AdapterInfo = NonNullable<GpuAdapter['info']>;

// Run in a child process: without a GPU, Dawn and the Vulkan loader write warnings to the
// process's own stderr (XDG_RUNTIME_DIR, shaderUniform*ArrayDynamicIndexing), which no JavaScript
// can intercept; a child's stderr is simply dropped.
const ADAPTER_PROBE = `
const dawn = require(process.argv[1]);
Object.assign(globalThis, dawn.globals);
const say = (x) => { process.stdout.write(JSON.stringify(x)); process.exit(0); };
dawn.create([]).requestAdapter({ powerPreference: 'high-performance' }).then(
  (a) => say(a ? { info: { vendor: a.info?.vendor, architecture: a.info?.architecture, device: a.info?.device, description: a.info?.description, isFallbackAdapter: a.info?.isFallbackAdapter } } : { info: null }),
  (e) => say({ error: String(e?.message ?? e) }));
`;

/** The adapter Dawn would give this process, asked quietly in a child; throws with the reason it could not be asked. */
function probeAdapter(dawnPath: string): AdapterInfo | null {
  const child = spawnSync(process.execPath, ['-e', ADAPTER_PROBE, dawnPath], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30_000,
    windowsHide: true,
    // Inside VS Code the server runs on Electron's binary, which is node only with this set.
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
  });
  let answer: { info?: AdapterInfo | null; error?: string } | undefined;
  try {
    answer = JSON.parse(child.stdout);
  } catch {
    // Reported below with how the child ended.
  }
  if (answer?.error !== undefined) throw new Error(`the adapter request failed (${answer.error})`);
  if (answer?.info === undefined)
    throw new Error(
      `the adapter probe ${child.error ? `could not run (${child.error.message})` : `ended with ${child.signal ?? `code ${child.status}`}`}`,
    );
  return answer.info;
}

/**
 * The device limits tfjs asks for, plus storage buffers per stage: the default 8 is too few for
 * tfjs's AddN and Concat over many tensors, whose pipelines then fail validation and yield garbage.
 */
const WEBGPU_LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
];

/**
 * WebGPU through Dawn (Vulkan, Metal or D3D12), with the adapter checked before tfjs sees it: with
 * no adapter tfjs's setBackend fails yet leaves getBackend() saying 'webgpu', and a software
 * adapter is slower than wasm and has returned wrong numbers.
 */
export async function tryWebGpu(notes: string[]): Promise<BackendSelection | undefined> {
  try {
    if (!webGpuAdapterDescription) {
      if (process.platform === 'linux' && !hasVulkanLoader()) {
        // Checked first because Dawn would print its own warning to stderr on every start.
        notes.push('webgpu: no Vulkan loader (libvulkan.so.1; on Debian and Ubuntu: apt install libvulkan1)');
        return undefined;
      }
      const dawnPath = locateDawn();
      const probed = probeAdapter(dawnPath);
      if (!probed) {
        notes.push('webgpu: no GPU adapter (it needs a Vulkan, Metal or Direct3D 12 driver)');
        return undefined;
      }
      const probedAs = [probed.vendor, probed.architecture, probed.device, probed.description]
        .filter(Boolean)
        .join(' ');
      if (probed.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(probedAs)) {
        notes.push(`webgpu: only a software adapter (${probedAs})`);
        return undefined;
      }
      // A real GPU: only now is Dawn loaded into this process.
      const dawn = require(dawnPath) as Dawn;
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
      const { WebGPUBackend } =
        require('@tensorflow/tfjs-backend-webgpu') as typeof import('@tensorflow/tfjs-backend-webgpu');
      // Replaces the factory the import registered, to ask for the limits above on this adapter.
      tf.removeBackend('webgpu');
      tf.registerBackend('webgpu', async () => {
        const requiredLimits = Object.fromEntries(WEBGPU_LIMITS.map((name) => [name, adapter.limits[name]]));
        const device = await adapter.requestDevice({ requiredLimits });
        return new WebGPUBackend(
          device as ConstructorParameters<typeof WebGPUBackend>[0],
          adapter.info as ConstructorParameters<typeof WebGPUBackend>[1],
        );
      });
      webGpuAdapterDescription = described || 'a GPU';
    }
    if (!(await tf.setBackend('webgpu'))) {
      notes.push('webgpu: the backend failed to initialise');
      return undefined;
    }
    registerWebGpuCellKernels(
      (require('@tensorflow/tfjs-backend-webgpu') as typeof import('@tensorflow/tfjs-backend-webgpu')).webgpu_util,
    );
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
    return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'].some(
      (dir) => existsSync(join(dir, name)),
    );
  }
}

let wasmReady = false;

/** Whether wasm has been started in this process. */
export function isWasmReady(): boolean {
  return wasmReady;
}

export async function tryWasm(notes: string[]): Promise<BackendSelection | undefined> {
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
    registerWasmLayerKernelMatMul();
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
  const fromSource = BUILT_DIRS.map((dir) => join(dir, 'node_modules/@tensorflow/tfjs-backend-wasm/dist'));
  const dir = dirHolding(['tfjs-backend-wasm-simd.wasm'], [...BUILT_DIRS, ...fromSource]);
  if (dir === undefined)
    throw new Error(`tfjs-backend-wasm-simd.wasm not found next to ${__dirname}; run npm run build`);
  return dir;
}

export function firstLine(error: unknown): string {
  return String(error instanceof Error ? error.message : error).split('\n')[0];
}
