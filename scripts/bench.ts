// npm run bench -- [--json] [--backend B] [--layers N --hidden N --batch N --seq N] [--model DIR]:
// the figures the README quotes. Defaults: the 2×256 model at the trainer's batch on a CPU, seq 64.
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { activeLayerKernel, useLayerKernel } from '../backends/layer-kernel';
import {
  BACKEND_CHOICES,
  BackendChoice,
  BackendSelection,
  BackendUnavailableError,
  selectSequenceBackend,
  useReferenceCpuBackend,
} from '../backends/select';
import { loadModel, readModelConfig, saveModel, untrainedMetadata } from '../model/format';
import { NetworkConfig } from '../model/architecture';
import {
  CharLstm,
  disposeState,
  initialParameters,
  LstmState,
  parametersFromWeights,
  readWeights,
  zeroState,
} from '../model/network';
import { StepShape, timeTrainingStep, trainingProbe } from '../training/speed';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { Vocabulary } from '../model/vocab';
import { loadCorpus } from '../training/corpus';
import { defaultCorpusPaths } from '../training/default-corpus';
import { defaultModelDir } from '../model/paths';
import { TorchEngine, TorchUnavailableError } from '../training/torch-engine';
import { TorchLstmEngine } from '../training/torch-lstm-engine';
import { numberFlag, parse, runMain, UsageError } from './cli';
import { LspSession, percentile, replayTypist } from '../tools/lsp-driver';
import { LSTM_ADAPTATION } from '../model/lstm-adaptation';
import { LstmPredictor } from '../model/predictor';

