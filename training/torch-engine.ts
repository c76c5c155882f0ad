// The PyTorch engine as a child process (training/torch_engine.py, which documents the protocol): starting it with an
// interpreter that has torch (torch-python.ts), through its launcher for several processes, the files and JSON lines
// that cross over, and a clear account of a child that dies. The trainer keeps everything else.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { NetworkConfig, parameterShapes } from '../model/architecture';
import { decodeFloats, elementCount, encodeWeights } from '../model/files';
import type { LstmScores } from './mixture-fit';
import { AdamSettings } from './optimizer';
import { stateShapes, type OptimizerState } from './optimizer-state';
import type { StepShape, StepSpeed } from './speed';
import { enginePath, findPython, TORCH_INSTALL_HINT, TorchEngineError, TorchUnavailableError } from './torch-python';

export { findPython, TORCH_INSTALL_HINT, TorchEngineError, TorchUnavailableError } from './torch-python';

export interface TorchLaunch {
  /** Training processes on this machine, one per GPU with device cuda; 1 runs without the launcher. */
  processes?: number;
  device?: 'auto' | 'cpu' | 'cuda' | 'mps';
  /** Several machines, this one node 0 (global rank 0); the others run torch_engine.py launch. */
  nodes?: { count: number; master: string };
  env?: NodeJS.ProcessEnv;
}

/** What the engine said about itself when it started. */
export interface TorchInfo {
  torch: string;
  python: string;
  device: string;
  deviceName: string;
  worldSize: number;
  blas: string;
  blasWarning: string | null;
  threads: number;
  /** The precision of the training step's products (float32 or bfloat16), and why the engine chose it. */
  precision: string;
  precisionReason: string;
  /** Set when the interpreter is not the first one looked for: which one lacked torch. */
  interpreterNote?: string;
}

/** What setup needs: the model's shape and starting point, the hyperparameters and the text. */
export interface TorchRun {
  config: NetworkConfig;
  batch: number;
  seq: number;
  dropout: number;
  weightDrop: number;
  seed: number;
  adam: AdamSettings;
  /** The share of the steps taken that the saved weights average over (training/schedule.ts's averageRate). */
  averageShare: number;
  trainIds: Int32Array;
  weights: Map<string, Float32Array>;
  optimizer?: OptimizerState;
}

export interface TrainedChunk {
  losses: number[];
  /** The engine's own time for the steps, without the pipe. */
  seconds: number;
  /** Set when the engine changed the CPU's threads for speed (torch_engine.py's ThreadGovernor), saying why. */
  note?: string;
}

interface EngineEvent {
  event: string;
  [key: string]: unknown;
}

const STDERR_KEPT = 8192;

export class TorchEngine {
  private readonly lines: EngineEvent[] = [];
  private waiting?: (event: EngineEvent | undefined) => void;
  private stderrTail = '';
  private exited?: { code: number | null; signal: NodeJS.Signals | null };
  private readonly dir: string;
  private config?: NetworkConfig;
  private files = 0;
  /**
   * Kills the engine's processes and removes its files; also the handler for a process that ends without close() (an
   * uncaught error, process.exit).
   */
  private readonly endNow = () => {
    this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  };

  private constructor(
    private readonly child: ChildProcess,
    readonly info: TorchInfo,
    dir: string,
  ) {
    this.dir = dir;
    this.attach();
  }

