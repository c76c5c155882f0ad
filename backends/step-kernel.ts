// Single LSTM steps for serving on the CPU, in the whole-layer kernel's module
// (backends/assembly/lstm-layer.ts). A served step is a few products of a handful of rows with the
// weight matrices; through tfjs each of a dozen ops per layer is a dispatch with its own copies,
// which costs more than the arithmetic. Here the weights are packed once, in a memory of the
// predictor's own, and a step is a few calls into wasm on this thread.
import { dirHolding } from './built-files';
import type { NetworkConfig } from '../model/architecture';
import {
  alignUp,
  KernelExports,
  LAYER_KERNEL_FILES,
  LAYER_KERNEL_INITIAL_PAGES,
  LAYER_KERNEL_MAX_PAGES,
  loadKernelModule,
  padColumns,
  WASM_PAGE,
} from './layer-kernel';

/** The most values a row stepProductI8 takes, and columns packI8 takes (backends/assembly/lstm-layer.ts). */
const I8_MAX_INPUTS = 4096;
const I8_MAX_COLUMNS = 32768;

/** For each way of holding the weights: how the kernel packs and multiplies by them, and the bytes a K×N matrix takes. */
const HELD: Record<
  StepWeights,
  {
    pack: 'pack' | 'packBf16' | 'packI8';
    product: 'stepProduct' | 'stepProductBf16' | 'stepProductI8';
    bytes(K: number, N: number): number;
  }
> = {
  f32: { pack: 'pack', product: 'stepProduct', bytes: (K, N) => K * N * 4 },
  bf16: { pack: 'packBf16', product: 'stepProductBf16', bytes: (K, N) => K * N * 2 },
  // The columns' scales, aligned, then a byte a weight, K rounded up to pairs.
  i8: { pack: 'packI8', product: 'stepProductI8', bytes: (K, N) => alignUp(N * 4, 64) + (K + (K % 2)) * N },
};
/** Rows stepped per call into the kernel; a larger batch goes through in chunks. */
const MAX_ROWS = 64;
/**
 * Rows of a weight matrix staged at once to be packed: a whole matrix staged would keep its size in f32 resident in
 * every kernel's memory, the copies' too, for nothing but packing.
 */
const STAGED_ROWS = 32;

interface LoadedModule {
  module: WebAssembly.Module;
  /** Where the module's own static data ends; a memory holds the network above it. */
  heapBase: number;
}

let loaded: LoadedModule | Error | undefined;

/** The kernel's module, loaded once per process from the build next to the bundle; an Error says why not. */
function kernelModule(): LoadedModule | Error {
  if (loaded) return loaded;
  const dir = dirHolding([LAYER_KERNEL_FILES.simd]);
  try {
    if (!dir) throw new Error(`${LAYER_KERNEL_FILES.simd} is missing next to the bundle; run npm run build`);
    const { module } = loadKernelModule(dir, (process.env.CHAR_COMPLETE_LAYER_KERNEL ?? '').toLowerCase() !== 'simd');
    const memory = new WebAssembly.Memory({
      initial: LAYER_KERNEL_INITIAL_PAGES,
      maximum: LAYER_KERNEL_INITIAL_PAGES,
      shared: true,
    });
    const probe = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    loaded = { module, heapBase: probe.heapBase() };
  } catch (error) {
    loaded = error as Error;
  }
  return loaded;
}

/**
 * Why single steps cannot run in the kernel for this network, or undefined when they can.
 * CHAR_COMPLETE_STEP_KERNEL=off leaves them to tfjs.
 */
export function stepKernelUnavailable(config: NetworkConfig): string | undefined {
  if (['0', 'off', 'false'].includes((process.env.CHAR_COMPLETE_STEP_KERNEL ?? '').toLowerCase()))
    return 'CHAR_COMPLETE_STEP_KERNEL is off';
  if (config.hidden % 4 !== 0) return `the hidden size ${config.hidden} is not a multiple of 4`;
  const module = kernelModule();
  return module instanceof Error ? module.message : undefined;
}

