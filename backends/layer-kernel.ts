// Host side of the whole-layer LSTM kernel (backends/assembly/lstm-layer.ts): loads the build the
// runtime can run (relaxed SIMD with FMA, else plain SIMD), starts one worker thread per extra
// core on a shared memory, and moves tensors in and out. The layer's trace (gates, c, tanh c)
// stays in the shared memory between the forward and backward pass of a training step.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { dirHolding } from './built-files';

export const LAYER_KERNEL_FILES = {
  relaxed: 'lstm-layer.relaxed.wasm',
  simd: 'lstm-layer.simd.wasm',
  worker: 'layer-kernel-worker.js',
} as const;

export const WASM_PAGE = 65536;
/** The module's declared maximum (asc --maximumMemory, scripts/build.mjs), in pages. */
export const LAYER_KERNEL_MAX_PAGES = 32768;
export const LAYER_KERNEL_INITIAL_PAGES = 32;

// Control block, in i32 words: a job sequence number the workers wait on, the job, its arguments,
// and the barrier (arrivals, generation, abort) the kernel synchronises timesteps with.
const JOB_SEQUENCE = 0;
const JOB_KIND = 1;
const JOB_ARGS = 2;
const BARRIER_WORD = 16;
const ABORT_WORD = BARRIER_WORD + 2;
const CONTROL_BYTES = 128;

export const enum JobKind {
  Forward = 1,
  Backward = 2,
  MatMul = 3,
  Quit = 4,
}

/**
 * Packs rows [kFirst, kEnd) of W [K, N], given at `w` as those rows alone, into `panels` for a step's products (pack,
 * or packBf16 for weights held in bfloat16).
 */
type StepPack = (w: number, K: number, N: number, kFirst: number, kEnd: number, panels: number) => void;
/** C [rows, N] = init + A [rows, K] · W, W packed by the StepPack of the same type. */
type StepProduct = (
  rows: number,
  K: number,
  N: number,
  a: number,
  panels: number,
  init: number,
  initStride: number,
  c: number,
) => void;

export interface KernelExports {
  forward(thread: number, threads: number, ...args: number[]): number;
  backward(thread: number, threads: number, ...args: number[]): number;
  matmul(thread: number, threads: number, ...args: number[]): number;
  pack: StepPack;
  stepProduct: StepProduct;
  packBf16: StepPack;
  stepProductBf16: StepProduct;
  packI8: StepPack;
  stepProductI8: StepProduct;
  maxAbsColumns(w: number, rows: number, N: number, scales: number): void;
  scalesOfMaxima(N: number, scales: number): void;
  stepCell(B: number, H: number, z: number, cPrev: number, h: number, c: number): void;
  heapBase(): number;
}

/**
 * Runs the posted job as `thread`; shared by the calling thread and the workers. A thread that
 * fails raises the abort word, so the others leave their barriers instead of waiting for it.
 */
export function runJob(kernel: KernelExports, control: Int32Array, thread: number, threads: number): boolean {
  const args = Array.from(control.subarray(JOB_ARGS, BARRIER_WORD - 1));
  const barrier = control.byteOffset + BARRIER_WORD * 4;
  try {
    const kind = control[JOB_KIND] as JobKind;
    if (kind === JobKind.Forward) return kernel.forward(thread, threads, ...args.slice(0, 11), barrier) !== 0;
    if (kind === JobKind.MatMul) return kernel.matmul(thread, threads, ...args.slice(0, 10), barrier) !== 0;
    return kernel.backward(thread, threads, ...args.slice(0, 12), barrier) !== 0;
  } catch (error) {
    Atomics.store(control, ABORT_WORD, 1);
    Atomics.notify(control, BARRIER_WORD + 1);
    throw error;
  }
}

export interface WorkerSetup {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  thread: number;
  threads: number;
}

/** Addresses of one layer's trace, kept from its forward pass for its backward pass. */
interface LayerTrace {
  B: number;
  H: number;
  T: number;
  hSeq: number;
  cSeq: number;
  acts: number;
  tanhC: number;
}

export interface LayerForwardResult {
  /** h0 then h after every step, [(T+1)*B, H]: the layer's output and the next step's input in one. */
  hSeq: Float32Array;
  /** c after the last step, [B, H]. */
  cLast: Float32Array;
}

/**
 * Every job copies its weights (wh, or a product's B) in and packs them anew, and nothing reads them after it returns,
 * so the layer jobs and the products share these two regions rather than keep one each.
 */