  /**
   * Starts the engine and waits for it to say where it runs. Throws TorchUnavailableError when no
   * interpreter has torch, TorchEngineError when it starts but fails (no CUDA device for cuda, …).
   */
  static async start(launch: TorchLaunch = {}): Promise<TorchEngine> {
    const env = launch.env ?? process.env;
    const { python, note } = findPython(env);
    const processes = launch.processes ?? 1;
    const device = launch.device ?? 'auto';
    const engine = enginePath();
    const distributed = processes > 1 || launch.nodes !== undefined;
    const args = distributed
      ? ['-u', engine, ...launchArgs(processes, launch.nodes), '--device', device]
      : ['-u', engine, 'serve', '--device', device];
    const cores = os.availableParallelism?.() ?? os.cpus().length;
    const perProcess = String(Math.max(1, Math.floor(cores / processes)));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'char-complete-torch-'));
    const child = spawn(python, args, {
      env: {
        ...env,
        PYTHONUNBUFFERED: '1',
        // The engine removes it when its input closes, which covers a trainer killed before close() could.
        CHAR_COMPLETE_TORCH_FILES: dir,
        // OpenBLAS takes the cores for the matmuls (torch_engine.py keeps torch itself on one thread). A count the
        // user set is theirs; one set here the engine may lower while other processes keep the cores busy.
        ...(env.OPENBLAS_NUM_THREADS === undefined
          ? { OPENBLAS_NUM_THREADS: perProcess, CHAR_COMPLETE_BLAS_THREADS: 'trainer' }
          : {}),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so a Ctrl-C at the terminal reaches the trainer alone, which stops
      // between steps and then ends the engine.
      detached: process.platform !== 'win32',
      windowsHide: true,
    });
    const placeholder: TorchInfo = {
      torch: '',
      python,
      device: '',
      deviceName: '',
      worldSize: processes,
      blas: '',
      blasWarning: null,
      threads: 0,
      precision: 'float32',
      precisionReason: '',
    };
    const instance = new TorchEngine(child, placeholder, dir);
    process.on('exit', instance.endNow);
    const ready = await instance.next();
    if (ready?.event === 'unavailable') {
      await instance.close();
      throw new TorchUnavailableError(
        `${String(ready.python)} cannot import torch (${String(ready.message)}). To use --engine torch, ${TORCH_INSTALL_HINT}.`,
      );
    }
    if (ready?.event !== 'ready') {
      const problem = instance.failure(ready);
      await instance.close();
      throw problem;
    }
    Object.assign(instance.info, {
      torch: String(ready.torch),
      python: String(ready.python),
      device: String(ready.device),
      deviceName: String(ready.device_name),
      worldSize: Number(ready.world_size),
      blas: String(ready.blas),
      blasWarning: (ready.blas_warning as string | null) ?? null,
      threads: Number(ready.threads),
      precision: String(ready.precision ?? 'float32'),
      precisionReason: String(ready.precision_reason ?? ''),
      interpreterNote: note,
    });
    return instance;
  }

  /** One line for the trainer's first lines: torch's version, where it runs and on what. */
  describe(): string {
    const { info } = this;
    const where = info.worldSize > 1 ? `${info.worldSize} processes on ${info.deviceName}` : info.deviceName;
    const blas =
      info.device === 'cpu' ? `, ${info.blas} BLAS, ${info.threads} torch thread${info.threads === 1 ? '' : 's'}` : '';
    const products = info.precision === 'float32' ? '' : `, ${info.precision} products (${info.precisionReason})`;
    return `torch ${info.torch} on ${where}${blas}${products}, ${info.python}`;
  }

  /**
   * Training chars per second of a new model of this shape (all processes together) over the
   * fastest and the median of `steps` steps after a warm-up; with plain, of PyTorch's own loop
   * (nn.LSTM, torch.optim.Adam), the peer the engine is measured against.
   */
  async time(
    config: NetworkConfig,
    shape: StepShape,
    options: { steps?: number; plain?: boolean } = {},
  ): Promise<StepSpeed> {
    const answer = await this.request({ cmd: 'time', config, ...shape, ...options }, 'timed');
    return { fastest: Number(answer.fastest), median: Number(answer.median) };
  }

  /** Hands the engine the model, its Adam state and the text; returns the batches per epoch. */
  async setup(run: TorchRun): Promise<number> {
    this.config = run.config;
    const ids = this.file('ids');
    fs.writeFileSync(ids, int32Bytes(run.trainIds));
    const weights = this.file('weights');
    fs.writeFileSync(weights, encodeWeights(parameterShapes(run.config), run.weights));
    let optimizer: { path: string; step: number; trained: boolean } | null = null;
    if (run.optimizer) {
      const { step, m, v, trained } = run.optimizer;
      optimizer = { path: this.file('adam'), step, trained: trained !== undefined };
      const shapes = parameterShapes(run.config);
      fs.writeFileSync(
        optimizer.path,
        Buffer.concat([m, v, ...(trained ? [trained] : [])].map((values) => encodeWeights(shapes, values))),
      );
    }
    const answer = await this.request(
      {
        cmd: 'setup',
        config: run.config,
        batch: run.batch,
        seq: run.seq,
        dropout: run.dropout,
        weightDrop: run.weightDrop,
        seed: run.seed,
        adam: run.adam,
        averageShare: run.averageShare,
        ids,
        length: run.trainIds.length,
        weights,
        optimizer,
      },
      'setup',
    );
    fs.rmSync(ids, { force: true });
    fs.rmSync(weights, { force: true });
    if (optimizer) fs.rmSync(optimizer.path, { force: true });
    return Number(answer.batches_per_epoch);
  }

  /** A step per learning rate from global step `first`, which picks the batch as StreamBatcher does. */
  async train(first: number, lrs: number[]): Promise<TrainedChunk> {
    const answer = await this.request({ cmd: 'train', first, lrs }, 'trained');
    const note = typeof answer.note === 'string' ? answer.note : undefined;
    return { losses: answer.losses as number[], seconds: Number(answer.seconds), note };
  }

  /** The LSTM's scores on held-out ids, as scoreLstm computes them, for the mixture's gate. */
  async score(ids: Int32Array, batch: number, seq: number): Promise<LstmScores> {
    const input = this.file('ids');
    const out = this.file('scores');
    fs.writeFileSync(input, int32Bytes(ids));
    const answer = await this.request(
      { cmd: 'score', ids: input, length: ids.length, batch, seq, path: out },
      'scored',
    );
    fs.rmSync(input, { force: true });
    const covered = Number(answer.covered);
    const values = this.readFloats(out, [
      ['target', [covered + 1]],
      ['max', [covered + 1]],
    ]);
    return { covered, target: values.get('target')!, max: values.get('max')! };
  }

  /** The averaged weights, and Adam's state as it stands with the weights it steps, in the model files' layout. */
  async checkpoint(): Promise<{ weights: Map<string, Float32Array>; optimizer: OptimizerState }> {
    const out = this.file('checkpoint');
    const answer = await this.request({ cmd: 'checkpoint', path: out }, 'checkpoint');
    const config = this.setupConfig();
    const shapes = parameterShapes(config);
    const values = this.readFloats(out, [...shapes, ...stateShapes(config, true)]);
    const part = (prefix: string) => new Map(shapes.map(([name]) => [name, values.get(prefix + name)!]));
    const optimizer = { step: Number(answer.step), m: part('m/'), v: part('v/'), trained: part('w/') };
    return { weights: part(''), optimizer };
  }

  /** Replaces the weights, both the average and those Adam steps (Adam's moments stay). */
  async load(weights: Map<string, Float32Array>): Promise<void> {
    const file = this.file('weights');
    fs.writeFileSync(file, encodeWeights(parameterShapes(this.setupConfig()), weights));
    await this.request({ cmd: 'load', path: file }, 'loaded');
    fs.rmSync(file, { force: true });
  }

  /** Log-probabilities [batch, steps, vocab] for [batch, steps] ids (row-major), each row from a zero state. */
  async logProbs(ids: Int32Array, batch: number, steps: number): Promise<Float32Array> {
    const input = this.file('ids');
    const out = this.file('logprobs');
    fs.writeFileSync(input, int32Bytes(ids));
    await this.request({ cmd: 'logprobs', ids: input, batch, steps, path: out }, 'logprobs');
    fs.rmSync(input, { force: true });
    const count = batch * steps * this.setupConfig().vocabSize;
    return this.readFloats(out, [['logprobs', [count]]]).get('logprobs')!;
  }

  /** Ends the engine (asking first, then killing it) and removes its files. */
  async close(): Promise<void> {
    if (!this.exited) {
      this.send({ cmd: 'exit' });
      this.child.stdin?.end();
      const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      const timer = setTimeout(() => this.kill(), 5000);
      if (!this.exited) await exited;
      clearTimeout(timer);
    }
    // A launcher killed from outside leaves its ranks behind in its process group.
    this.endNow();
    // Only now: a process that exits while close() waits (a trainer that does not await it) still ends the engine and
    // removes its files.
    process.off('exit', this.endNow);
  }

  /** The engine's process (its launcher's, with several processes). */
  get pid(): number {
    return this.child.pid!;
  }

  private setupConfig(): NetworkConfig {
    if (!this.config) throw new Error('torch engine: setup must come first');
    return this.config;
  }

  private file(kind: string): string {
    return path.join(this.dir, `${kind}-${++this.files}.bin`);
  }

  private readFloats(file: string, shapes: Array<[string, number[]]>): Map<string, Float32Array> {
    const bytes = fs.readFileSync(file);
    fs.rmSync(file, { force: true });
    const expected = shapes.reduce((sum, [, shape]) => sum + elementCount(shape), 0) * 4;
    if (bytes.length !== expected)
      throw new TorchEngineError(`the torch engine wrote ${bytes.length} bytes where ${expected} were expected`);
    return decodeFloats(
      bytes,
      shapes,
      (problem) => new TorchEngineError(`training diverged: ${problem}; try a lower --lr`),
    );
  }

  private kill(): void {
    try {
      // The whole group: the launcher's processes too.
      if (process.platform === 'win32') this.child.kill('SIGKILL');
      else process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  private send(command: Record<string, unknown>): void {
    if (!this.exited && this.child.stdin?.writable) this.child.stdin.write(JSON.stringify(command) + '\n');
  }

  private async request(command: Record<string, unknown>, expected: string): Promise<EngineEvent> {
    if (this.exited) throw this.failure(undefined);
    this.send(command);
    const answer = await this.next();
    if (answer?.event !== expected) throw this.failure(answer);
    return answer;
  }

  /** The next event line, or undefined once the engine has exited. */
  private next(): Promise<EngineEvent | undefined> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (this.exited) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  /** Event lines to whoever waits for them; everything else into the tail kept for a failure's account. */
  private attach(): void {
    const deliver = (event: EngineEvent | undefined) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting) waiting(event);
      else if (event) this.lines.push(event);
    };
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let event: EngineEvent | undefined;
      try {
        event = JSON.parse(line);
      } catch {
        // Not ours (a library printing to stdout): kept with stderr for the account of a failure.
      }
      if (event && typeof event.event === 'string') deliver(event);
      else this.keepStderr(line + '\n');
    });
    this.child.stderr!.on('data', (chunk: Buffer) => this.keepStderr(chunk.toString('utf8')));
    this.child.stdin!.on('error', () => {
      // A write to an engine that has just died; its exit says what happened.
    });
    this.child.on('error', (error) => {
      this.keepStderr(`${error.message}\n`);
      this.exited ??= { code: null, signal: null };
      deliver(undefined);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = { code, signal };
      // stdout may still hold the last lines; they are read before the end is delivered.
      this.child.stdout!.once('close', () => deliver(undefined));
      if (this.child.stdout!.closed) deliver(undefined);
    });
  }

  private keepStderr(text: string): void {
    this.stderrTail = (this.stderrTail + text).slice(-STDERR_KEPT);
  }

  /** What went wrong, from an error line or the way the process ended. */
  private failure(event: EngineEvent | undefined): TorchEngineError {
    if (event?.event === 'error') {
      const hint = event.out_of_memory ? ' (out of memory: try a smaller --batch or --hidden)' : '';
      return new TorchEngineError(`the torch engine failed: ${String(event.message)}${hint}`);
    }
    if (event) return new TorchEngineError(`the torch engine answered "${event.event}" out of turn`);
    const tail = this.stderrTail.trim().split('\n').slice(-6).join('\n  ');
    const how = this.exited?.signal
      ? `was killed by ${this.exited.signal}${this.exited.signal === 'SIGKILL' ? ' (the kernel does that when memory runs out; dmesg says whether it did)' : ''}`
      : this.exited
        ? `exited with code ${this.exited.code}`
        : 'stopped answering';
    const memory = /out of memory/i.test(this.stderrTail)
      ? ' It ran out of memory: try a smaller --batch or --hidden.'
      : '';
    return new TorchEngineError(`the torch engine ${how}.${memory}${tail ? `\n  ${tail}` : ''}`);
  }
}

/** The engine's launcher: this machine's ranks, with rank 0 (the one the trainer talks to) on node 0. */
function launchArgs(processes: number, nodes: TorchLaunch['nodes']): string[] {
  const args = ['launch', '--nproc', String(processes)];
  if (nodes) args.push('--nnodes', String(nodes.count), '--node-rank', '0', '--master', nodes.master);
  return args;
}

function int32Bytes(ids: Int32Array): Buffer {
  const bytes = Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength);
  return os.endianness() === 'BE' ? Buffer.from(bytes).swap32() : bytes;
}
