// The trainer end to end: it learns, saves atomically, resumes, and rejects bad input with clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { existsSync, writeFileSync, readFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { selectBackend } from '../backends/select';
import { loadModel, saveModel, untrainedMetadata } from '../model/format';
import { CharLstm, initialParameters, parametersFromWeights, readWeights, zeroState } from '../model/network';
import { train, TrainOptions } from '../training/train';
import { lstmNats, scoreLstm } from '../training/mixture-fit';
import { Vocabulary } from '../model/vocab';
import { Adam } from '../training/optimizer';
import { loadOptimizerState, saveOptimizerState } from '../training/optimizer-state';
import { NetworkConfig } from '../model/architecture';
import { learningRateAt, settlingRateAt } from '../training/schedule';
import { seededRandom } from '../model/random';
import { tempDir } from './support/temp-dirs';
import { randomModel } from './support/random-model';
import { acquireRelearnLock, acquireTrainingLock, LockHeldError } from '../training/lock';
import { splitCorpus } from '../training/split';
import { loadCorpus } from '../training/corpus';
import { smallNotesBatch, trainingBatch } from '../training/dataset';
import { defaultLearningRate, TRAIN_DEFAULTS } from '../training/defaults';
import { loadNgram } from '../model/ngram-format';
import { readNotesText } from '../model/notes-text';
import { forgetLearnedNotes, LearnedNotes, learnedChars, noteKey } from '../model/learned';

const trainDir = () => tempDir('char-complete-train');

const TRAINER = join(__dirname, '..', 'train.js');
const REPETITIVE = 'the quick brown fox jumps over the lazy dog.\n'.repeat(300);

function smallOptions(paths: string[], out: string): TrainOptions {
  return {
    paths,
    out,
    packageRoot: join(__dirname, '..', '..'),
    epochs: 4,
    layers: 1,
    hidden: 32,
    embed: 8,
    seq: 16,
    batch: 8,
    lr: 1e-2,
    decay: 0.25,
    average: 0.3,
    dropout: 0,
    weightDrop: 0,
    seed: 3,
    backend: 'wasm',
    resume: false,
  };
}

/** Letters drawn at random: the LSTM can only overfit its training text, so later checkpoints validate worse. */
function randomLetters(seed: number): { dir: string; notes: string } {
  const dir = trainDir();
  const notes = join(dir, 'notes.txt');
  const random = seededRandom(seed);
  writeFileSync(notes, Array.from({ length: 12_000 }, () => 'abcdefghijklmnop'[Math.floor(random() * 16)]).join(''));
  return { dir, notes };
}

test("the validation figure shown while training is the best checkpoint's, so it never rises", async () => {
  await selectBackend('wasm');
  const { dir, notes } = randomLetters(7);
  const shown: number[] = [];
  const options = { ...smallOptions([notes], join(dir, 'model')), epochs: 12, hidden: 64, lr: 3e-2 };
  await train(options, {
    info: () => {},
    progress: (p) => {
      if (p.validationBpc !== null) shown.push(p.validationBpc);
    },
  });
  assert.ok(shown.length > 0, 'a figure was shown');
  for (let i = 1; i < shown.length; i++)
    assert.ok(shown[i] <= shown[i - 1] + 1e-12, `the figure rose from ${shown[i - 1]} to ${shown[i]}`);
});

interface RunShape {
  epochs: number;
  decay?: number;
  hidden?: number;
}

/**
 * Trains on `notes`, randomLetters(11)'s, with early stopping: validation is best early on and then only worsens, so
 * patience runs out. Returns the run's result, its lines and the steps its budget allowed.
 */
async function runOutOfPatience(dir: string, notes: string, { epochs, decay = 0.25, hidden = 64 }: RunShape) {
  const lines: string[] = [];
  const options = {
    ...smallOptions([notes], join(dir, `model-${epochs}-${decay}-${hidden}`)),
    epochs,
    hidden,
    lr: 3e-2,
  };
  const result = await train(
    { ...options, decay, earlyStop: true },
    { info: (line) => lines.push(line), progress: () => {} },
  );
  return {
    result,
    lines,
    budgetSteps: Number(/\((\d+) steps\)/.exec(lines.find((l) => l.startsWith('Budget:'))!)![1]),
  };
}