const WEIGHTS_REGION = 'weights';
const PANELS_REGION = 'panels';

/** The kernel's memory cannot hold the job; the caller runs it another way. */
export class LayerKernelMemoryError extends Error {}

export class LayerKernel {
  private top: number;
  private readonly regions = new Map<string, { offset: number; bytes: number }>();
  /** The buffers residentArray()'s arrays view: a JS array at the same offset as a block is not the block. */
  private readonly residentBuffers = new WeakSet<ArrayBufferLike>();
  /** The blocks residentArray() handed out, by offset: their size. */
  private readonly residentBlocks = new Map<number, number>();
  /**
   * Blocks given back, for the next residentArray()s that fit: the memory never shrinks, so another model's copy (a
   * model loaded in place of this one) takes what the last one gave back before it grows the memory.
   */
  private readonly releasedBlocks: Array<{ offset: number; bytes: number }> = [];
  private readonly traces = new Map<number, LayerTrace>();
  private readonly control: Int32Array;

  private constructor(
    private readonly kernel: KernelExports,
    private readonly memory: WebAssembly.Memory,
    private readonly workers: Worker[],
    readonly threads: number,
    readonly relaxed: boolean,
    controlOffset: number,
    private readonly maxPages: number,
  ) {
    this.control = new Int32Array(memory.buffer, controlOffset, CONTROL_BYTES / 4);
    this.top = controlOffset + CONTROL_BYTES;
  }

  /**
   * Loads the kernel from `dir` with `threads` threads, the relaxed-SIMD build where the runtime
   * has it unless `allowRelaxed` is false; throws with the reason it cannot run here.
   */
  static async start(
    dir: string,
    threads: number,
    allowRelaxed = true,
    maxPages = LAYER_KERNEL_MAX_PAGES,
  ): Promise<LayerKernel> {
    const { module, relaxed } = loadKernelModule(dir, allowRelaxed);
    const memory = new WebAssembly.Memory({ initial: LAYER_KERNEL_INITIAL_PAGES, maximum: maxPages, shared: true });
    const kernel = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    const control = alignUp(kernel.heapBase(), 64);
    const workers: Worker[] = [];
    try {
      for (let thread = 1; thread < threads; thread++) {
        const setup: WorkerSetup = { module, memory, control, thread, threads };
        const worker = new Worker(join(dir, LAYER_KERNEL_FILES.worker), { workerData: setup });
        worker.unref();
        await new Promise<void>((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
        });
        workers.push(worker);
      }
    } catch (error) {
      for (const worker of workers) void worker.terminate();
      throw new Error(`worker threads failed to start (${(error as Error).message})`);
    }
    return new LayerKernel(kernel, memory, workers, threads, relaxed, control, maxPages);
  }

  get description(): string {
    return `whole-layer kernel, ${this.relaxed ? 'relaxed SIMD (FMA)' : 'SIMD without FMA'}, ${this.threads} thread${this.threads === 1 ? '' : 's'}`;
  }

  /**
   * One layer over T steps for B sequences of width H: xProj [T*B, 4H] time-major with the bias
   * added, wh [H, 4H], h0 and c0 [B, H]. `layer` names the trace slot backward() will read;
   * with `training` the memory backward() needs is reserved now, so that only this call can fail
   * for want of it (LayerKernelMemoryError). The returned views are valid until the next call.
   */
  forward(
    layer: number,
    B: number,
    H: number,
    T: number,
    xProj: Float32Array,
    wh: Float32Array,
    h0: Float32Array,
    c0: Float32Array,
    training: boolean,
  ): LayerForwardResult {
    checkShape(B, H, T);
    const G = 4 * H;
    if (training) this.backwardRegions(B, H, T, wh);
    const state = (T + 1) * B * H * 4;
    const trace: LayerTrace = {
      B,
      H,
      T,
      hSeq: this.region(`hSeq${layer}`, state),
      cSeq: this.region(`cSeq${layer}`, state),
      acts: this.region(`acts${layer}`, T * B * G * 4),
      tanhC: this.region(`tanhC${layer}`, T * B * H * 4),
    };
    const xAt = this.region('xProj', T * B * G * 4);
    const whAt = this.placed(WEIGHTS_REGION, wh, H * G);
    const zAt = this.region('z', B * G * 4);
    const panelsAt = this.region(PANELS_REGION, H * G * 4);
    this.floats(xAt, T * B * G).set(xProj.subarray(0, T * B * G));
    this.floats(trace.hSeq, B * H).set(h0.subarray(0, B * H));
    this.floats(trace.cSeq, B * H).set(c0.subarray(0, B * H));
    this.run(JobKind.Forward, [B, H, T, xAt, whAt, trace.hSeq, trace.cSeq, trace.acts, trace.tanhC, panelsAt, zAt]);
    this.traces.set(layer, trace);
    return {
      hSeq: this.floats(trace.hSeq, (T + 1) * B * H),
      cLast: this.floats(trace.cSeq + T * B * H * 4, B * H),
    };
  }

