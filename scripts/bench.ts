// npm run bench -- [--json] [--backend B]: the figures the README quotes, for a fixed 2×256 model.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKEND_CHOICES, BackendChoice, selectBackend } from '../model/backend';
import { loadModel, saveModel } from '../model/format';
import { NetworkConfig } from '../model/architecture';
import { CharLstm, disposeState, initialParameters, parametersFromWeights, readWeights, zeroState } from '../model/network';
import { Adam } from '../model/optimizer';
import { Vocabulary } from '../model/vocab';
import { parse, runMain, UsageError } from './cli';

const USAGE = 'usage: npm run bench -- [--json] [--backend auto|tensorflow|wasm|cpu] [--steps N]';
const BATCH = 64;
const SEQ = 64;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parse(process.argv.slice(2), { json: { type: 'boolean' }, backend: { type: 'string' }, steps: { type: 'string' } }, USAGE);
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

  // Model load: read, validate and build the weights of a saved 2×256 model.
  const dir = mkdtempSync(join(tmpdir(), 'char-complete-bench-'));
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
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (values.json) {
    process.stdout.write(JSON.stringify({
      backend: backend.name, train_chars_per_s: Math.round(trainCharsPerSecond),
      step_us_batch1: Math.round(stepMicros.batch1), step_us_batch8: Math.round(stepMicros.batch8), model_load_ms: Math.round(stepMicros.loadMs * 10) / 10,
    }) + '\n');
  }
}

runMain(main, []);