test('a run stopped early goes back to its best checkpoint and settles it as the rate falls, past its second epoch', async () => {
  await selectBackend('wasm');
  const { dir, notes } = randomLetters(11);
  const settled = await runOutOfPatience(dir, notes, { epochs: 40 });
  assert.equal(settled.result.stoppedBy, 'early stopping');
  const line = settled.lines.find((l) => l.startsWith('Validation stopped improving'));
  assert.ok(line, settled.lines.join('\n'));
  const [, stoppedAt, bestAt, settleSteps] =
    /at step (\d+): settling the best checkpoint \(step (\d+)\) over (\d+) steps/.exec(line)!.map(Number);
  assert.ok(stoppedAt < 0.75 * settled.budgetSteps, 'stopped before the budget would have decayed the rate');
  assert.ok(stoppedAt >= (2 * settled.budgetSteps) / 40, `stopped at step ${stoppedAt}, before two epochs`);
  assert.ok(bestAt < stoppedAt);
  assert.equal(settleSteps, Math.ceil(0.25 * bestAt), 'a quarter of the steps that reached the best checkpoint');
  assert.equal(settled.result.steps, stoppedAt + settleSteps, 'the settling steps were taken');

  // Without a decay there is nothing to settle: the run ends where patience ran out.
  const plain = await runOutOfPatience(dir, notes, { epochs: 40, decay: 0 });
  assert.equal(plain.result.stoppedBy, 'early stopping');
  assert.ok(!plain.lines.some((l) => l.startsWith('Validation stopped improving')));
  assert.ok(plain.result.steps < plain.budgetSteps);
});

test('a run stops early only once it has read its training text twice: a plateau before that is not overfitting', async () => {
  await selectBackend('wasm');
  const { dir, notes } = randomLetters(11);
  const short = await runOutOfPatience(dir, notes, { epochs: 2 });
  assert.equal(short.result.stoppedBy, 'budget', 'two epochs run to their end');
  // A wider LSTM on the same text runs out of patience within its first two epochs of three.
  const wide = await runOutOfPatience(dir, notes, { epochs: 3, hidden: 128 });
  const stoppedAt = Number(/stopped improving at step (\d+)/.exec(wide.lines.join('\n'))?.[1] ?? wide.result.steps);
  assert.ok(stoppedAt >= (2 * wide.budgetSteps) / 3, `stopped at step ${stoppedAt}, before two epochs`);
});

test('settling falls from the rate it starts at to the floor along a half cosine', () => {
  assert.equal(settlingRateAt(0.002, 0.0001, 0), 0.002);
  assert.ok(Math.abs(settlingRateAt(0.002, 0.0001, 0.5) - 0.00105) < 1e-12);
  assert.ok(Math.abs(settlingRateAt(0.002, 0.0001, 1) - 0.0001) < 1e-12);
});

test('a run trains the streams asked for, else the default of its device, and never more than the notes fill', () => {
  const { batch, gpuBatch } = TRAIN_DEFAULTS;
  assert.ok(gpuBatch > batch, 'a GPU takes more streams than a CPU');
  assert.equal(trainingBatch(undefined, false, 1, 100_000), batch);
  const { gpuMinStepsPerEpoch } = TRAIN_DEFAULTS;
  const epochOfGpuSteps = gpuBatch * gpuMinStepsPerEpoch;
  assert.equal(trainingBatch(undefined, true, 1, epochOfGpuSteps), gpuBatch);
  // Each process of several takes the default share of its own.
  assert.equal(trainingBatch(undefined, true, 4, 4 * epochOfGpuSteps), 4 * gpuBatch);
  // Notes too small for an epoch of enough steps at a GPU's batch halve it, down to a CPU's, shares included.
  assert.equal(trainingBatch(undefined, true, 1, epochOfGpuSteps - 1), gpuBatch / 2);
  assert.equal(trainingBatch(undefined, true, 1, (gpuBatch / 4) * gpuMinStepsPerEpoch), gpuBatch / 4);
  assert.equal(trainingBatch(undefined, true, 1, 1_000), batch);
  assert.equal(trainingBatch(undefined, true, 4, 2 * epochOfGpuSteps), 2 * gpuBatch);
  assert.equal(trainingBatch(undefined, true, 4, 1_001), 4 * batch);
  assert.equal(trainingBatch(undefined, false, 1, 100), batch, 'a CPU keeps its batch for small notes');
  // The halving is said, with the steps an epoch takes each way; the default kept says nothing.
  const shakespeareWindows = 15_685;
  const halved = trainingBatch(undefined, true, 1, shakespeareWindows);
  assert.equal(halved, 64);
  assert.match(
    smallNotesBatch(halved, 1, shakespeareWindows) ?? '',
    /^Batch: 64 streams rather than a GPU's 256, so that an epoch of these notes takes 245 steps rather than 61/,
  );
  assert.equal(smallNotesBatch(trainingBatch(undefined, true, 1, epochOfGpuSteps), 1, epochOfGpuSteps), undefined);
  // Notes that cannot fill the batch shrink it, to a multiple of the processes, each of which must get an equal share.
  assert.equal(trainingBatch(undefined, true, 3, 50), 48);
  assert.equal(trainingBatch(undefined, false, 1, 20), 20);
  // --batch wins on any device, shrunk only where the notes cannot fill it.
  assert.equal(trainingBatch(48, true, 1, 100_000), 48);
  assert.equal(trainingBatch(48, false, 1, 20), 20);
});