  /**
   * The gate gradients dZ [T*B, 4H] of the layer whose forward pass ran last in `layer`, given
   * dH [T*B, H], the gradient reaching its outputs from above, and the same wh. The returned view
   * is valid until the next call.
   */
  backward(layer: number, dH: Float32Array, wh: Float32Array): Float32Array {
    const trace = this.traces.get(layer);
    if (!trace) throw new Error(`layer kernel: no forward pass of layer ${layer} to differentiate`);
    this.traces.delete(layer);
    const { B, H, T } = trace;
    const G = 4 * H;
    const { dHAt, panelsAt, dZAt, dhNextAt, dcNextAt } = this.backwardRegions(B, H, T, wh);
    const whAt = this.placed(WEIGHTS_REGION, wh, H * G);
    this.floats(dHAt, T * B * H).set(dH.subarray(0, T * B * H));
    this.run(JobKind.Backward, [
      B,
      H,
      T,
      dHAt,
      whAt,
      trace.cSeq,
      trace.acts,
      trace.tanhC,
      dZAt,
      panelsAt,
      dhNextAt,
      dcNextAt,
    ]);
    return this.floats(dZAt, T * B * G);
  }

  /**
   * Products at least this big (multiply-adds) go through matmul() when tfjs asks the wasm backend
   * for one (backends/wasm-kernels.ts); smaller ones stay with XNNPACK, where a call costs less.
   */
  matmulMinMultiplyAdds = 2 ** 21;

  /**
   * C [M, N] = op(A) · op(B) (+ bias [N]), N a multiple of 4. A is [M, K] or, transposed, [K, M];
   * B is [K, N] or, transposed, [N, K]. The returned view is valid until the next call.
   */
  matmul(
    a: Float32Array,
    aTransposed: boolean,
    b: Float32Array,
    bTransposed: boolean,
    M: number,
    N: number,
    K: number,
    bias?: Float32Array,
  ): Float32Array {
    if (!(M >= 1 && K >= 1 && N >= 4 && N % 4 === 0))
      throw new Error(`layer kernel: matmul needs N a multiple of 4 (got M ${M}, N ${N}, K ${K})`);
    const aAt = this.region('matA', M * K * 4);
    const bAt = this.placed(WEIGHTS_REGION, b, K * N);
    const cAt = this.region('matC', M * N * 4);
    const panelsAt = this.region(PANELS_REGION, K * N * 4);
    const biasAt = bias ? this.placed('matBias', bias, N) : 0;
    this.floats(aAt, M * K).set(a.subarray(0, M * K));
    this.run(JobKind.MatMul, [M, N, K, aAt, aTransposed ? 1 : 0, bAt, bTransposed ? 1 : 0, biasAt, cAt, panelsAt]);
    return this.floats(cAt, M * N);
  }

  /** The regions backward() needs, the one to copy wh into too unless `wh` is resident. */
  private backwardRegions(B: number, H: number, T: number, wh: Float32Array) {
    const G = 4 * H;
    if (!this.isResident(wh)) this.region(WEIGHTS_REGION, H * G * 4);
    return {
      dHAt: this.region('dH', T * B * H * 4),
      panelsAt: this.region(PANELS_REGION, H * G * 4),
      dZAt: this.region('dZ', T * B * G * 4),
      dhNextAt: this.region('dhNext', B * H * 4),
      dcNextAt: this.region('dcNext', B * H * 4),
    };
  }

