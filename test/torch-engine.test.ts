// The PyTorch engine against this process's tfjs engine: the same steps give the same weights, a
// model it trains serves the same log-probabilities, two processes under DDP take the step one
// process takes with their batches together, and a missing torch is a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../backends/select';
import type { NetworkConfig } from '../model/architecture';
import { loadModel, saveModel } from '../model/format';
import {
  CharLstm,
  disposeState,
  initialParameters,
  parametersFromWeights,
  readWeights,
  zeroState,
} from '../model/network';
import { loadServedModel } from '../model/served';
import { Vocabulary } from '../model/vocab';
import { StreamBatcher } from '../training/batches';
import { randomModel } from './support/random-model';
import { tempDir } from './support/temp-dirs';
import { withEnv } from './support/env';
import { scoreLstm } from '../training/mixture-fit';
import { EngineSetup, TfjsEngine } from '../training/engine';
import { Adam, ADAM_DEFAULTS, WeightAverage } from '../training/optimizer';
import { loadOptimizerState, type OptimizerState } from '../training/optimizer-state';
import { findPython, TorchEngine, TorchRun, TorchUnavailableError } from '../training/torch-engine';
import { enginePath } from '../training/torch-python';
import { TorchLstmEngine } from '../training/torch-lstm-engine';

const TEXT = 'the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n'.repeat(40);

const torchMissing = (() => {
  try {
    findPython();
    return false;
  } catch (error) {
    return `PyTorch is not available (${(error as Error).message.split('. To use')[0]}): apt-get install python3-torch libopenblas0-pthread, or pip install torch`;
  }
})();

const pythonMissing = spawnSync('python3', ['--version']).status === 0 ? false : 'no python3 on PATH';

const vocabulary = Vocabulary.fromText(TEXT, 64);
const ids = vocabulary.encode(TEXT);
const config: NetworkConfig = { vocabSize: vocabulary.size, embed: 8, hidden: 24, layers: 2 };

/**
 * The engine held to float32 products, for the tests that compare it with tfjs to float32's precision: on a CPU that
 * multiplies bfloat16 natively it would take bfloat16 on its own.
 */
const FLOAT32 = { device: 'cpu', env: { ...process.env, CHAR_COMPLETE_TORCH_PRECISION: 'float32' } } as const;

function run(batch: number, seq: number, weights: Map<string, Float32Array>): TorchRun {
  return {
    config,
    batch,
    seq,
    dropout: 0,
    weightDrop: 0,
    seed: 1,
    adam: ADAM_DEFAULTS,
    averageShare: 0,
    trainIds: ids,
    weights,
  };
}

/** The largest difference between two sets of weights, relative to the largest weight of each tensor. */
function relativeDifference(
  a: Map<string, Float32Array>,
  b: Map<string, Float32Array>,
): { worst: number; name: string } {
  let worst = 0;
  let name = '';
  for (const [key, expected] of b) {
    const actual = a.get(key)!;
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < expected.length; i++) {
      scale = Math.max(scale, Math.abs(expected[i]));
      diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    }
    if (diff / scale > worst) [worst, name] = [diff / scale, key];
  }
  return { worst, name };
}

test('without torch, --engine torch is a clear error that says how to install it', () => {
  const absent = { ...process.env, CHAR_COMPLETE_PYTHON: '/nonexistent/python3' };
  assert.throws(
    () => findPython(absent),
    (error: Error) => {
      assert.ok(error instanceof TorchUnavailableError);
      assert.match(error.message, /\/nonexistent\/python3: not found/);
      assert.match(error.message, /apt-get install python3-torch libopenblas0-pthread/);
      assert.match(error.message, /pip install torch/);
      return true;
    },
  );
});

test(
  'an interpreter whose torch fails to import makes the engine refuse to start, with the reason',
  { skip: pythonMissing },
  async () => {
    // A torch package that cannot be imported, ahead of any real one on the path.
    const shadow = mkdtempSync(join(tmpdir(), 'char-complete-no-torch-'));
    mkdirSync(join(shadow, 'torch'));
    writeFileSync(join(shadow, 'torch', '__init__.py'), 'raise ImportError("torch is broken here")\n');
    try {
      const env = { ...process.env, PYTHONPATH: shadow, CHAR_COMPLETE_PYTHON: 'python3' };
      await assert.rejects(TorchEngine.start({ env }), (error: Error) => {
        assert.ok(error instanceof TorchUnavailableError, String(error));
        assert.match(error.message, /cannot import torch \(torch is broken here\)/);
        assert.match(error.message, /pip install torch/);
        return true;
      });
    } finally {
      rmSync(shadow, { recursive: true, force: true });
    }
  },
);