test('a run not given a rate trains at the default for its width and batch, and records it', async () => {
  const { lr, wide, batch, gpuBatch } = TRAIN_DEFAULTS;
  assert.ok(wide.lr < lr, 'a wide LSTM learns at a lower rate');
  assert.equal(defaultLearningRate(wide.hidden / 2, batch), lr);
  assert.equal(defaultLearningRate(wide.hidden, batch), wide.lr);
  assert.equal(defaultLearningRate(2 * wide.hidden, batch / 4), wide.lr);
  assert.equal(defaultLearningRate(wide.hidden, gpuBatch), lr, "a GPU's batch keeps the rate");
  await selectBackend('wasm');
  const dir = trainDir();
  const notes = join(dir, 'notes.txt');
  writeFileSync(notes, REPETITIVE);
  const trainedAt = async (hidden: number, given?: number) => {
    const out = join(dir, `model-${hidden}-${given}`);
    const lines: string[] = [];
    const options = { ...smallOptions([notes], out), epochs: undefined, chars: 256, hidden, lr: given };
    await train(options, { info: (line) => lines.push(line), progress: () => {} });
    const said = lines.find((line) => line.startsWith('Model: '));
    return { recorded: loadModel(out).metadata.hyperparameters.lr, said };
  };
  const wideRun = await trainedAt(wide.hidden);
  assert.equal(wideRun.recorded, wide.lr);
  assert.match(wideRun.said ?? '', /; dropout 0, recurrent weights dropped 0$/, 'the run says its regularisers');
  assert.match(wideRun.said ?? '', new RegExp(`, lr ${wide.lr}\\b`), 'the run says the rate it trains at');
  assert.equal((await trainedAt(32)).recorded, lr);
  assert.equal((await trainedAt(wide.hidden, 0.01)).recorded, 0.01, 'a rate given wins');
});

test('without --weight-drop, a budget that reads the notes many times drops recurrent weights and says why; a short one does not', async () => {
  await selectBackend('wasm');
  const dir = trainDir();
  const notes = join(dir, 'notes.txt');
  writeFileSync(notes, REPETITIVE);
  const { minEpochs, rate } = TRAIN_DEFAULTS.weightDrop;
  const trainedFor = async (epochs: number) => {
    const out = join(dir, `model-${epochs}`);
    const lines: string[] = [];
    const options = { ...smallOptions([notes], out), epochs, weightDrop: undefined };
    await train(options, { info: (line) => lines.push(line), progress: () => {} });
    return { recorded: loadModel(out).metadata.hyperparameters.weightDrop, said: lines.join('\n') };
  };
  const long = await trainedFor(minEpochs + 1);
  assert.equal(long.recorded, rate);
  const readsLong = new RegExp(
    `^Weight drop: ${rate} of the recurrent weights each step, as the budget reads the training text [\\d.]+ times`,
    'm',
  );
  assert.match(long.said, readsLong);
  const short = await trainedFor(1);
  assert.equal(short.recorded, 0);
  assert.match(short.said, /^Weight drop: none, as the budget reads the training text [\d.]+ times/m);
});

test('a short training run measurably lowers the loss on a repetitive text', async () => {
  await selectBackend('wasm');
  const dir = trainDir();
  const notes = join(dir, 'notes.txt');
  writeFileSync(notes, REPETITIVE);
  const out = join(dir, 'model');
  const result = await train(
    { ...smallOptions([notes], out), weightDrop: 0.1 },
    { info: () => {}, progress: () => {} },
  );

  const saved = loadModel(out);
  const untrained = new CharLstm(saved.config, initialParameters(saved.config, 3));
  const ids = saved.vocabulary.encode(REPETITIVE.slice(-2000));
  const before = lstmNats(await scoreLstm(untrained, ids, 4, 16));
  assert.ok(result.lstmValidationNats !== null);
  assert.ok(
    result.lstmValidationNats! < 0.5 * before,
    `LSTM validation loss ${result.lstmValidationNats} vs ${before} untrained`,
  );
  assert.ok(
    Math.abs(saved.metadata.validation!.nats - result.validationNats!) < 1e-9,
    'saved metadata records the final figure',
  );
  assert.equal(result.stoppedBy, 'budget');
  const { decay, average, lr, weightDrop } = saved.metadata.hyperparameters;
  assert.deepEqual(
    { decay, average, lr, weightDrop },
    { decay: 0.25, average: 0.3, lr: 1e-2, weightDrop: 0.1 },
    'the schedule, the averaging and the weights dropped are recorded',
  );
  assert.ok(result.sample.length > 0);
  assert.deepEqual(saved.metadata.corpus.sources, ['notes.txt'], 'names only, not where the notes live');
});