/** Byte offsets of what one network keeps in its memory. */
interface Layout {
  /** Layer 0's input-to-gate table [V, 4H]: embedding · wx + b. */
  table: number;
  wh: number[];
  /** Layers above 0: wx packed, and the bias [4H]. */
  wx: number[];
  bias: number[];
  output: number;
  outputBias: number;
  /** Where the scratch of a step (or of packing) starts. */
  scratch: number;
}

/**
 * How a step kernel holds the weights it multiplies by: as they are, rounded to bfloat16 (half the bytes), or as 8-bit
 * integers with a scale per column (a quarter).
 */
export type StepWeights = 'f32' | 'bf16' | 'i8';

/**
 * How served steps hold the weights: as 8-bit integers unless CHAR_COMPLETE_STEP_WEIGHTS is bf16 or f32. Between
 * keystrokes the n-gram and the context tables push the weights out of the cache, so a step reads them from memory,
 * and the fewer bytes the faster the step; the rounding moves what the LSTM predicts by too little to show in bits per
 * char (docs/measurements.md).
 */
export function stepWeightsWanted(config: NetworkConfig): StepWeights {
  const wanted = (process.env.CHAR_COMPLETE_STEP_WEIGHTS ?? '').toLowerCase();
  if (wanted === 'f32' || wanted === 'bf16') return wanted;
  // The 8-bit products take at most I8_MAX_INPUTS values a row and I8_MAX_COLUMNS columns; larger, bfloat16.
  return config.hidden <= I8_MAX_INPUTS && config.vocabSize <= I8_MAX_COLUMNS ? 'i8' : 'bf16';
}

/** Writes rows [first, end) of a matrix being packed into `staging`, which holds exactly those rows. */
type RowStage = (first: number, end: number, staging: Float32Array) => void;

/** A RowStage that copies the rows of `w`, a matrix of `N` columns, as they are. */
const copiedFrom =
  (w: Float32Array, N: number): RowStage =>
  (first, end, staging) =>
    staging.set(w.subarray(first * N, end * N));

export class LstmStepKernel {
  private readonly kernel: KernelExports;
  private readonly memory: WebAssembly.Memory;
  private readonly layout: Layout;
  /** The vocabulary rounded up to whole vectors; the output's extra columns are zeros. */
  private readonly paddedVocab: number;

  /** Packs `weights` (as parameterShapes names them) into a new memory, held as `held`; throws if the kernel cannot run here. */
  constructor(
    readonly config: NetworkConfig,
    weights: Map<string, Float32Array>,
    readonly held: StepWeights = 'f32',
  ) {
    const reason = stepKernelUnavailable(config);
    if (reason) throw new Error(`step kernel: ${reason}`);
    const { module, heapBase } = kernelModule() as LoadedModule;
    const { vocabSize: V, hidden: H, embed: E, layers } = config;
    const G = 4 * H;
    this.paddedVocab = alignUp(V, 4);
    const Vp = this.paddedVocab;
    let top = heapBase;
    const take = (floats: number) => {
      const at = alignUp(top, 64);
      top = at + floats * 4;
      return at;
    };
    const takeWeights = (K: number, N: number) => take(Math.ceil(HELD[held].bytes(K, N) / 4));
    const layout: Layout = { table: take(V * G), wh: [], wx: [], bias: [], output: 0, outputBias: 0, scratch: 0 };
    for (let l = 0; l < layers; l++) {
      layout.wh.push(takeWeights(H, G));
      layout.wx.push(l === 0 ? 0 : takeWeights(H, G));
      layout.bias.push(l === 0 ? 0 : take(G));
    }
    layout.output = takeWeights(H, Vp);
    layout.outputBias = take(Vp);
    layout.scratch = take(0);
    this.layout = layout;
    // Room for load()'s staging (the input table's product, or a block of a matrix's rows to pack) and for a step of
    // MAX_ROWS rows.
    const scratchFloats = Math.max(
      V * E + 2 * E * G + G,
      STAGED_ROWS * Math.max(G, Vp),
      MAX_ROWS * (G + (2 + 2 * layers) * H + Vp),
    );
    const pages = Math.max(
      LAYER_KERNEL_INITIAL_PAGES,
      Math.ceil((layout.scratch + scratchFloats * 4 + 64 * (2 * layers + 8)) / WASM_PAGE),
    );
    if (pages > LAYER_KERNEL_MAX_PAGES)
      throw new Error(
        `step kernel: the network needs ${Math.ceil((pages * WASM_PAGE) / 2 ** 20)} MiB, more than the kernel's ${(LAYER_KERNEL_MAX_PAGES * WASM_PAGE) / 2 ** 20} MiB`,
      );
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.kernel = new WebAssembly.Instance(module, { env: { memory: this.memory } })
      .exports as unknown as KernelExports;
    this.load(weights);
  }