  /** Stops the workers; the kernel is unusable afterwards. */
  async close(): Promise<void> {
    this.control[JOB_KIND] = JobKind.Quit;
    Atomics.add(this.control, JOB_SEQUENCE, 1);
    Atomics.notify(this.control, JOB_SEQUENCE);
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private run(kind: JobKind, args: number[]): void {
    if (Atomics.load(this.control, ABORT_WORD) !== 0) throw new Error('layer kernel: a worker thread failed earlier');
    this.control[JOB_KIND] = kind;
    this.control.set(args, JOB_ARGS);
    Atomics.add(this.control, JOB_SEQUENCE, 1);
    Atomics.notify(this.control, JOB_SEQUENCE);
    if (!runJob(this.kernel, this.control, 0, this.threads))
      throw new Error('layer kernel: a worker thread failed; it is off for the rest of this run');
  }

  /**
   * An array of `length` floats that lives in this kernel's memory until releaseResident(): a job given it reads it
   * where it is rather than copying it in, so weights the kernel multiplies by step after step need not be held
   * twice, outside its memory and in its copy.
   */
  residentArray(length: number): Float32Array {
    const bytes = alignUp(length * 4, 64);
    let best = -1;
    this.releasedBlocks.forEach((block, i) => {
      if (block.bytes >= bytes && (best < 0 || block.bytes < this.releasedBlocks[best].bytes)) best = i;
    });
    const block = best >= 0 ? this.releasedBlocks.splice(best, 1)[0] : { offset: this.allocate(bytes), bytes };
    this.residentBlocks.set(block.offset, block.bytes);
    const array = this.floats(block.offset, length);
    this.residentBuffers.add(array.buffer);
    return array;
  }

  /** Gives a residentArray() back for the next arrays that fit in its block; the caller no longer reads or writes it. */
  releaseResident(array: Float32Array): void {
    if (!this.isResident(array)) throw new Error('layer kernel: releasing an array that is not in its memory');
    const bytes = this.residentBlocks.get(array.byteOffset)!;
    this.residentBlocks.delete(array.byteOffset);
    this.releasedBlocks.push({ offset: array.byteOffset, bytes });
  }

  /**
   * Whether `array` is one residentArray() handed out and not yet given back: a job's own output, also a view of this
   * memory, is copied in like any other array, since the job may write where it lies.
   */
  private isResident(array: Float32Array): boolean {
    return this.residentBuffers.has(array.buffer) && this.residentBlocks.has(array.byteOffset);
  }

  /** Where a job finds the first `length` floats of `values`: in place if resident, else copied into region `name`. */
  private placed(name: string, values: Float32Array, length: number): number {
    if (this.isResident(values)) return values.byteOffset;
    const at = this.region(name, length * 4);
    this.floats(at, length).set(values.subarray(0, length));
    return at;
  }

  /** A named region of at least `bytes`, reused while big enough. */
  private region(name: string, bytes: number): number {
    const existing = this.regions.get(name);
    if (existing && existing.bytes >= bytes) return existing.offset;
    const offset = this.allocate(bytes);
    this.regions.set(name, { offset, bytes });
    return offset;
  }

  /** `bytes` above everything allocated so far; the memory grows as needed. */
  private allocate(bytes: number): number {
    const offset = alignUp(this.top, 64);
    const end = offset + bytes;
    const pages = Math.ceil(end / WASM_PAGE);
    if (pages > this.maxPages)
      throw new LayerKernelMemoryError(
        `layer kernel: ${Math.round(end / 2 ** 20)} MiB exceeds its ${this.maxPages / 16} MiB memory`,
      );
    const current = this.memory.buffer.byteLength / WASM_PAGE;
    if (pages > current) this.memory.grow(pages - current);
    this.top = end;
    return offset;
  }

  private floats(offset: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, offset, length);
  }
}