test(
  'ten steps in the torch engine, across epochs whose streams are turned round, give the weights and their average that ten steps of the tfjs engine give, and a setup from its checkpoint goes on as tfjs does',
  { skip: torchMissing },
  async (t) => {
    await selectBackend('wasm');
    const batch = 4;
    const seq = 16;
    const lr = 1e-2;
    const averageShare = 0.3;
    const params = initialParameters(config, 7);
    const start = await readWeights(params);

    const model = new CharLstm(config, params);
    const optimizer = new Adam(params, ADAM_DEFAULTS);
    const average = new WeightAverage(params, averageShare);
    // Four steps an epoch, so that the eleven steps read three epochs, each cut into windows of its own.
    const trainIds = ids.subarray(0, 4 * batch * seq + 1);
    const batcher = new StreamBatcher(trainIds, batch, seq);
    assert.equal(batcher.batchesPerEpoch, 4);
    let state = zeroState(config, batch);
    const tfjsAfter: Array<{ trained: Map<string, Float32Array>; average: Map<string, Float32Array> }> = [];
    let tfjsAdam: OptimizerState | undefined;
    for (let k = 0; k < 11; k++) {
      if (k === 10 || k % batcher.batchesPerEpoch === 0) {
        // A setup from a checkpoint, and a new epoch, start the streams from a zero state.
        disposeState(state);
        state = zeroState(config, batch);
      }
      const { inputs, targets } = batcher.batch(k % batcher.batchesPerEpoch, Math.floor(k / batcher.batchesPerEpoch));
      const result = await model.trainStep(inputs, targets, batch, seq, state, 0, k);
      disposeState(state);
      state = result.state;
      optimizer.apply(result.gradients, lr);
      average.update(optimizer.step);
      if (k >= 9) tfjsAfter.push({ trained: await readWeights(params), average: await average.read() });
      if (k === 9) tfjsAdam = await optimizer.state();
    }
    disposeState(state);
    optimizer.dispose();
    average.dispose();
    model.dispose();

    const engine = await TorchEngine.start(FLOAT32);
    const close = (name: string, a: Map<string, Float32Array>, b: Map<string, Float32Array>, tolerance: number) => {
      const diff = relativeDifference(a, b);
      t.diagnostic(`${name}: largest difference ${diff.worst.toExponential(2)} of ${diff.name}'s largest weight`);
      assert.ok(diff.worst < tolerance, `${name}: ${diff.name} differs by ${diff.worst} of its largest weight`);
    };
    try {
      assert.equal(await engine.setup({ ...run(batch, seq, start), trainIds, averageShare }), batcher.batchesPerEpoch);
      const trained = await engine.train(0, Array(10).fill(lr));
      assert.equal(trained.losses.length, 10);
      assert.ok(trained.losses[9] < trained.losses[0], `loss ${trained.losses[0]} → ${trained.losses[9]}`);
      const { weights, optimizer: adam } = await engine.checkpoint();
      close('the average after 10 steps', weights, tfjsAfter[0].average, 1e-4);
      close('the weights trained after 10 steps', adam.trained!, tfjsAfter[0].trained, 1e-4);
      assert.ok(relativeDifference(weights, adam.trained!).worst > 1e-3, 'the average is not the weights trained');
      assert.equal(adam.step, 10);
      const momentDiff = relativeDifference(adam.m, tfjsAdam!.m);
      assert.ok(momentDiff.worst < 1e-3, `Adam's m for ${momentDiff.name} differs by ${momentDiff.worst}`);

      await engine.setup({ ...run(batch, seq, weights), trainIds, averageShare, optimizer: adam });
      await engine.train(10, [lr]);
      const resumed = await engine.checkpoint();
      close('the average one step after a setup from the checkpoint', resumed.weights, tfjsAfter[1].average, 1e-4);
      close('the weights trained then', resumed.optimizer.trained!, tfjsAfter[1].trained, 1e-4);
    } finally {
      await engine.close();
    }
  },
);