const USAGE = `usage: npm run bench -- [--json] [--backend ${BACKEND_CHOICES.join('|')}] [--engine torch] [--layers N] [--hidden N] [--batch N] [--seq N] [--steps N] [--model DIR] [--keystrokes N] [--no-server] [--no-online]

--layers --hidden   model size for every figure (default 2×256)
--batch --seq       training batch (default ${TRAIN_DEFAULTS.batch} × 64)
--engine torch      also the PyTorch engine as the trainer drives it, and PyTorch's own loop, interleaved
--model DIR         model for the server latency figures (default: the trained model in the user
                    data directory if it has the same size, else an untrained model of that size)
--keystrokes N      keystrokes typed for the server latency figures (default 1000)
--no-server         skip the server latency figures
--no-online         serve without the match models and the online stage (charComplete.learnWhileTyping off)`;
const SERVER_DOCUMENT_CHARS = 50_000;
/** Typed into each document that adapts the LSTM: a few of its steps. */
const ADAPTED_CHARS = 200;
/** The typist cycles to the other suggestions (Alt+]) at one in this many of those shown. */
const INVOKED_EVERY = 4;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parse(
    process.argv.slice(2),
    {
      json: { type: 'boolean' },
      backend: { type: 'string' },
      steps: { type: 'string' },
      model: { type: 'string' },
      layers: { type: 'string' },
      hidden: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      'no-server': { type: 'boolean' },
      'no-online': { type: 'boolean' },
      engine: { type: 'string' },
      keystrokes: { type: 'string' },
    },
    USAGE,
  );
  const backendChoice = (values.backend ?? 'auto') as BackendChoice;
  if (!BACKEND_CHOICES.includes(backendChoice)) throw new UsageError(USAGE);
  if (values.engine !== undefined && values.engine !== 'torch' && values.engine !== 'wasm')
    throw new UsageError(`--engine must be torch or wasm, got "${values.engine}"\n\n${USAGE}`);
  const flag = (name: string, fallback: number, max: number) =>
    numberFlag(values[name] as string | undefined, name, 1, max, true, USAGE) ?? fallback;
  const trainSteps = flag('steps', 6, 1000);
  const batchSize = flag('batch', TRAIN_DEFAULTS.batch, 4096);
  const seq = flag('seq', 64, 1024);
  const keystrokes = flag('keystrokes', 1000, 10_000);
  const say = (line: string) => {
    if (!values.json) process.stdout.write(line + '\n');
  };

  // The tiny-shakespeare vocabulary size, so figures compare with the notes' measurements.
  const vocabulary = Vocabulary.fromText(String.fromCharCode(...Array.from({ length: 64 }, (_, i) => 32 + i)), 65);
  const config: NetworkConfig = {
    vocabSize: vocabulary.size,
    embed: 64,
    hidden: flag('hidden', 256, 4096),
    layers: flag('layers', 2, 8),
  };
  const size = `${config.layers}×${config.hidden}`;
  const backend = await selectSequenceBackend(backendChoice, trainingProbe(config, batchSize, seq));
  say(`backend: ${backend.name} (${backend.reason})`);
  const params = initialParameters(config, 1);
  const model = new CharLstm(config, params);

  // Training throughput on the trainer's own timer: the median of the timed steps after two warm-up steps.
  const trainingShape: StepShape = {
    batch: batchSize,
    seq,
    dropout: TRAIN_DEFAULTS.dropout,
    weightDrop: TRAIN_DEFAULTS.weightDrop.rate,
  };
  const speed = await timeTrainingStep(config, trainingShape, { warmup: 2, timed: trainSteps });
  const trainCharsPerSecond = speed.median;
  say(
    `train: ${Math.round(trainCharsPerSecond).toLocaleString('en-US')} chars/s (${size}, batch ${batchSize}, seq ${seq}, median of ${trainSteps} steps)`,
  );

  const torch = values.engine === 'torch' ? await torchTraining(config, trainingShape, trainSteps) : undefined;
  if (torch) {
    say(
      `train on ${torch.description}: the engine as the trainer drives it ${Math.round(torch.engine).toLocaleString('en-US')} chars/s, PyTorch's own loop ${Math.round(torch.plain).toLocaleString('en-US')} (the engine at ${(torch.engine / torch.plain).toFixed(2)}× it, and ${(torch.engine / trainCharsPerSecond).toFixed(2)}× wasm)`,
    );
  }

  const products =
    backend.name === 'wasm' && activeLayerKernel() ? matmulRates(batchSize * seq, config.hidden) : undefined;
  if (products) {
    say(
      `matmul [${batchSize * seq}×${config.hidden}]·[${config.hidden}×${4 * config.hidden}] and its two gradients: whole-layer kernel ${products.kernel.map((r) => r.toFixed(0)).join(' / ')} vs XNNPACK ${products.xnnpack.map((r) => r.toFixed(0)).join(' / ')} GFLOP/s`,
    );
  }

  // One inference step at batch 1 and 8 as the server steps: through the predictor, on whatever it runs steps on.
  const stepMicros: Record<string, number> = {};
  const predictor = new LstmPredictor({ config, vocabulary, weights: await readWeights(params) });
  for (const batch of [1, 8]) {
    let states = Array.from({ length: batch }, () => predictor.zeroState());
    const input = Int32Array.from({ length: batch }, (_, i) => 1 + i);
    const times: number[] = [];
    for (let k = 0; k < 60; k++) {
      const t0 = performance.now();
      states = (await predictor.step(states, input)).map((snapshot) => snapshot.state);
      if (k >= 10) times.push(performance.now() - t0);
    }
    stepMicros[`batch${batch}`] = median(times) * 1000;
    say(`inference step, batch ${batch}: ${Math.round(stepMicros[`batch${batch}`])} µs (${predictor.stepsRunOn()})`);
  }
  predictor.dispose();

  const agreement = backend.gpu ? await compareWithCpu(model, backend) : undefined;
  if (agreement) {
    say(
      `logits on ${backend.name} vs ${agreement.reference}, 64 steps of a random walk at batch 8: max abs difference ${agreement.logits.maxAbsDiff.toExponential(2)} (logits up to ${agreement.logits.maxAbs.toFixed(2)})`,
    );
    say(
      `gradients of one training step (batch 8, seq 16) on ${backend.name} vs ${agreement.reference}: max abs difference ${agreement.gradients.maxAbsDiff.toExponential(2)} (gradients up to ${agreement.gradients.maxAbs.toExponential(2)}; largest in ${[...model.params.keys()][agreement.gradients.worst]})`,
    );
  }

  // Model load, then per-keystroke latency through the real server.
  const dir = mkdtempSync(join(tmpdir(), 'char-complete-bench-'));
  let server: ServerFigures | undefined;
  try {
    saveModel(dir, {
      config,
      vocabulary,
      weights: await readWeights(params),
      metadata: untrainedMetadata(backend.name),
    });
    const loads: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now();
      const loaded = loadModel(dir);
      const loadedParams = parametersFromWeights(loaded.config, loaded.weights);
      loads.push(performance.now() - t0);
      tf.dispose([...loadedParams.values()]);
    }
    stepMicros.loadMs = median(loads);
    say(`model load: ${median(loads).toFixed(1)} ms`);
    if (!values['no-server']) {
      const trained = typeof values.model === 'string' ? resolve(values.model) : defaultModelDir();
      const useTrained =
        existsSync(join(trained, 'model.json')) &&
        (typeof values.model === 'string' || sameSize(readModelConfig(trained), config));
      say(
        `server: ${useTrained ? `model ${trained}` : `untrained ${size} model (pass --model DIR for a trained one)`}, backend ${backendChoice}, ${SERVER_DOCUMENT_CHARS / 1000} KB document, ${keystrokes} keystrokes, beam width 4, maxChars 32…`,
      );
      server = await serverLatency(useTrained ? trained : dir, backendChoice, keystrokes, !values['no-online']);
      say(`server backend: ${server.backendLine}`);
      say(
        `server per-keystroke latency: p50 ${server.p50.toFixed(2)} ms, p95 ${server.p95.toFixed(2)} ms, p99 ${server.p99.toFixed(2)} ms; server RSS ${Math.round(server.rssBytes / 1048576)} MB${server.adaptedRssBytes === undefined ? '' : `, ${Math.round(server.adaptedRssBytes / 1048576)} MB once ${LSTM_ADAPTATION.maxDocuments === 1 ? 'a document has' : `${LSTM_ADAPTATION.maxDocuments} documents have`} adapted the LSTM`}`,
      );
      const { invoked } = server;
      say(
        `server Alt+] (an invoked request at one in ${INVOKED_EVERY} suggestions shown, ${invoked.requests} in all): p50 ${invoked.p50.toFixed(2)} ms, p99 ${invoked.p99.toFixed(2)} ms; ${invoked.meanItems.toFixed(2)} suggestions on average, ${invoked.withAlternatives} of ${invoked.requests} with others besides the first`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (values.json) {
    process.stdout.write(
      JSON.stringify({
        backend: backend.name,
        gpu: backend.gpu,
        model: size,
        batch: batchSize,
        seq,
        train_chars_per_s: Math.round(trainCharsPerSecond),
        torch: torch
          ? {
              engine: torch.description,
              engine_chars_per_s: Math.round(torch.engine),
              plain_chars_per_s: Math.round(torch.plain),
            }
          : null,
        matmul_gflops: products
          ? { kernel: products.kernel.map(Math.round), xnnpack: products.xnnpack.map(Math.round) }
          : null,
        step_us_batch1: Math.round(stepMicros.batch1),
        step_us_batch8: Math.round(stepMicros.batch8),
        model_load_ms: Math.round(stepMicros.loadMs * 10) / 10,
        logits_max_abs_diff_vs_cpu: agreement?.logits.maxAbsDiff ?? null,
        gradients_max_abs_diff_vs_cpu: agreement?.gradients.maxAbsDiff ?? null,
        server: server
          ? {
              backend: server.backend,
              latency_ms: { p50: round2(server.p50), p95: round2(server.p95), p99: round2(server.p99) },
              invoked: {
                requests: server.invoked.requests,
                latency_ms: { p50: round2(server.invoked.p50), p99: round2(server.invoked.p99) },
                mean_items: round2(server.invoked.meanItems),
                with_alternatives: server.invoked.withAlternatives,
              },
              rss_mb: Math.round(server.rssBytes / 1048576),
              adapted_rss_mb:
                server.adaptedRssBytes === undefined ? null : Math.round(server.adaptedRssBytes / 1048576),
            }
          : null,
      }) + '\n',
    );
  }
}

function sameSize(a: NetworkConfig, b: NetworkConfig): boolean {
  return a.layers === b.layers && a.hidden === b.hidden;
}

interface Difference {
  maxAbsDiff: number;
  maxAbs: number;
  worst: number;
}

/** The largest absolute difference over arrays of values, and which array has it. */
function difference(actual: Float32Array[], expected: Float32Array[]): Difference {
  let maxAbsDiff = 0;
  let maxAbs = 0;
  let worst = 0;
  expected.forEach((values, k) =>
    values.forEach((x, i) => {
      const diff = Math.abs(actual[k][i] - x);
      if (diff > maxAbsDiff) [maxAbsDiff, worst] = [diff, k];
      maxAbs = Math.max(maxAbs, Math.abs(x));
    }),
  );
  return { maxAbsDiff, maxAbs, worst };
}

/**
 * The same weights on the GPU backend and on the CPU: logits through 64 characters of a random
 * walk (each step's state feeding the next, so drift would show), and the gradients of one
 * training step, which exercise the backward kernels.
 */
async function compareWithCpu(
  model: CharLstm,
  backend: BackendSelection,
): Promise<{ reference: string; logits: Difference; gradients: Difference }> {
  const weights = await readWeights(model.params);
  const run = async () => {
    const copy = new CharLstm(model.config, parametersFromWeights(model.config, weights));
    let state: LstmState = zeroState(model.config, 8);
    const logits: Float32Array[] = [];
    for (let t = 0; t < 64; t++) {
      const ids = Int32Array.from({ length: 8 }, (_, b) => 1 + ((t * 31 + b * 17) % (model.config.vocabSize - 1)));
      const step = copy.step(ids, state);
      logits.push((await step.logits.data()) as Float32Array);
      step.logits.dispose();
      disposeState(state);
      state = step.state;
    }
    const ids = Int32Array.from({ length: 8 * 16 }, (_, i) => 1 + ((i * 7919) % (model.config.vocabSize - 1)));
    const result = await copy.trainStep(
      ids,
      ids.map((id) => 1 + (id % (model.config.vocabSize - 1))),
      8,
      16,
      state,
      0,
      1,
    );
    const gradients = await Promise.all(
      [...copy.params.keys()].map((name) => result.gradients.get(name)!.data() as Promise<Float32Array>),
    );
    tf.dispose([...result.gradients.values()]);
    disposeState(result.state);
    disposeState(state);
    copy.dispose();
    return { logits, gradients };
  };
  const onGpu = await run();
  const reference = await useReferenceCpuBackend();
  const onCpu = await run();
  await tf.setBackend(backend.name);
  return {
    reference,
    logits: difference(onGpu.logits, onCpu.logits),
    gradients: difference(onGpu.gradients, onCpu.gradients),
  };
}

/**
 * GFLOP/s of the training step's large products (a layer's input projection, its weight gradient
 * and the gradient to its input), through the whole-layer kernel and through XNNPACK; best of 3.
 */
function matmulRates(rows: number, hidden: number): { kernel: number[]; xnnpack: number[] } {
  const kernel = activeLayerKernel()!;
  const x = tf.randomUniform([rows, hidden], -1, 1, 'float32', 1) as tf.Tensor2D;
  const w = tf.randomUniform([hidden, 4 * hidden], -1, 1, 'float32', 2) as tf.Tensor2D;
  const dZ = tf.randomUniform([rows, 4 * hidden], -1, 1, 'float32', 3) as tf.Tensor2D;
  const products: Array<() => tf.Tensor> = [
    () => tf.matMul(x, w),
    () => tf.matMul(x, dZ, true, false),
    () => tf.matMul(dZ, w, false, true),
  ];
  const gflops = (2 * rows * hidden * 4 * hidden) / 1e9;
  const rate = (product: () => tf.Tensor) => {
    let best = Infinity;
    for (let k = 0; k < 4; k++) {
      const started = performance.now();
      const result = product();
      result.dataSync();
      if (k > 0) best = Math.min(best, performance.now() - started);
      result.dispose();
    }
    return gflops / (best / 1000);
  };
  const rates = { kernel: products.map(rate), xnnpack: [] as number[] };
  useLayerKernel(undefined);
  rates.xnnpack = products.map(rate);
  useLayerKernel(kernel);
  tf.dispose([x, w, dZ]);
  return rates;
}

interface ServerFigures {
  p50: number;
  p95: number;
  p99: number;
  /** The requests Alt+] makes, asked at one in INVOKED_EVERY of the suggestions shown. */
  invoked: { requests: number; p50: number; p99: number; meanItems: number; withAlternatives: number };
  rssBytes: number;
  /** After LSTM_ADAPTATION.maxDocuments documents have each adapted a copy of the LSTM. */
  adaptedRssBytes?: number;
  backend: string;
  backendLine: string;
}

/** Opens a 50 KB document in the real server and types at its end, asking for a completion before every key. */
async function serverLatency(
  modelDir: string,
  backend: BackendChoice,
  keystrokes: number,
  learnWhileTyping: boolean,
): Promise<ServerFigures> {
  const root = join(__dirname, '..');
  const corpus = loadCorpus(defaultCorpusPaths(root))
    .documents.map((d) => d.text)
    .join('\n\n');
  // A copy of dist/ elsewhere finds no sources, and a document of blank lines would time next to nothing.
  if (corpus.trim().length === 0)
    throw new UsageError(
      `the server's latency is timed on this project's docs and sources as the document, and there are none in ${root}: run the bench from the repository's dist/ (npm run bench)`,
    );
  let text = corpus;
  while (text.length < SERVER_DOCUMENT_CHARS) text += '\n\n' + corpus;
  text = text.slice(0, SERVER_DOCUMENT_CHARS);
  const existing = text.slice(0, SERVER_DOCUMENT_CHARS - keystrokes);
  const settings = { modelPath: modelDir, beamWidth: 4, maxChars: 32, backend, learnWhileTyping };
  const session = new LspSession({ initializationOptions: settings, configuration: () => settings });
  try {
    await session.initialize();
    const uri = 'file:///bench/notes.md';
    await session.open(uri, existing);
    const result = await replayTypist(session, uri, existing, text.slice(existing.length), {
      invokedEvery: INVOKED_EVERY,
    });
    const status = session.statuses[session.statuses.length - 1];
    const rssBytes = session.rss();
    // The typist above never pauses, so the server never learnt in idle time; now as many documents as keep a copy of
    // the LSTM are typed in, each followed by a pause long enough for its steps.
    if (learnWhileTyping)
      for (let i = 0; i < LSTM_ADAPTATION.maxDocuments; i++) {
        const other = `file:///bench/adapted-${i}.md`;
        await session.open(other, '');
        await replayTypist(session, other, '', text.slice(i * ADAPTED_CHARS, (i + 1) * ADAPTED_CHARS));
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    return {
      p50: percentile(result.latenciesMs, 50),
      p95: percentile(result.latenciesMs, 95),
      p99: percentile(result.latenciesMs, 99),
      invoked: {
        requests: result.invoked.latenciesMs.length,
        p50: percentile(result.invoked.latenciesMs, 50),
        p99: percentile(result.invoked.latenciesMs, 99),
        meanItems: result.invoked.items.reduce((sum, n) => sum + n, 0) / Math.max(1, result.invoked.items.length),
        withAlternatives: result.invoked.items.filter((n) => n >= 2).length,
      },
      rssBytes,
      adaptedRssBytes: learnWhileTyping ? session.rss() : undefined,
      backend: String(status?.backend ?? 'unknown'),
      backendLine: session.logs.find((line) => line.startsWith('Backend: ')) ?? 'unknown',
    };
  } finally {
    await session.shutdown();
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * The torch engine end to end, a step per request as the trainer drives it (median step after two
 * warm-up steps), and PyTorch's own loop timed in the same process; in three rounds each, taken in
 * turn, so that a busier spell of the machine slows both alike.
 */
async function torchTraining(
  config: NetworkConfig,
  shape: StepShape,
  steps: number,
): Promise<{ description: string; engine: number; plain: number }> {
  const torch = await TorchEngine.start();
  const { batch, seq } = shape;
  const trainIds = Int32Array.from(
    { length: batch * seq * 4 + 1 },
    (_, i) => 1 + ((i * 7919) % (config.vocabSize - 1)),
  );
  const engine = await TorchLstmEngine.create(torch, {
    config,
    trainIds,
    ...shape,
    lr: 1e-3,
    seed: 1,
    averageShare: TRAIN_DEFAULTS.averageShare,
  });
  try {
    for (let k = 0; k < 2; k++) await engine.step();
    const stepTimes: number[] = [];
    const plain: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < steps; k++) {
        const started = performance.now();
        await engine.step();
        stepTimes.push(performance.now() - started);
      }
      plain.push((await torch.time(config, shape, { steps, plain: true })).median);
    }
    return { description: torch.describe(), engine: (batch * seq) / (median(stepTimes) / 1000), plain: median(plain) };
  } finally {
    await engine.dispose();
  }
}

runMain(main, [BackendUnavailableError, TorchUnavailableError]);
