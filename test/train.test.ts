// The trainer end to end: it learns, saves atomically, resumes, and rejects bad input with clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { selectBackend } from '../backends/select';
import { loadModel, saveModel } from '../model/format';
import { CharLstm, initialParameters, parametersFromWeights, readWeights, zeroState } from '../model/network';
import { train, TrainOptions } from '../training/train';
import { lstmNats, scoreLstm } from '../training/mixture-fit';
import { Vocabulary } from '../model/vocab';
import { NetworkConfig } from '../model/architecture';

const TRAINER = join(__dirname, '..', 'train.js');
const REPETITIVE = 'the quick brown fox jumps over the lazy dog.\n'.repeat(300);

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'char-complete-train-'));
}

function smallOptions(paths: string[], out: string): TrainOptions {
  return {
    paths, out, packageRoot: join(__dirname, '..', '..'), epochs: 4,
    layers: 1, hidden: 32, embed: 8, seq: 16, batch: 8, lr: 1e-2, dropout: 0, seed: 3, backend: 'wasm', resume: false,
  };
}

test('a short training run measurably lowers the loss on a repetitive text', async () => {
  await selectBackend('wasm');
  const dir = tempDir();
  const notes = join(dir, 'notes.txt');
  writeFileSync(notes, REPETITIVE);
  const out = join(dir, 'model');
  const result = await train(smallOptions([notes], out), { info: () => {}, progress: () => {} });

  const saved = loadModel(out);
  const untrained = new CharLstm(saved.config, initialParameters(saved.config, 3));
  const ids = saved.vocabulary.encode(REPETITIVE.slice(-2000));
  const before = lstmNats(await scoreLstm(untrained, ids, 4, 16));
  assert.ok(result.lstmValidationNats !== null);
  assert.ok(result.lstmValidationNats! < 0.5 * before, `LSTM validation loss ${result.lstmValidationNats} vs ${before} untrained`);
  assert.ok(Math.abs(saved.metadata.validation!.nats - result.validationNats!) < 1e-9, 'saved metadata records the final figure');
  assert.equal(result.stoppedBy, 'budget');
  assert.ok(result.sample.length > 0);
});

test('save and load give identical predictions', async () => {
  await selectBackend('wasm');
  const vocabulary = Vocabulary.fromText('hello, 世界 🎉 notes', 64);
  const config: NetworkConfig = { vocabSize: vocabulary.size, embed: 6, hidden: 12, layers: 2 };
  const original = new CharLstm(config, initialParameters(config, 11));
  const dir = tempDir();
  saveModel(dir, {
    config, vocabulary, weights: await readWeights(original.params),
    metadata: { createdAt: new Date().toISOString(), hyperparameters: {}, corpus: { sources: [], chars: 0, trainChars: 0, validationChars: 0, split: '' }, validation: null, trainedChars: 0, steps: 0, seconds: 0, backend: 'wasm' },
  });
  const loaded = loadModel(dir);
  assert.deepEqual(loaded.vocabulary.chars, vocabulary.chars);
  const restored = new CharLstm(loaded.config, parametersFromWeights(loaded.config, loaded.weights));
  const input = vocabulary.encode('hello 世界');
  let a = zeroState(config, 1);
  let b = zeroState(config, 1);
  for (const id of input) {
    const x = original.step(Int32Array.of(id), a);
    const y = restored.step(Int32Array.of(id), b);
    assert.deepEqual(Array.from(y.logits.dataSync()), Array.from(x.logits.dataSync()));
    tf.dispose([x.logits, y.logits]);
    a = x.state;
    b = y.state;
  }
});

function runTrainer(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, [TRAINER, ...args], { encoding: 'utf8', timeout: 120_000, env });
}

test('the trainer exits with code 2 and a clear message when no file is usable', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'picture.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1, 2, 3]));
  const run = runTrainer([dir, '--out', join(dir, 'model')]);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /no usable text/);
  assert.match(run.stdout + run.stderr, /skipped 1 file: 1 binary \(picture\.png\)/);
});

test('the trainer rejects bad flags with a usage message', () => {
  for (const args of [['--bogus'], ['--hidden', 'many'], ['--lr', '-1'], ['--minutes', '1', '--epochs', '1'], ['--backend', 'tpu']]) {
    const run = runTrainer(args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /usage: npm run train/, args.join(' '));
  }
});