function checkShape(B: number, H: number, T: number): void {
  if (!(B >= 1 && T >= 1 && H >= 4 && H % 4 === 0))
    throw new Error(`layer kernel: needs hidden a multiple of 4 (got batch ${B}, hidden ${H}, steps ${T})`);
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/**
 * W [rows, cols] with each row padded with zeros to whole vectors, [rows, alignUp(cols, 4)], in `into` if given: the
 * kernel's products need whole vectors of columns, and a vocabulary need not be.
 */
export function padColumns(
  w: Float32Array,
  rows: number,
  cols: number,
  into: Float32Array<ArrayBufferLike> = new Float32Array(rows * alignUp(cols, 4)),
): Float32Array<ArrayBufferLike> {
  const stride = alignUp(cols, 4);
  for (let r = 0; r < rows; r++) {
    into.set(w.subarray(r * cols, (r + 1) * cols), r * stride);
    into.fill(0, r * stride + cols, (r + 1) * stride);
  }
  return into;
}

/**
 * The kernel's module from the build in `dir`: the relaxed-SIMD build where the runtime has it,
 * unless `allowRelaxed` is false. Throws with the reason it cannot run here.
 */
export function loadKernelModule(dir: string, allowRelaxed = true): { module: WebAssembly.Module; relaxed: boolean } {
  if (typeof SharedArrayBuffer === 'undefined') throw new Error('this runtime has no shared memory');
  const relaxedBytes = readFileSync(join(dir, LAYER_KERNEL_FILES.relaxed));
  const relaxed = allowRelaxed && runtimeAccepts(relaxedBytes, '--experimental-wasm-relaxed-simd');
  const bytes = relaxed ? relaxedBytes : readFileSync(join(dir, LAYER_KERNEL_FILES.simd));
  if (!WebAssembly.validate(bytes)) throw new Error('this runtime has no wasm SIMD or wasm threads');
  return { module: new WebAssembly.Module(bytes), relaxed };
}

/** Whether the runtime compiles `bytes`, turning on the V8 flag that gates its feature if needed. */
function runtimeAccepts(bytes: Uint8Array, v8Flag: string): boolean {
  if (WebAssembly.validate(bytes)) return true;
  setFlagsFromString(v8Flag);
  return WebAssembly.validate(bytes);
}

/**
 * One thread per core, up to 4. CHAR_COMPLETE_LAYER_THREADS overrides; CHAR_COMPLETE_LAYER_KERNEL
 * set to off runs the per-step kernels instead, set to simd keeps the build without FMA.
 */
export function layerThreadsWanted(): number {
  const fromEnv = Number(process.env.CHAR_COMPLETE_LAYER_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv >= 1) return Math.min(fromEnv, 16);
  return Math.max(1, Math.min(availableParallelism(), 4));
}

let active: LayerKernel | undefined;

/** The kernel started by startLayerKernel(), if it could start. */
export function activeLayerKernel(): LayerKernel | undefined {
  return active;
}

/** Makes `kernel` (or none: the per-step kernels) the one the network uses; for comparing the two. */
export function useLayerKernel(kernel: LayerKernel | undefined): void {
  active = kernel;
}

/** The kernel's build among `candidateDirs` and whether it may use relaxed SIMD, or why it is not to run. */
function kernelBuild(
  candidateDirs: readonly string[],
): { dir: string; allowRelaxed: boolean } | { off: string } | { missing: string } {
  const setting = (process.env.CHAR_COMPLETE_LAYER_KERNEL ?? '').toLowerCase();
  if (['0', 'off', 'false'].includes(setting)) return { off: 'CHAR_COMPLETE_LAYER_KERNEL is off' };
  const dir = dirHolding(Object.values(LAYER_KERNEL_FILES), candidateDirs);
  if (!dir) return { missing: `${LAYER_KERNEL_FILES.simd} is missing next to the bundle; run npm run build` };
  return { dir, allowRelaxed: setting !== 'simd' };
}

/**
 * Starts the kernel for this process from the build next to the bundle; returns a line saying
 * what the LSTM layers run on, and why when it is not the kernel.
 */
export async function startLayerKernel(candidateDirs: readonly string[]): Promise<string> {
  if (active) return `LSTM layers: ${active.description}`;
  const build = kernelBuild(candidateDirs);
  if ('off' in build) return `LSTM layers: per-step kernels (${build.off})`;
  try {
    if ('missing' in build) throw new Error(build.missing);
    active = await LayerKernel.start(build.dir, layerThreadsWanted(), build.allowRelaxed);
    return `LSTM layers: ${active.description}`;
  } catch (error) {
    return `LSTM layers: per-step kernels (the whole-layer kernel cannot run: ${(error as Error).message})`;
  }
}

let callingThreadKernel: Promise<LayerKernel | undefined> | undefined;

/**
 * A kernel without worker threads, started once per process, for small jobs on the calling thread
 * (the LSTM's adaptation in the server, which keeps no threads for it); undefined where the kernel
 * is off or cannot run here.
 */
export async function callingThreadLayerKernel(candidateDirs: readonly string[]): Promise<LayerKernel | undefined> {
  const build = kernelBuild(candidateDirs);
  if (!('dir' in build)) return undefined;
  callingThreadKernel ??= LayerKernel.start(build.dir, 1, build.allowRelaxed).catch(() => undefined);
  return callingThreadKernel;
}
