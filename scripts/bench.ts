// npm run bench -- [--json] [--backend B]: the figures the README quotes, for a fixed 2×256 model.
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BACKEND_CHOICES, BackendChoice, selectBackend } from '../model/backend';
import { loadModel, saveModel } from '../model/format';
import { NetworkConfig } from '../model/architecture';
import { CharLstm, disposeState, initialParameters, parametersFromWeights, readWeights, zeroState } from '../model/network';
import { Adam } from '../model/optimizer';
import { Vocabulary } from '../model/vocab';
import { defaultCorpusPaths, loadCorpus } from '../model/corpus';
import { defaultModelDir } from '../model/paths';
import { parse, runMain, UsageError } from './cli';
import { LspSession, percentile, replayTypist } from './lsp-session';

const USAGE = `usage: npm run bench -- [--json] [--backend auto|tensorflow|wasm|cpu] [--steps N] [--model DIR]

--model DIR   model for the server latency figures (default: the trained model in the user data
              directory if there is one, else an untrained 2×256 model)`;
const SERVER_DOCUMENT_CHARS = 50_000;
const SERVER_KEYSTROKES = 1000;
const BATCH = 64;
const SEQ = 64;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parse(process.argv.slice(2), { json: { type: 'boolean' }, backend: { type: 'string' }, steps: { type: 'string' }, model: { type: 'string' } }, USAGE);
  const backendChoice = (values.backend ?? 'auto') as BackendChoice;
  if (!BACKEND_CHOICES.includes(backendChoice)) throw new UsageError(USAGE);
  const trainSteps = Number(values.steps ?? 6);
  const say = (line: string) => { if (!values.json) process.stdout.write(line + '\n'); };

  const backend = await selectBackend(backendChoice);
  say(`backend: ${backend.name} (${backend.reason})`);
  // The tiny-shakespeare vocabulary size, so figures compare with the notes' measurements.
  const vocabulary = Vocabulary.fromText(String.fromCharCode(...Array.from({ length: 64 }, (_, i) => 32 + i)), 65);
  const config: NetworkConfig = { vocabSize: vocabulary.size, embed: 64, hidden: 256, layers: 2 };
  const params = initialParameters(config, 1);
  const model = new CharLstm(config, params);

  // Training throughput: median step time after two warm-up steps.
  const optimizer = new Adam(params);
  const ids = Int32Array.from({ length: BATCH * SEQ }, (_, i) => 1 + ((i * 7919) % (config.vocabSize - 1)));
  let state = zeroState(config, BATCH);
  const stepTimes: number[] = [];
  for (let k = 0; k < trainSteps + 2; k++) {
    const t0 = performance.now();
    const result = model.trainStep(ids, ids, BATCH, SEQ, state, 0.1, k);
    disposeState(state);
    state = result.state;
    optimizer.apply(result.gradients, 1e-3);
    if (k >= 2) stepTimes.push(performance.now() - t0);
  }
  disposeState(state);
  optimizer.dispose();
  const trainCharsPerSecond = (BATCH * SEQ) / (median(stepTimes) / 1000);
  say(`train: ${Math.round(trainCharsPerSecond).toLocaleString('en-US')} chars/s (2×256, batch ${BATCH}, seq ${SEQ}, median of ${trainSteps} steps)`);

  // One inference step at batch 1 and 8.
  const stepMicros: Record<string, number> = {};
  for (const batch of [1, 8]) {
    let s = zeroState(config, batch);
    const input = Int32Array.from({ length: batch }, (_, i) => 1 + i);
    const times: number[] = [];
    for (let k = 0; k < 60; k++) {
      const t0 = performance.now();
      const { logits, state: next } = model.step(input, s);
      logits.dataSync();
      logits.dispose();
      disposeState(s);
      s = next;
      if (k >= 10) times.push(performance.now() - t0);
    }
    disposeState(s);
    stepMicros[`batch${batch}`] = median(times) * 1000;
    say(`inference step, batch ${batch}: ${Math.round(stepMicros[`batch${batch}`])} µs`);
  }

  // Model load, then per-keystroke latency through the real server.
  const dir = mkdtempSync(join(tmpdir(), 'char-complete-bench-'));
  let server: ServerFigures;
  try {
    saveModel(dir, {
      config, vocabulary, weights: readWeights(params),
      metadata: { createdAt: new Date().toISOString(), hyperparameters: {}, corpus: { sources: [], chars: 0, trainChars: 0, validationChars: 0, split: '' }, validation: null, trainedChars: 0, steps: 0, seconds: 0, backend: backend.name },
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
    const trained = typeof values.model === 'string' ? resolve(values.model) : defaultModelDir();
    const useTrained = existsSync(join(trained, 'model.json'));
    say(`server: ${useTrained ? `model ${trained}` : 'untrained 2×256 model (no trained model found; pass --model DIR)'}, ${SERVER_DOCUMENT_CHARS / 1000} KB document, ${SERVER_KEYSTROKES} keystrokes, beam width 4, maxChars 32…`);
    server = await serverLatency(useTrained ? trained : dir);
    say(`server per-keystroke latency: p50 ${server.p50.toFixed(2)} ms, p95 ${server.p95.toFixed(2)} ms, p99 ${server.p99.toFixed(2)} ms; server RSS ${Math.round(server.rssBytes / 1048576)} MB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (values.json) {
    process.stdout.write(JSON.stringify({
      backend: backend.name, train_chars_per_s: Math.round(trainCharsPerSecond),
      step_us_batch1: Math.round(stepMicros.batch1), step_us_batch8: Math.round(stepMicros.batch8), model_load_ms: Math.round(stepMicros.loadMs * 10) / 10,
      server_latency_ms: { p50: round2(server.p50), p95: round2(server.p95), p99: round2(server.p99) }, server_rss_mb: Math.round(server.rssBytes / 1048576),
    }) + '\n');
  }
}

interface ServerFigures { p50: number; p95: number; p99: number; rssBytes: number }

/** Opens a 50 KB document in the real server and types at its end, asking for a completion before every key. */
async function serverLatency(modelDir: string): Promise<ServerFigures> {
  const root = join(__dirname, '..');
  const corpus = loadCorpus(defaultCorpusPaths(root)).documents.map((d) => d.text).join('\n\n');
  let text = corpus;
  while (text.length < SERVER_DOCUMENT_CHARS) text += '\n\n' + corpus;
  text = text.slice(0, SERVER_DOCUMENT_CHARS);
  const existing = text.slice(0, SERVER_DOCUMENT_CHARS - SERVER_KEYSTROKES);
  const settings = { modelPath: modelDir, beamWidth: 4, maxChars: 32 };
  const session = new LspSession({ initializationOptions: settings, configuration: () => settings });
  try {
    await session.initialize();
    const uri = 'file:///bench/notes.md';
    await session.open(uri, existing);
    const result = await replayTypist(session, uri, existing, text.slice(existing.length));
    return { p50: percentile(result.latenciesMs, 50), p95: percentile(result.latenciesMs, 95), p99: percentile(result.latenciesMs, 99), rssBytes: session.rss() };
  } finally {
    await session.shutdown();
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

runMain(main, []);