  /** Packs new values of the same network's weights (after the LSTM has adapted). */
  load(weights: Map<string, Float32Array>): void {
    const { vocabSize: V, hidden: H, embed: E, layers } = this.config;
    const G = 4 * H;
    const at = this.layout;
    const get = (name: string) => {
      const values = weights.get(name);
      if (!values) throw new Error(`step kernel: missing weights for ${name}`);
      return values;
    };
    // The input table as one product in the kernel: embedding [V, E] · wx [E, 4H] + b.
    const embeddingAt = at.scratch;
    const panelsAt = alignUp(embeddingAt + V * E * 4, 64);
    this.floats(embeddingAt, V * E).set(get('embedding'));
    this.floats(panelsAt + E * G * 4, E * G).set(get('lstm0/wx'));
    this.kernel.pack(panelsAt + E * G * 4, E, G, 0, E, panelsAt);
    // lstm0/b is the product's init row, added to every row of the table.
    const b0At = alignUp(panelsAt + 2 * E * G * 4, 64);
    this.floats(b0At, G).set(get('lstm0/b'));
    this.kernel.stepProduct(V, E, G, embeddingAt, panelsAt, b0At, 0, at.table);
    for (let l = 0; l < layers; l++) {
      this.packRows(at.wh[l], H, G, copiedFrom(get(`lstm${l}/wh`), G));
      if (l > 0) {
        this.packRows(at.wx[l], H, G, copiedFrom(get(`lstm${l}/wx`), G));
        this.floats(at.bias[l], G).set(get(`lstm${l}/b`));
      }
    }
    const Vp = this.paddedVocab;
    // Padded straight into the kernel's staging, not into an array of its own: a load follows every adaptation step.
    const outputW = get('output/w');
    this.packRows(at.output, H, Vp, (first, end, staging) =>
      padColumns(outputW.subarray(first * V, end * V), end - first, V, staging),
    );
    const outputBias = this.floats(at.outputBias, Vp);
    outputBias.fill(0);
    outputBias.set(get('output/b'));
  }

  /**
   * One step for each state (per layer h then c, each [H]) fed the id beside it: the new states,
   * and the logits in one array, row b at b · stride.
   */
  step(
    states: Float32Array[],
    ids: ArrayLike<number>,
  ): { states: Float32Array[]; logits: Float32Array; stride: number } {
    const { hidden: H, layers } = this.config;
    const B = states.length;
    const Vp = this.paddedVocab;
    const logits = new Float32Array(B * Vp);
    const next = states.map(() => new Float32Array(2 * layers * H));
    for (let first = 0; first < B; first += MAX_ROWS) {
      const rows = Math.min(MAX_ROWS, B - first);
      const chunk = this.stepRows(states.slice(first, first + rows), ids, first, next.slice(first, first + rows));
      logits.set(chunk, first * Vp);
    }
    return { states: next, logits, stride: Vp };
  }