/** The tfjs engine's initial weights for a seed, read out of its tensors. */
async function initialWeights(seed: number): Promise<Map<string, Float32Array>> {
  const params = initialParameters(config, seed);
  const weights = await readWeights(params);
  tf.dispose([...params.values()]);
  return weights;
}

/** The weights Adam steps after three steps of `setup` in `engine`. */
async function threeSteps(engine: TorchEngine, setup: TorchRun): Promise<Map<string, Float32Array>> {
  await engine.setup(setup);
  await engine.train(0, [1e-2, 1e-2, 1e-2]);
  return (await engine.checkpoint()).optimizer.trained!;
}

test(
  'averaging leaves the run as it was: with dropout, the weights trained are the same with the average kept or not',
  { skip: torchMissing },
  async () => {
    await selectBackend('wasm');
    const start = await initialWeights(4);
    const engine = await TorchEngine.start({ device: 'cpu' });
    try {
      const trainedWith = (averageShare: number) =>
        threeSteps(engine, { ...run(4, 16, start), dropout: 0.3, averageShare });
      const plain = await trainedWith(0);
      const averaging = await trainedWith(0.3);
      for (const [name, values] of plain) assert.deepEqual(averaging.get(name), values, name);
    } finally {
      await engine.close();
    }
  },
);

test(
  "with recurrent weights dropped, the engine's own CPU layer trains as nn.LSTM does on a GPU, from the same masks",
  { skip: torchMissing },
  async (t) => {
    await selectBackend('wasm');
    const start = await initialWeights(5);
    const trained = async (weightDrop: number, layer?: string) => {
      const env = { ...FLOAT32.env, ...(layer ? { CHAR_COMPLETE_TORCH_LSTM: layer } : {}) };
      const engine = await TorchEngine.start({ device: 'cpu', env });
      try {
        return await threeSteps(engine, { ...run(4, 16, start), dropout: 0.2, weightDrop });
      } finally {
        await engine.close();
      }
    };
    const ownLayer = await trained(0.4);
    const nnLstm = await trained(0.4, 'nn');
    const diff = relativeDifference(ownLayer, nnLstm);
    t.diagnostic(
      `largest difference from nn.LSTM's run: ${diff.worst.toExponential(2)} of ${diff.name}'s largest weight`,
    );
    assert.ok(diff.worst < 1e-5, `${diff.name} differs by ${diff.worst} of its largest weight`);
    const undropped = relativeDifference(await trained(0), ownLayer);
    assert.ok(undropped.worst > 1e-3, `dropping weights changed the run by only ${undropped.worst}`);
  },
);

test(
  'on bfloat16 products the weights Adam steps stay float32 and the losses follow the float32 run, and the engine says which products it takes and why',
  { skip: torchMissing },
  async (t) => {
    await selectBackend('wasm');
    const start = await initialWeights(6);
    const trainedOn = async (precision: string) => {
      const env = { ...process.env, CHAR_COMPLETE_TORCH_PRECISION: precision };
      const engine = await TorchEngine.start({ device: 'cpu', env });
      try {
        assert.equal(engine.info.precision, precision);
        await engine.setup(run(8, 16, start));
        const { losses } = await engine.train(0, Array(20).fill(1e-2));
        return { losses, trained: (await engine.checkpoint()).optimizer.trained!, described: engine.describe() };
      } finally {
        await engine.close();
      }
    };
    const float32 = await trainedOn('float32');
    const bfloat16 = await trainedOn('bfloat16');
    assert.match(bfloat16.described, /, bfloat16 products \(CHAR_COMPLETE_TORCH_PRECISION\),/);
    assert.doesNotMatch(float32.described, /products/);
    const lowBits = (w: Float32Array) =>
      new Uint32Array(w.buffer, w.byteOffset, w.length).some((b) => (b & 0xffff) !== 0);
    assert.ok([...bfloat16.trained.values()].some(lowBits), 'the weights Adam steps are not rounded to bfloat16');
    const diff = relativeDifference(bfloat16.trained, float32.trained);
    t.diagnostic(
      `largest difference from float32's run: ${diff.worst.toExponential(2)} of ${diff.name}'s largest weight`,
    );
    assert.ok(diff.worst > 1e-4, 'the products ran in bfloat16');
    // Adam's early steps turn small differences in a gradient into whole steps, so the runs are compared by their losses.
    const lossGap = Math.max(...bfloat16.losses.map((loss, k) => Math.abs(loss / float32.losses[k] - 1)));
    t.diagnostic(`largest difference from float32's loss at a step: ${(100 * lossGap).toFixed(2)}%`);
    assert.ok(lossGap < 0.01, `a loss differs from float32's by ${(100 * lossGap).toFixed(2)}%`);
    const [first, last] = [bfloat16.losses[0], bfloat16.losses.at(-1)!];
    assert.ok(last < 0.9 * first, `loss ${first} → ${last}`);
  },
);

