// Picks the TensorFlow.js backend at run time. Native libtensorflow cannot be a hard dependency
// (its install step downloads a binary), so it is tried when present; WebGPU through Dawn (which
// ships in npm) covers today's GPUs; the wasm build that ships in npm is the dependable CPU default.
import * as tf from '@tensorflow/tfjs';
import { BackendSelection, isWasmReady, tryNative, tryWasm, tryWebGpu } from './devices';
import { BUILT_DIRS } from './built-files';
import { startLayerKernel } from './layer-kernel';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
// Defined beside the probes that make one; callers of selectBackend take it from here.
export type { BackendSelection };

/**
 * The job the backend is for, run once on each candidate when auto selection has both a GPU and a
 * CPU backend: a CPU step can beat a GPU dispatch for a small model at batch 1.
 */
export type Probe = () => Promise<void>;

/** What auto selection may know before it probes (backends/probe-cache.ts decides it for the server). */
export interface SelectOptions {
  /** Why the GPU is not even opened: the CPU wins for this job. */
  skipGpu?: string;
  /** The GPU measured faster for this job on this machine before (the timings): no probe. */
  gpuMeasuredFaster?: string;
  /** Told the outcome of a probe, to remember it. */
  measured?: (result: { winner: 'gpu' | 'cpu'; timings: string }) => void;
}

/** The backend asked for cannot run here; the message says why and what to use instead. */
export class BackendUnavailableError extends Error {}

let pending: Promise<BackendSelection> | undefined;

/** Sets up the backend once per process; later calls return the first choice. */
export function selectBackend(
  choice: BackendChoice = 'auto',
  probe?: Probe,
  options: SelectOptions = {},
): Promise<BackendSelection> {
  pending ??= pickBackend(choice, probe, options);
  return pending;
}

/**
 * selectBackend for jobs that run whole sequences (training, scoring): on wasm it also starts the
 * whole-layer LSTM kernel, and the reason says what runs the layers. The server, which steps one
 * character at a time, does not pay for its threads.
 */
export async function selectSequenceBackend(choice: BackendChoice = 'auto', probe?: Probe): Promise<BackendSelection> {
  const selection = await selectBackend(choice, probe);
  if (selection.name !== 'wasm') return selection;
  const layers = await startLayerKernel(BUILT_DIRS);
  return { ...selection, reason: `${selection.reason}; ${layers}` };
}

async function pickBackend(
  choice: BackendChoice,
  probe?: Probe,
  options: SelectOptions = {},
): Promise<BackendSelection> {
  const skipGpu = choice === 'auto' ? options.skipGpu : undefined;
  const notes: string[] = [];
  const unusable = (name: string) =>
    new BackendUnavailableError(
      `backend: ${name} is not usable (${notes.join('; ')}). Use --backend auto, or another of ${BACKEND_CHOICES.join(', ')}.`,
    );
  const native = choice === 'auto' || choice === 'tensorflow' ? tryNative(notes) : undefined;
  if (choice === 'tensorflow') {
    if (!native) throw unusable('native TensorFlow');
    return activate(native);
  }
  const webgpu = (choice === 'auto' && !skipGpu) || choice === 'webgpu' ? await tryWebGpu(notes) : undefined;
  if (choice === 'webgpu') {
    if (!webgpu) throw unusable('webgpu');
    return activate(webgpu);
  }
  const gpu = skipGpu ? undefined : native?.gpu ? native : webgpu;
  let cpu: BackendSelection | undefined = native && !native.gpu ? native : undefined;
  if (!cpu && (choice === 'auto' || choice === 'wasm')) cpu = await tryWasm(notes);
  if (choice === 'wasm') {
    if (!cpu) throw unusable('wasm');
    return activate(cpu);
  }
  if (choice === 'cpu' || (!gpu && !cpu)) {
    return activate({
      name: 'cpu',
      gpu: false,
      reason: choice === 'cpu' ? 'requested' : `fallback: ${notes.join('; ')}`,
    });
  }
  if (!gpu && skipGpu) return activate({ ...cpu!, reason: `${cpu!.reason}; GPU not probed: ${skipGpu}` });
  if (!gpu) {
    // The one line that says why no GPU is used, beside the CPU backend's own reason.
    const why = notes.filter((note) => note.startsWith('webgpu'));
    return activate(
      choice === 'auto' && why.length > 0 ? { ...cpu!, reason: `${cpu!.reason}; no GPU: ${why.join('; ')}` } : cpu!,
    );
  }
  if (!cpu || !probe) return activate(gpu);
  if (options.gpuMeasuredFaster)
    return activate({ ...gpu, reason: `${gpu.reason}; measured faster before (cached): ${options.gpuMeasuredFaster}` });
  // Both kinds are here: time the job on each and keep the faster.
  const gpuMs = await timeProbe(gpu.name, probe);
  const cpuMs = await timeProbe(cpu.name, probe);
  const timings = `${gpu.name} ${formatMs(gpuMs)} vs ${cpu.name} ${formatMs(cpuMs)} for this job`;
  const winner = gpuMs <= cpuMs ? gpu : cpu;
  options.measured?.({ winner: winner === gpu ? 'gpu' : 'cpu', timings });
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
  const wasm = isWasmReady() || (await tryWasm([])) !== undefined;
  const name = wasm ? 'wasm' : 'cpu';
  await switchTo(name);
  return name;
}