  private stepRows(
    states: Float32Array[],
    ids: ArrayLike<number>,
    idOffset: number,
    next: Float32Array[],
  ): Float32Array {
    const { vocabSize: V, hidden: H, layers } = this.config;
    const G = 4 * H;
    const Vp = this.paddedVocab;
    const B = states.length;
    const at = this.layout;
    const z = at.scratch;
    const hPrev = alignUp(z + B * G * 4, 64);
    const cPrev = alignUp(hPrev + B * H * 4, 64);
    const hOut = [alignUp(cPrev + B * H * 4, 64)];
    const cOut = [alignUp(hOut[0] + B * H * 4, 64)];
    for (let l = 1; l < layers; l++) {
      hOut.push(alignUp(cOut[l - 1] + B * H * 4, 64));
      cOut.push(alignUp(hOut[l] + B * H * 4, 64));
    }
    const logitsAt = alignUp(cOut[layers - 1] + B * H * 4, 64);
    const table = this.floats(at.table, V * G);
    const zView = this.floats(z, B * G);
    for (let b = 0; b < B; b++) {
      const id = ids[idOffset + b];
      if (!(id >= 0 && id < V)) throw new Error(`step kernel: id ${id} is outside the vocabulary of ${V}`);
      zView.set(table.subarray(id * G, (id + 1) * G), b * G);
    }
    const hPrevView = this.floats(hPrev, B * H);
    const cPrevView = this.floats(cPrev, B * H);
    for (let l = 0; l < layers; l++) {
      for (let b = 0; b < B; b++) {
        hPrevView.set(states[b].subarray(2 * l * H, (2 * l + 1) * H), b * H);
        cPrevView.set(states[b].subarray((2 * l + 1) * H, (2 * l + 2) * H), b * H);
      }
      if (l > 0) this.product(B, H, G, hOut[l - 1], at.wx[l], at.bias[l], 0, z);
      this.product(B, H, G, hPrev, at.wh[l], z, G, z);
      this.kernel.stepCell(B, H, z, cPrev, hOut[l], cOut[l]);
      const h = this.floats(hOut[l], B * H);
      const c = this.floats(cOut[l], B * H);
      for (let b = 0; b < B; b++) {
        next[b].set(h.subarray(b * H, (b + 1) * H), 2 * l * H);
        next[b].set(c.subarray(b * H, (b + 1) * H), (2 * l + 1) * H);
      }
    }
    this.product(B, H, Vp, hOut[layers - 1], at.output, at.outputBias, 0, logitsAt);
    return this.floats(logitsAt, B * Vp);
  }

  /** stepProduct on weights packed by packRows, as they are held. */
  private product(...args: Parameters<KernelExports['stepProduct']>): void {
    this.kernel[HELD[this.held].product](...args);
  }

  /**
   * Packs a K×N matrix into `panels`, as the weights are held, a block of rows at a time: `stage` writes rows
   * [first, end) into the staging at the start of the scratch (aligned, as take() gives).
   */
  private packRows(panels: number, K: number, N: number, stage: RowStage): void {
    const pack = this.kernel[HELD[this.held].pack];
    if (this.held === 'i8') {
      // Each column's scale first, from its largest |w| over all rows, which the packing of each block reads.
      this.floats(panels, N).fill(0);
      for (let first = 0; first < K; first += STAGED_ROWS) {
        const end = Math.min(K, first + STAGED_ROWS);
        stage(first, end, this.floats(this.layout.scratch, (end - first) * N));
        this.kernel.maxAbsColumns(this.layout.scratch, end - first, N, panels);
      }
      this.kernel.scalesOfMaxima(N, panels);
    }
    for (let first = 0; first < K; first += STAGED_ROWS) {
      const end = Math.min(K, first + STAGED_ROWS);
      stage(first, end, this.floats(this.layout.scratch, (end - first) * N));
      pack(this.layout.scratch, K, N, first, end, panels);
    }
  }

  private floats(offset: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, offset, length);
  }
}