test(
  'a model the torch engine trains serves, through the model files, the log-probabilities torch computes, and torch scores held-out text as tfjs does',
  { skip: torchMissing },
  async (t) => {
    await selectBackend('wasm');
    const engine = await TorchEngine.start(FLOAT32);
    const dir = mkdtempSync(join(tmpdir(), 'char-complete-torch-served-'));
    try {
      const params = initialParameters(config, 3);
      await engine.setup(run(8, 16, await readWeights(params)));
      tf.dispose([...params.values()]);
      await engine.train(0, Array(20).fill(1e-2));
      const { weights } = await engine.checkpoint();
      // Metadata does not matter here: a stand-in's.
      saveModel(dir, { config, vocabulary, weights, metadata: randomModel(0).metadata });

      // Three streams of 64 chained steps each, from a zero state, one character at a time.
      const streams = 3;
      const steps = 64;
      const input = new Int32Array(streams * steps);
      for (let b = 0; b < streams; b++) input.set(ids.subarray(100 * b + 5, 100 * b + 5 + steps), b * steps);
      const expected = await engine.logProbs(input, streams, steps);

      // The weights as saved, in f32: what is compared is the files, not the server's bfloat16 rounding.
      const worst = await withEnv('CHAR_COMPLETE_STEP_WEIGHTS', 'f32', async () => {
        const served = loadServedModel(dir);
        let states = Array.from({ length: streams }, () => served.lstm.zeroState());
        let largest = 0;
        for (let t = 0; t < steps; t++) {
          const snapshots = await served.lstm.step(
            states,
            Array.from({ length: streams }, (_, b) => input[b * steps + t]),
          );
          snapshots.forEach((snapshot, b) => {
            const row = (b * steps + t) * config.vocabSize;
            for (let v = 0; v < config.vocabSize; v++)
              largest = Math.max(largest, Math.abs(snapshot.logProbs[v] - expected[row + v]));
          });
          states = snapshots.map((s) => s.state);
        }
        served.dispose();
        return largest;
      });
      t.diagnostic(`largest difference in a log-probability: ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-5, `served log-probabilities differ from torch's by up to ${worst}`);

      // What the gate is fitted on: the scores of held-out text, as the tfjs engine computes them.
      const heldOut = ids.subarray(1000, 2500);
      const scores = await engine.score(heldOut, 4, 16);
      const model = new CharLstm(config, parametersFromWeights(config, weights));
      const expectedScores = await scoreLstm(model, heldOut, 4, 16);
      model.dispose();
      assert.equal(scores.covered, expectedScores.covered);
      let scoreDiff = 0;
      for (let i = 1; i <= scores.covered; i++) {
        scoreDiff = Math.max(scoreDiff, Math.abs(scores.target[i] - expectedScores.target[i]));
        scoreDiff = Math.max(scoreDiff, Math.abs(scores.max[i] - expectedScores.max[i]));
      }
      t.diagnostic(`largest difference in a validation score: ${scoreDiff.toExponential(2)}`);
      assert.ok(scoreDiff < 1e-5, `validation scores differ from tfjs's by up to ${scoreDiff}`);
    } finally {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'two CPU processes under DDP: one step of 2 ranks × batch B is one step of 1 rank × 2B, and the loss falls',
  { skip: torchMissing },
  async (t) => {
    await selectBackend('wasm');
    const start = await initialWeights(5);
    const stepOnce = async (engine: TorchEngine) => {
      await engine.setup(run(8, 16, start));
      await engine.train(0, [1e-2]);
      return engine.checkpoint();
    };
    const single = await TorchEngine.start(FLOAT32);
    const one = await stepOnce(single).finally(() => single.close());

    const pair = await TorchEngine.start({ ...FLOAT32, processes: 2 });
    try {
      assert.equal(pair.info.worldSize, 2);
      const two = await stepOnce(pair);
      // Adam's first moment after one step is a tenth of the clipped gradient: the gradients agree too.
      const gradients = relativeDifference(two.optimizer.m, one.optimizer.m);
      assert.ok(gradients.worst < 1e-5, `the gradient of ${gradients.name} differs by ${gradients.worst}`);
      const diff = relativeDifference(two.weights, one.weights);
      t.diagnostic(`largest difference: ${diff.worst.toExponential(2)} of ${diff.name}'s largest weight`);
      // Adam's first step divides each gradient by its own size, so a gradient near Adam's epsilon,
      // summed across the ranks in another order, takes a visibly different step: the weights get a
      // looser bound than the gradients above.
      assert.ok(diff.worst < 1e-4, `${diff.name} differs by ${diff.worst} of its largest weight`);
      const more = await pair.train(1, Array(30).fill(1e-2));
      const first = more.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
      const last = more.losses.slice(-5).reduce((a, b) => a + b) / 5;
      assert.ok(last < 0.9 * first, `loss ${first} → ${last}`);
    } finally {
      await pair.close();
    }
  },
);

test(
  'a torch engine that dies hands over to the tfjs engine, which goes on from the last weights read back',
  { skip: torchMissing },
  async () => {
    await selectBackend('wasm');
    const torch = await TorchEngine.start({ device: 'cpu' });
    const setup = {
      config,
      trainIds: ids,
      batch: 4,
      seq: 16,
      lr: 1e-2,
      dropout: 0,
      weightDrop: 0,
      seed: 2,
      averageShare: 0.3,
    };
    const handedOver: EngineSetup[] = [];
    const engine = await TorchLstmEngine.create(torch, setup, (error, lastGood) => {
      assert.match(error.message, /killed by SIGKILL/);
      handedOver.push(lastGood);
      return new TfjsEngine(lastGood);
    });
    try {
      for (let k = 0; k < 3; k++) await engine.step();
      const saved = await engine.checkpoint();
      await engine.step();
      process.kill(torch.pid, 'SIGKILL');
      const loss = await engine.step();
      assert.ok(Number.isFinite(loss));
      assert.equal(handedOver.length, 1);
      assert.equal(handedOver[0].optimizerState?.step, 3, 'from the last checkpoint read back');
      assert.deepEqual(handedOver[0].weights, saved.weights);
      const after = await engine.checkpoint();
      assert.equal(after.optimizerState.step, 4, 'the tfjs engine took the step after the checkpoint');
    } finally {
      await engine.dispose();
    }
  },
);

const TRAINER = join(__dirname, '..', 'train.js');
const SMALL = ['--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '16', '--batch', '4'];

function notesDir(): { dir: string; notes: string; out: string } {
  const dir = tempDir('char-complete-torch-trainer');
  writeFileSync(join(dir, 'notes.md'), TEXT);
  return { dir, notes: join(dir, 'notes.md'), out: join(dir, 'model') };
}

/** The trainer, started; `ready` resolves once it has begun its training steps. */
function startTrainer(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, [TRAINER, ...args], { env: { ...env, CHAR_COMPLETE_WASM_THREADS: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => (/^Model: /m.test(stdout) ? resolve() : undefined));
    child.once('exit', () => reject(new Error(`trainer exited before training: ${stderr}`)));
  });
  const within = async (ms: number) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    const code = await exited;
    clearTimeout(timer);
    assert.notEqual(child.signalCode, 'SIGKILL', `still running after ${ms} ms: ${stdout}${stderr}`);
    return code;
  };
  return { child, ready, within, output: () => ({ stdout, stderr }) };
}

/** The pid of the trainer's torch engine: its one child process. */
function enginePid(trainer: number): number {
  const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(trainer)], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')
    .map(Number)
    .filter((pid) => pid > 0);
  assert.equal(children.length, 1, `the trainer's children: ${children}`);
  return children[0];
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test(
  'the trainer on --engine torch: Ctrl-C finishes the step, saves, exits with 130 and ends the engine; --resume goes on with its Adam state, on either engine',
  { skip: torchMissing || process.platform === 'win32' },
  async () => {
    const { notes, out } = notesDir();
    const run = startTrainer([notes, '--out', out, '--minutes', '3', '--engine', 'torch', ...SMALL]);
    await run.ready;
    const engine = enginePid(run.child.pid!);
    await new Promise((r) => setTimeout(r, 1500));
    run.child.kill('SIGINT');
    assert.equal(await run.within(20_000), 130, run.output().stderr);
    const { stdout } = run.output();
    assert.match(stdout, /^Engine: torch .* \(as asked\)$/m);
    assert.match(stdout, /Interrupted before the first checkpoint: saved the weights and optimizer state/);
    assert.ok(!isRunning(engine), 'the engine process has ended');
    const saved = loadModel(out);
    const state = loadOptimizerState(out, saved.config, saved.weightsFile);
    assert.ok(
      !('missing' in state) && state.step === saved.metadata.steps && state.step > 0,
      'Adam saved with the weights',
    );

    const resumed = spawnSync(
      process.execPath,
      [TRAINER, notes, '--out', out, '--resume', '--engine', 'torch', '--chars', '3000', ...SMALL, '--json'],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`Optimizer state restored at step ${state.step}\\.`));
    const summary = JSON.parse(resumed.stdout.trim().split('\n').pop()!);
    assert.equal(summary.engine, 'torch (cpu)');
    const after = loadModel(out);
    const afterState = loadOptimizerState(out, after.config, after.weightsFile);
    assert.ok(!('missing' in afterState) && afterState.step > state.step, 'Adam went on counting from the saved step');

    // The other engine goes on from the same state, and says so.
    const switched = spawnSync(
      process.execPath,
      [TRAINER, notes, '--out', out, '--resume', '--engine', 'wasm', '--chars', '1000', ...SMALL],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(switched.status, 0, switched.stderr);
    assert.match(switched.stdout, new RegExp(`Optimizer state restored at step ${afterState.step}\\.`));
    assert.match(switched.stdout, /Adam's state was saved by the torch engine; the wasm engine runs the same Adam/);
  },
);

test(
  'a trainer killed outright leaves no torch engine running and none of its files behind',
  { skip: torchMissing || process.platform === 'win32' },
  async () => {
    const { notes, out } = notesDir();
    const temporary = tempDir('char-complete-torch-tmp');
    const run = startTrainer([notes, '--out', out, '--minutes', '3', '--engine', 'torch', ...SMALL], {
      ...process.env,
      TMPDIR: temporary,
    });
    await run.ready;
    const engine = enginePid(run.child.pid!);
    const engineFiles = () => readdirSync(temporary).filter((name) => name.startsWith('char-complete-torch-'));
    assert.equal(engineFiles().length, 1, 'the engine has its folder while it runs');
    run.child.kill('SIGKILL');
    const started = performance.now();
    while ((isRunning(engine) || engineFiles().length > 0) && performance.now() - started < 20_000)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(!isRunning(engine), 'the engine ended with its trainer');
    assert.deepEqual(engineFiles(), [], 'the engine removed its folder');
  },
);

test(
  'the torch engine killed mid-run: the trainer says what happened and exits with 1, and the saved model stays',
  { skip: torchMissing || process.platform === 'win32' },
  async () => {
    const { notes, out } = notesDir();
    const run = startTrainer([notes, '--out', out, '--minutes', '3', '--engine', 'torch', ...SMALL]);
    await run.ready;
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(enginePid(run.child.pid!), 'SIGKILL');
    assert.equal(await run.within(20_000), 1, run.output().stdout);
    assert.match(run.output().stderr, /error: the torch engine was killed by SIGKILL/);
    assert.doesNotMatch(run.output().stderr, /\n\s+at /, 'no stack trace');
    assert.ok(loadModel(out).metadata, 'the model saved before stays whole');
  },
);

test('without torch, --engine torch exits with 2 and how to install it, and auto trains on wasm saying why', () => {
  const { notes, out } = notesDir();
  const env = { ...process.env, CHAR_COMPLETE_PYTHON: '/nonexistent/python3' };
  const args = [notes, '--out', out, '--chars', '2000', ...SMALL];
  const asked = spawnSync(process.execPath, [TRAINER, ...args, '--engine', 'torch'], {
    encoding: 'utf8',
    env,
    timeout: 120_000,
  });
  assert.equal(asked.status, 2, asked.stderr);
  assert.match(
    asked.stderr,
    /error: PyTorch not found: \/nonexistent\/python3: not found\. To use --engine torch, install PyTorch/,
  );
  assert.match(asked.stderr, /apt-get install python3-torch libopenblas0-pthread/);
  const auto = spawnSync(process.execPath, [TRAINER, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /^Engine: wasm \(auto: PyTorch not found: \/nonexistent\/python3: not found/m);
  assert.match(auto.stdout, /chars\/s on wasm/);
});

test(
  'the CPU engine trains on fewer threads while another busy process shares the cores, and on all of them again after',
  { skip: torchMissing },
  () => {
    // A machine whose two threads collapse when it is busy, as OpenMP's and OpenBLAS's waiting threads do, on a clock
    // the test keeps: the governor sees only the step times.
    const script = `
import json, sys
sys.path.insert(0, sys.argv[1])
import torch_engine
STEP = {(2, "idle"): 0.2, (1, "idle"): 0.35, (2, "busy"): 4.0, (1, "busy"): 0.5}
clock, applied, notes, phases = [0.0], [], [], []
governor = torch_engine.ThreadGovernor([2, 2 // 2, 1], applied.append, now=lambda: clock[0])
for machine, steps in (("idle", 300), ("busy", 300), ("idle", 2000)):
    started, threads_used = clock[0], []
    for _ in range(steps):
        threads = governor.threads_for_step()
        threads_used.append(threads)
        clock[0] += STEP[threads, machine]
        governor.took(STEP[threads, machine])
        note = governor.take_note()
        if note:
            notes.append(note)
    phases.append({"machine": machine, "seconds": clock[0] - started, "ideal": steps * min(STEP[t, machine] for t in (1, 2)),
                   "last": threads_used[-50:], "threads": governor.threads_for_step()})
planned = torch_engine.ThreadGovernor([2, 1], applied.append, now=lambda: clock[0])
planned.settle({1: 0.5, 2: 4.0})
settled = [planned.threads_for_step(), applied[-1], planned.take_note()]
planned.settle({1: 0.35, 2: 0.2})
settled += [planned.threads_for_step(), applied[-1], planned.take_note()]
print(json.dumps({"phases": phases, "notes": notes, "applied": applied, "settled": settled}))
`;
    const python = findPython().python;
    const engineDir = join(enginePath(), '..');
    const ran = spawnSync(python, ['-c', script, engineDir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(ran.status, 0, ran.stderr);
    const { phases, notes, applied, settled } = JSON.parse(ran.stdout) as {
      phases: { machine: string; seconds: number; ideal: number; last: number[]; threads: number }[];
      notes: string[];
      applied: number[];
      settled: (number | string | null)[];
    };
    const [idle, busy, idleAgain] = phases;
    assert.deepEqual(
      phases.map((phase) => phase.threads),
      [2, 1, 2],
    );
    // Settled: the probes are rare once the count stays.
    for (const phase of phases)
      assert.ok(
        phase.last.filter((threads) => threads === phase.threads).length >= 48,
        `${phase.machine}: ${phase.last}`,
      );
    // Two threads throughout the busy stretch would take eight times the single thread's time.
    assert.ok(busy.seconds < 1.2 * busy.ideal, `busy: ${busy.seconds} s against ${busy.ideal} s on one thread`);
    assert.ok(idle.seconds < 1.15 * idle.ideal, `idle: ${idle.seconds} s against ${idle.ideal} s`);
    assert.ok(
      idleAgain.seconds < 1.15 * idleAgain.ideal,
      `idle again: ${idleAgain.seconds} s against ${idleAgain.ideal}`,
    );
    assert.equal(notes.length, 2, notes.join('\n'));
    assert.match(notes[0], /^Torch now trains on 1 thread, not 2: .*another busy process shares the cores$/);
    assert.match(notes[1], /^Torch now trains on 2 threads, not 1: /);
    // Threads are set for probes and changes, not for each of the 2,600 steps.
    assert.ok(applied.length < 40, `threads set ${applied.length} times`);
    // Timed before training: the plan starts on the faster count, and says so where it is not all of them.
    assert.match(String(settled[2]), /^Torch now trains on 1 thread, not 2: a step took 0.50 s on 1 and 4.00 s on 2/);
    assert.deepEqual(settled, [1, 1, settled[2], 2, 2, null]);
  },
);