test('held-out notes reach the notes’ memory once validated, unless --validation-unseen; eval refuses text it holds', async () => {
  await selectBackend('wasm');
  const dir = trainDir();
  const notesDir = join(dir, 'notes');
  mkdirSync(notesDir);
  const words = [
    'amber',
    'basalt',
    'cobalt',
    'dolomite',
    'emerald',
    'feldspar',
    'garnet',
    'hematite',
    'iolite',
    'jasper',
  ];
  for (const [i, word] of words.entries())
    writeFileSync(
      join(notesDir, `${word}.md`),
      // A character of its own: outside the vocabulary wherever the file is held out.
      `the ${word} ledger, entry ${i}: ${word} ${i * 7919} kept ${String.fromCodePoint(0x4e00 + i)}.\n`.repeat(30),
    );
  const validation = splitCorpus(loadCorpus([notesDir]), TRAIN_DEFAULTS.validationFraction).validation;
  const heldOutWord = words.find((word) => validation.includes(`the ${word} ledger`))!;
  const heldOutFile = join(notesDir, `${heldOutWord}.md`);
  const heldOutText = readFileSync(heldOutFile, 'utf8');
  const said: Record<string, string[]> = { all: [], unseen: [] };
  const reporter = (name: string) => ({ info: (line: string) => said[name].push(line), progress: () => {} });
  const options = (out: string) => ({ ...smallOptions([notesDir], out), epochs: 1 });
  // The held-out note was saved in the editor before: a retrain whose memory reads it must not count it twice.
  for (const name of ['all', 'unseen']) {
    mkdirSync(join(dir, name));
    LearnedNotes.load(join(dir, name), Vocabulary.fromText(heldOutText, 64)).learn(noteKey(heldOutFile), heldOutText);
    assert.ok(learnedChars(join(dir, name)) > 0);
  }
  await train(options(join(dir, 'all')), reporter('all'));
  await train({ ...options(join(dir, 'unseen')), validationUnseen: true }, reporter('unseen'));

  for (const [name, learnt] of [
    ['all', true],
    ['unseen', false],
  ] as const) {
    const out = join(dir, name);
    const { metadata, vocabulary } = loadModel(out);
    const { corpus } = metadata;
    const notesText = readNotesText(out)!;
    assert.equal(notesText.includes(`the ${heldOutWord} ledger`), learnt, `${name}: notes.txt`);
    assert.equal(corpus.notesChars, [...notesText].length, `${name}: the metadata counts what the memory read`);
    assert.equal(corpus.notesChars! > corpus.trainChars, learnt);
    const share = loadNgram(out, vocabulary)!.countedShare(vocabulary.encode(heldOutText));
    assert.ok(learnt ? share === 1 : share < 0.5, `${name}: the n-gram counted ${share} of the held-out note`);
    assert.equal(learnedChars(out) === 0, learnt, `${name}: the note learnt from its save is folded only if read`);
    const told = said[name].some((line) => /^Your notes' memory reads the [0-9,]+ validation chars too/.test(line));
    assert.equal(told, learnt, `${name}: the trainer says whether the memory reads the validation text`);
  }

  const evaluate = (out: string, ...flags: string[]) =>
    spawnSync(
      process.execPath,
      [join(__dirname, '..', 'eval.js'), '--model', out, '--no-replay', ...flags, heldOutFile],
      { encoding: 'utf8', timeout: 120_000 },
    );
  const refused = evaluate(join(dir, 'all'));
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(refused.stderr, /^error: 1 of the 1 text\(s\) to score occur verbatim in the notes this model learnt/);
  assert.match(refused.stderr, /train it with --validation-unseen/);
  // The unseen model's memory never read the held-out note, but the note it learnt from the save is still served.
  const fromSaves = evaluate(join(dir, 'unseen'));
  assert.equal(fromSaves.status, 2, fromSaves.stderr);
  assert.match(
    fromSaves.stderr,
    /^error: 1 of the 1 text\(s\) to score occur verbatim in the notes this model learnt from saves/,
  );
  assert.match(fromSaves.stderr, /Forget this file/);
  forgetLearnedNotes(join(dir, 'unseen'), new Set([noteKey(heldOutFile)]));
  const costsFile = join(dir, 'costs.tsv');
  const scored = evaluate(join(dir, 'unseen'), '--costs', costsFile);
  assert.equal(scored.status, 0, scored.stderr);
  const typedBits = Number(/bits per char, as typed: ([0-9.]+) bits\/char/.exec(scored.stdout)?.[1]);
  // Each character's cost, in the order typed: together they are the text and its figure.
  const costs = readFileSync(costsFile, 'utf8')
    .trimEnd()
    .split('\n')
    .map((line) => line.split('\t'));
  assert.equal(costs.map(([, char]) => JSON.parse(char)).join(''), heldOutText);
  const meanBits = costs.reduce((sum, [bits]) => sum + Number(bits), 0) / costs.length;
  assert.ok(meanBits > 0 && Math.abs(meanBits - typedBits) < 0.001, `${meanBits} against ${typedBits} bits/char`);
});

test('save and load give identical predictions', async () => {
  await selectBackend('wasm');
  const vocabulary = Vocabulary.fromText('hello, 世界 🎉 notes', 64);
  const config: NetworkConfig = { vocabSize: vocabulary.size, embed: 6, hidden: 12, layers: 2 };
  const original = new CharLstm(config, initialParameters(config, 11));
  const dir = trainDir();
  saveModel(dir, {
    config,
    vocabulary,
    weights: await readWeights(original.params),
    metadata: untrainedMetadata('wasm'),
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
  const dir = trainDir();
  writeFileSync(join(dir, 'picture.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1, 2, 3]));
  const run = runTrainer([dir, '--out', join(dir, 'model')]);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /no usable text/);
  assert.match(run.stdout + run.stderr, /skipped 1 file: 1 binary \(picture\.png\)/);
});

test('the trainer rejects bad flags with a usage message', () => {
  for (const args of [
    ['--bogus'],
    ['--hidden', 'many'],
    ['--lr', '-1'],
    ['--minutes', '1', '--epochs', '1'],
    ['--backend', 'tpu'],
  ]) {
    const run = runTrainer(args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /usage: npm run train/, args.join(' '));
  }
  // A negative value after a space gets the same range error as with "=", not "ambiguous".
  for (const args of [['--minutes', '-1'], ['--minutes=-1']]) {
    const run = runTrainer(args);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /^error: --minutes must be a number from 0\.01 to 10000, got "-1"/, args.join(' '));
  }
});

test('--rebuild-contexts refuses notes to read, a directory without a model and one whose context model another process is learning, with exit code 2 and the reason', () => {
  const dir = trainDir();
  const withPath = runTrainer([dir, '--rebuild-contexts', '--out', join(dir, 'model')]);
  assert.equal(withPath.status, 2, withPath.stderr);
  assert.match(withPath.stderr, /^error: --rebuild-contexts reads the notes kept beside the model/);
  const noModel = runTrainer(['--rebuild-contexts', '--out', join(dir, 'model')]);
  assert.equal(noModel.status, 2, noModel.stderr);
  assert.match(noModel.stderr, /^error: no model at .*model: train one with `npm run train`/);
  saveModel(join(dir, 'model'), randomModel(1));
  const release = acquireRelearnLock(join(dir, 'model'));
  try {
    const held = runTrainer(['--rebuild-contexts', '--out', join(dir, 'model')]);
    assert.equal(held.status, 2, held.stderr);
    assert.match(
      held.stderr,
      new RegExp(`^error: another process is learning again the context model of .*model, pid ${process.pid} `),
    );
  } finally {
    release();
  }
});

test('--backend webgpu without a usable GPU fails with the reason, and auto falls back to the CPU', () => {
  const dir = trainDir();
  const notes = join(dir, 'notes.txt');
  writeFileSync(notes, REPETITIVE);
  const shape = ['--layers', '1', '--hidden', '8', '--embed', '4', '--seq', '8', '--epochs', '1'];
  const small = [...shape, '--batch', '4'];
  const forced = runTrainer([notes, '--out', join(dir, 'forced'), '--backend', 'webgpu', ...small]);
  if (forced.status === 0) {
    // A machine with a real GPU: then it must have been used.
    assert.match(forced.stdout, /Backend: webgpu \(WebGPU on /);
    return;
  }
  assert.equal(forced.status, 2, forced.stderr);
  assert.match(
    forced.stderr,
    /backend: webgpu is not usable \(webgpu: (no Vulkan loader|no GPU adapter|only a software adapter)/,
  );
  assert.doesNotMatch(forced.stderr, /\n\s+at /, 'a reason, not a stack trace');
  // Where a Vulkan loader is installed but no GPU, Dawn's own warnings must not reach stderr:
  // the adapter is probed in a child whose stderr is dropped, and the outcome is one line.
  const auto = runTrainer([notes, '--out', join(dir, 'auto'), ...shape], {
    ...process.env,
    XDG_RUNTIME_DIR: '/nonexistent',
  });
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /Backend: wasm \(.*; no GPU: webgpu: [^\n]+\)\n/);
  // Without --batch, a run on the CPU trains the CPU's default number of streams.
  assert.match(auto.stdout, new RegExp(`\nModel: [^\n]*; batch ${TRAIN_DEFAULTS.batch}, seq 8,`));
  assert.doesNotMatch(auto.stderr, /XDG_RUNTIME_DIR|shaderUniform|Vulkan|vk[A-Z]/);
  if (process.platform === 'linux' && existsSync(join(__dirname, '..', 'dawn.node'))) {
    // A Vulkan loader that cannot load makes Dawn warn on stderr, as a machine without a GPU does.
    const loader = join(dir, 'vulkan');
    mkdirSync(loader);
    writeFileSync(join(loader, 'libvulkan.so.1'), '');
    const broken = runTrainer([notes, '--out', join(dir, 'broken'), ...small], {
      ...process.env,
      LD_LIBRARY_PATH: loader,
    });
    assert.equal(broken.status, 0, broken.stderr);
    assert.match(broken.stdout, /Backend: wasm \(.*; no GPU: webgpu: no GPU adapter/);
    assert.doesNotMatch(broken.stderr, /Vulkan|vulkan/, "Dawn's warnings stay in the probe");
  }
  assert.equal(loadModel(join(dir, 'auto')).metadata.backend, 'wasm');
});

test('an unwritable output directory fails before training starts', () => {
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  writeFileSync(join(dir, 'a-file'), 'not a directory');
  const run = runTrainer([join(dir, 'notes.md'), '--out', join(dir, 'a-file', 'model')]);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /cannot write the model to .*a-file.*--out/);
  assert.doesNotMatch(run.stdout, /Backend:/, 'no training work was started');
});

test('--resume from a corrupt model fails clearly and overwrites nothing', () => {
  const dir = trainDir();
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
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  const flags = [
    '--out',
    out,
    '--epochs',
    '1',
    '--layers',
    '1',
    '--hidden',
    '16',
    '--embed',
    '8',
    '--seq',
    '16',
    '--batch',
    '4',
    '--json',
  ];
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
  assert.ok(
    summary.val_nats <= Math.min(summary.lstm_val_nats, summary.ngram_val_nats) + 0.05,
    `mixture ${summary.val_nats} vs parts ${summary.lstm_val_nats}, ${summary.ngram_val_nats}`,
  );
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
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const flags = [
    join(dir, 'notes.md'),
    '--epochs',
    '1',
    '--layers',
    '1',
    '--hidden',
    '32',
    '--embed',
    '8',
    '--seq',
    '16',
    '--batch',
    '8',
    '--dropout',
    '0',
    '--engine',
    'wasm',
    '--json',
  ];
  const threaded = runTrainer([...flags, '--out', join(dir, 'threaded')], {
    ...process.env,
    CHAR_COMPLETE_WASM_THREADS: '2',
  });
  const single = runTrainer([...flags, '--out', join(dir, 'single')], {
    ...process.env,
    CHAR_COMPLETE_WASM_THREADS: '1',
  });
  assert.equal(threaded.status, 0, threaded.stderr);
  assert.equal(single.status, 0, single.stderr);
  assert.match(threaded.stderr, /XNNPACK, 2 threads/);
  assert.match(single.stderr, /single-threaded/);
  const a = JSON.parse(threaded.stdout.trim().split('\n').pop()!);
  const b = JSON.parse(single.stdout.trim().split('\n').pop()!);
  assert.ok(Math.abs(a.val_nats - b.val_nats) < 1e-3 * b.val_nats, `threaded ${a.val_nats} vs single ${b.val_nats}`);
});

const SMALL = ['--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '16', '--batch', '4'];

/** Starts the trainer; `training` resolves once its output matches ready (by default: it has begun its training steps). */
function startTrainer(args: string[], ready = /^Model: /m) {
  const child = spawn(process.execPath, [TRAINER, ...args], {
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const training = new Promise<void>((resolve, reject) => {
    const look = () => (ready.test(stdout) ? resolve() : undefined);
    child.stdout.on('data', look);
    child.once('exit', () => reject(new Error(`trainer exited before training: ${stderr}`)));
  });
  return { child, exited, training, output: () => ({ stdout, stderr }) };
}

/** The exit code within ms, or a failure that kills the trainer. */
async function exitWithin(run: ReturnType<typeof startTrainer>, ms: number): Promise<number | null> {
  const timer = setTimeout(() => run.child.kill('SIGKILL'), ms);
  const code = await run.exited;
  clearTimeout(timer);
  assert.notEqual(
    run.child.signalCode,
    'SIGKILL',
    `still running ${ms} ms after Ctrl-C: ${JSON.stringify(run.output())}`,
  );
  return code;
}

test('Ctrl-C while training on wasm finishes the step, saves, says so and exits with 130 within seconds', async () => {
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  const run = startTrainer([join(dir, 'notes.md'), '--out', out, '--minutes', '3', '--backend', 'wasm', ...SMALL]);
  await run.training;
  await new Promise((r) => setTimeout(r, 1500));
  const interrupted = performance.now();
  run.child.kill('SIGINT');
  const code = await exitWithin(run, 20_000);
  const seconds = (performance.now() - interrupted) / 1000;
  assert.equal(code, 130, run.output().stderr);
  assert.match(
    run.output().stdout,
    /Interrupted before the first checkpoint: saved the weights and optimizer state as they stand to .*, for --resume\./,
  );
  assert.match(run.output().stdout, /Done \(interrupted\)/);
  assert.ok(seconds < 10, `exited ${seconds.toFixed(1)} s after Ctrl-C`);
  const saved = loadModel(out);
  assert.ok(saved.metadata.steps > 0, 'the interrupted run saved its weights');
  assert.equal(saved.metadata.lstmTrained, false, 'unvalidated weights are not served as a trained LSTM');
  const state = loadOptimizerState(out, saved.config, saved.weightsFile);
  assert.ok(!('missing' in state) && state.step === saved.metadata.steps, 'with their optimizer state, for --resume');
  assert.ok(!existsSync(join(out, 'train.lock')), 'the lock is released');
});

test('a second Ctrl-C exits at once without writing', async () => {
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  // A 2×512 model: its steps take about a second, so the second Ctrl-C arrives while the first is
  // still finishing one.
  const run = startTrainer(
    [join(dir, 'notes.md'), '--out', out, '--minutes', '3', '--backend', 'wasm', '--hidden', '512'],
    /^Saved an n-gram model/m,
  );
  await run.training;
  await new Promise((r) => setTimeout(r, 500));
  const files = readdirSync(out).sort();
  const modelJson = readFileSync(join(out, 'model.json'), 'utf8');
  run.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 20));
  run.child.kill('SIGINT');
  assert.equal(await exitWithin(run, 10_000), 130, run.output().stderr);
  assert.equal(readFileSync(join(out, 'model.json'), 'utf8'), modelJson, 'the model saved before is untouched');
  assert.deepEqual(
    readdirSync(out).sort(),
    files.filter((f) => f !== 'train.lock'),
    'no new file, no temporary file, and the lock released',
  );
});

test('--resume: conflicting shape flags are an error, the resumed model is the one to beat, and a mostly unknown corpus is warned about', () => {
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  const first = runTrainer([
    join(dir, 'notes.md'),
    '--out',
    out,
    '--epochs',
    '2',
    '--lr',
    '0.01',
    '--dropout',
    '0',
    ...SMALL,
  ]);
  assert.equal(first.status, 0, first.stderr);
  const before = loadModel(out);

  const conflict = runTrainer([join(dir, 'notes.md'), '--out', out, '--resume', '--epochs', '1', '--hidden', '64']);
  assert.equal(conflict.status, 2, conflict.stderr);
  assert.match(conflict.stderr, /cannot resume .* with a different shape: --hidden 64 \(the model has 16\)/);

  // A learning rate this high wrecks the weights: the resumed model must survive it.
  const wrecked = runTrainer([
    join(dir, 'notes.md'),
    '--out',
    out,
    '--resume',
    '--epochs',
    '0.2',
    '--lr',
    '1',
    '--dropout',
    '0',
    '--seq',
    '16',
    '--batch',
    '4',
  ]);
  assert.equal(wrecked.status, 0, wrecked.stderr);
  assert.match(wrecked.stdout, /The resumed model scores [\d.]+ bits\/char on this validation set/);
  const after = loadModel(out);
  for (const [name, values] of before.weights) assert.deepEqual(after.weights.get(name), values, `weight ${name} kept`);

  const greek = join(dir, 'greek.md');
  writeFileSync(greek, 'η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.\n'.repeat(100));
  const foreign = runTrainer([greek, '--out', out, '--resume', '--epochs', '0.2', '--seq', '16', '--batch', '4']);
  assert.equal(foreign.status, 0, foreign.stderr);
  assert.match(
    foreign.stdout,
    /Warning: \d+% of this corpus is outside the resumed model's vocabulary of \d+ symbols.*train anew without --resume/,
  );
});

test("Adam's moments and step are saved with the weights and restored exactly by --resume", async () => {
  await selectBackend('wasm');
  const config: NetworkConfig = { vocabSize: 5, embed: 3, hidden: 4, layers: 1 };
  const gradient = (seed: number) =>
    new Map([...initialParameters(config, seed)].map(([name, v]) => [name, v as tf.Tensor]));
  const a = initialParameters(config, 1);
  const adamA = new Adam(a);
  for (let i = 0; i < 5; i++) adamA.apply(gradient(10 + i), 0.01);
  const dir = trainDir();
  saveOptimizerState(dir, config, 'weights.000000000000.bin', await adamA.state());
  assert.deepEqual(loadOptimizerState(dir, config, 'weights.111111111111.bin'), {
    missing: 'optimizer.json belongs to other weights than weights.111111111111.bin',
  });
  const restored = loadOptimizerState(dir, config, 'weights.000000000000.bin');
  assert.ok(!('missing' in restored));
  assert.equal(restored.step, 5);

  // The same next update from the original and the restored optimiser, bit for bit.
  const b = parametersFromWeights(config, await readWeights(a));
  const adamB = new Adam(b);
  adamB.restore(restored);
  adamA.apply(gradient(99), 0.01);
  adamB.apply(gradient(99), 0.01);
  const [wa, wb] = [await readWeights(a), await readWeights(b)];
  for (const [name, values] of wa) assert.deepEqual(wb.get(name), values, name);
  adamA.dispose();
  adamB.dispose();

  // Through the trainer: a resumed run continues at the saved step; an older model without the
  // state still resumes, with a fresh Adam and a note.
  const notes = join(dir, 'notes.md');
  writeFileSync(notes, REPETITIVE);
  const out = join(dir, 'model');
  const first = runTrainer([notes, '--out', out, '--epochs', '1', ...SMALL]);
  assert.equal(first.status, 0, first.stderr);
  const saved = loadModel(out);
  const state = loadOptimizerState(out, saved.config, saved.weightsFile);
  assert.ok(!('missing' in state) && state.step > 0, 'the trainer saved the optimizer state');
  const resumed = runTrainer([notes, '--out', out, '--resume', '--epochs', '1']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, new RegExp(`Optimizer state restored at step ${state.step}\\.`));
  rmSync(join(out, 'optimizer.json'));
  const old = runTrainer([notes, '--out', out, '--resume', '--epochs', '1']);
  assert.equal(old.status, 0, old.stderr);
  assert.match(
    old.stdout,
    /Note: no optimizer state to resume \(optimizer\.json is absent \(a model saved by an older version\)\); Adam starts afresh\./,
  );
});

test('one trainer per --out: a live lock is refused with its pid, a dead one is taken over', () => {
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  mkdirSync(out);
  const lock = join(out, 'train.lock');
  const host = hostname();
  writeFileSync(lock, JSON.stringify({ pid: process.pid, host, started: new Date().toISOString() }));
  const refused = runTrainer([join(dir, 'notes.md'), '--out', out, '--epochs', '0.2', ...SMALL]);
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(
    refused.stderr,
    new RegExp(`another training is writing ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, pid ${process.pid}`),
  );
  assert.ok(!existsSync(join(out, 'model.json')));

  // A lock that cannot be read may still be held: refused, with the command that removes it.
  writeFileSync(lock, 'not a lock');
  assert.throws(
    () => acquireTrainingLock(out),
    (error) =>
      error instanceof LockHeldError &&
      error.message ===
        `another training may be writing ${out}: train.lock is there but unreadable. If no trainer is running, rm ${JSON.stringify(lock)}.`,
  );

  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  writeFileSync(lock, JSON.stringify({ pid: dead, host, started: new Date().toISOString() }));
  const taken = runTrainer([join(dir, 'notes.md'), '--out', out, '--epochs', '0.2', ...SMALL]);
  assert.equal(taken.status, 0, taken.stderr);
  assert.ok(existsSync(join(out, 'model.json')));
  assert.ok(!existsSync(lock), 'released at the end');
});

test('a model.json that is a FIFO makes --resume and eval fail at once instead of hanging', (t) => {
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const out = join(dir, 'model');
  mkdirSync(out);
  if (spawnSync('mkfifo', [join(out, 'model.json')]).status !== 0) {
    t.skip('mkfifo unavailable');
    return;
  }
  const resume = spawnSync(
    process.execPath,
    [TRAINER, join(dir, 'notes.md'), '--out', out, '--resume', '--epochs', '1'],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(resume.status, 2, `status ${resume.status} signal ${resume.signal}: ${resume.stderr}`);
  assert.match(resume.stderr, /cannot resume: invalid model at .*: model\.json is not a regular file/);
  const evaluate = spawnSync(
    process.execPath,
    [join(__dirname, '..', 'eval.js'), '--model', out, join(dir, 'notes.md')],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(evaluate.status, 2, `status ${evaluate.status} signal ${evaluate.signal}: ${evaluate.stderr}`);
  assert.match(evaluate.stderr, /^error: invalid model at .*: model\.json is not a regular file/);
});

test('eval exits with 2 and the reason on a missing model', () => {
  const dir = trainDir();
  writeFileSync(join(dir, 'notes.md'), REPETITIVE);
  const run = spawnSync(
    process.execPath,
    [join(__dirname, '..', 'eval.js'), '--model', join(dir, 'none'), join(dir, 'notes.md')],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /^error: no model at .*none: train one with `npm run train`/);
});

test('the learning rate holds until the decay and then falls along a half cosine to its final factor', () => {
  const lr = 0.004;
  assert.equal(learningRateAt(lr, 0.25, 0), lr);
  assert.equal(learningRateAt(lr, 0.25, 0.75), lr);
  assert.ok(Math.abs(learningRateAt(lr, 0.25, 0.875, 0.1) - lr * (0.1 + 0.9 / 2)) < 1e-12);
  assert.ok(Math.abs(learningRateAt(lr, 0.25, 1, 0.1) - lr * 0.1) < 1e-12);
  assert.ok(Math.abs(learningRateAt(lr, 0.25, 1.2, 0.1) - lr * 0.1) < 1e-12, 'past the budget it stays at the floor');
  let previous = Infinity;
  for (let progress = 0; progress <= 1; progress += 0.01) {
    const rate = learningRateAt(lr, 0.5, progress, 0.1);
    assert.ok(rate <= previous, `rises at ${progress}`);
    previous = rate;
  }
  for (const progress of [0, 0.5, 0.99, 1]) assert.equal(learningRateAt(lr, 0, progress), lr, 'no decay: constant');
});