test('--backend webgpu without a usable GPU fails with the reason, and auto falls back to the CPU', () => {
  const dir = tempDir();
  const notes = join(dir, 'notes.txt');
  writeFileSync(notes, REPETITIVE);
  const small = ['--layers', '1', '--hidden', '8', '--embed', '4', '--seq', '8', '--batch', '4', '--epochs', '1'];
  const forced = runTrainer([notes, '--out', join(dir, 'forced'), '--backend', 'webgpu', ...small]);
  if (forced.status === 0) {
    // A machine with a real GPU: then it must have been used.
    assert.match(forced.stdout, /Backend: webgpu \(WebGPU on /);
    return;
  }
  assert.equal(forced.status, 2, forced.stderr);
  assert.match(forced.stderr, /backend: webgpu is not usable \(webgpu: (no Vulkan loader|no GPU adapter|only a software adapter)/);
  assert.doesNotMatch(forced.stderr, /\n\s+at /, 'a reason, not a stack trace');
  const auto = runTrainer([notes, '--out', join(dir, 'auto'), ...small]);
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /Backend: wasm \(/);
  assert.equal(loadModel(join(dir, 'auto')).metadata.backend, 'wasm');
});

test('an unwritable output directory fails before training starts', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  writeFileSync(join(dir, 'a-file'), 'not a directory');
  const run = runTrainer([join(dir, 'notes.md'), '--out', join(dir, 'a-file', 'model')]);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /cannot write the model to .*a-file.*--out/);
  assert.doesNotMatch(run.stdout, /Backend:/, 'no training work was started');
});

test('--resume from a corrupt model fails clearly and overwrites nothing', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  mkdirSync(out);
  writeFileSync(join(out, 'model.json'), '{"format": "char-lstm", "formatVersion": 1, trunc');
  const run = runTrainer([join(dir, 'notes.md'), '--out', out, '--resume']);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /cannot resume/);
  assert.equal(readFileSync(join(out, 'model.json'), 'utf8'), '{"format": "char-lstm", "formatVersion": 1, trunc');
});

test('--json ends with one JSON object, and --resume continues from it', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  const flags = ['--out', out, '--epochs', '1', '--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '16', '--batch', '4', '--json'];
  const first = runTrainer([join(dir, 'notes.md'), ...flags]);
  assert.equal(first.status, 0, first.stderr);
  const lines = first.stdout.trim().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]);
  assert.equal(summary.model, out);
  assert.equal(typeof summary.val_bpc, 'number');
  assert.ok(Math.abs(summary.val_bpc - summary.val_nats / Math.LN2) < 1e-9);
  // The model as served is the mixture: it is scored against its parts.
  assert.equal(typeof summary.lstm_val_nats, 'number');
  assert.equal(typeof summary.ngram_val_nats, 'number');
  assert.ok(summary.val_nats <= Math.min(summary.lstm_val_nats, summary.ngram_val_nats) + 0.05, `mixture ${summary.val_nats} vs parts ${summary.lstm_val_nats}, ${summary.ngram_val_nats}`);
  assert.match(first.stderr, /Saved an n-gram model for completions while the LSTM trains/);
  assert.ok(readdirSync(out).includes('ngram.bin'));
  assert.ok(summary.chars_per_s > 0);
  assert.equal(summary.backend, 'wasm');
  const trainedBefore = loadModel(out).metadata.trainedChars;

  const second = runTrainer([join(dir, 'notes.md'), ...flags, '--resume']);
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, /Resuming/);
  assert.ok(loadModel(out).metadata.trainedChars > trainedBefore, 'resumed training adds to the trained chars');
});

test('multi-threaded wasm starts, computes the same model as one thread, and the process exits', () => {
  // The unit tests run single-threaded (live XNNPACK workers keep a process alive), so the
  // threaded path is checked here through the trainer, which exits explicitly.
  const dir = tempDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const flags = [join(dir, 'notes.md'), '--epochs', '1', '--layers', '1', '--hidden', '32', '--embed', '8', '--seq', '16', '--batch', '8', '--dropout', '0', '--json'];
  const threaded = runTrainer([...flags, '--out', join(dir, 'threaded')], { ...process.env, CHAR_COMPLETE_WASM_THREADS: '2' });
  const single = runTrainer([...flags, '--out', join(dir, 'single')], { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' });
  assert.equal(threaded.status, 0, threaded.stderr);
  assert.equal(single.status, 0, single.stderr);
  assert.match(threaded.stderr, /XNNPACK, 2 threads/);
  assert.match(single.stderr, /single-threaded/);
  const a = JSON.parse(threaded.stdout.trim().split('\n').pop()!);
  const b = JSON.parse(single.stdout.trim().split('\n').pop()!);
  assert.ok(Math.abs(a.val_nats - b.val_nats) < 1e-3 * b.val_nats, `threaded ${a.val_nats} vs single ${b.val_nats}`);
});
