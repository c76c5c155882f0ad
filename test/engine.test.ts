// The seams of the training loop: the engine that takes the steps, the validation set that the
// engine's scores and the gate's samples share, and the one timer of a training step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../backends/select';
import { NetworkConfig } from '../model/architecture';
import { NgramModel } from '../model/ngram';
import { TfjsEngine } from '../training/engine';
import { lstmNats, scoreLstm, ValidationSet } from '../training/mixture-fit';
import { CharLstm, parametersFromWeights } from '../model/network';
import { averageRate } from '../training/schedule';
import { timeTrainingStep } from '../training/speed';

const config: NetworkConfig = { vocabSize: 12, embed: 4, hidden: 8, layers: 2 };
const text = Int32Array.from({ length: 3 * 4 * 8 + 1 }, (_, i) => 1 + ((i * 5 + (i >> 3)) % 11));
const setup = {
  config,
  trainIds: text,
  batch: 4,
  seq: 8,
  lr: 0.01,
  dropout: 0.2,
  weightDrop: 0.3,
  seed: 7,
  averageShare: 0.5,
};

test('an engine started from a checkpoint takes the very step the saving engine would have taken next', async () => {
  await selectBackend('wasm');
  const first = new TfjsEngine(setup);
  assert.equal(first.batchesPerEpoch, 3);
  // Three steps end the epoch, so both engines start the next one from a zero state.
  for (let k = 0; k < 3; k++) await first.step();
  const saved = await first.checkpoint();
  assert.equal(saved.optimizerState.step, 3);
  const resumed = new TfjsEngine({ ...setup, weights: saved.weights, optimizerState: saved.optimizerState });
  // Same batch (the place in the data goes on from Adam's step), same dropout masks, same update.
  assert.equal(await resumed.step(), await first.step());
  const [a, b] = [await first.checkpoint(), await resumed.checkpoint()];
  for (const [name, values] of a.weights) assert.deepEqual(b.weights.get(name), values, name);
  // The average goes on from the saved one, and Adam from the weights it stepped, not from their average.
  for (const [name, values] of a.optimizerState.trained!)
    assert.deepEqual(b.optimizerState.trained!.get(name), values, name);
  assert.equal(b.optimizerState.step, 4);
  await first.dispose();
  await resumed.dispose();
});

test('the weights saved are the average of the weights trained, which training goes on from unchanged', async () => {
  await selectBackend('wasm');
  const averaging = new TfjsEngine(setup);
  const plain = new TfjsEngine({ ...setup, averageShare: 0 });
  let average = (await plain.checkpoint()).weights;
  for (let step = 1; step <= 5; step++) {
    assert.equal(await averaging.step(), await plain.step(), 'the same losses: averaging does not change training');
    const trained = (await plain.checkpoint()).weights;
    const rate = averageRate(step, setup.averageShare);
    average = new Map(
      [...average].map(([name, values]) => [name, values.map((a, i) => a + (trained.get(name)![i] - a) * rate)]),
    );
    const saved = await averaging.checkpoint();
    for (const [name, values] of trained) assert.deepEqual(saved.optimizerState.trained!.get(name), values, name);
    let worst = 0;
    let moved = 0;
    for (const [name, values] of average)
      saved.weights.get(name)!.forEach((x, i) => {
        worst = Math.max(worst, Math.abs(x - values[i]));
        moved = Math.max(moved, Math.abs(x - trained.get(name)![i]));
      });
    assert.ok(worst < 1e-6, `step ${step}: the saved weights are ${worst} from the average`);
    if (step > 1) assert.ok(moved > 1e-4, `step ${step}: the average lags the weights trained`);
  }
  assert.equal(
    (await plain.checkpoint()).optimizerState.trained,
    undefined,
    'without averaging, one copy of the weights',
  );
  await averaging.dispose();
  await plain.dispose();
});

test('load puts saved weights back, and the engine then scores as the saved model does', async () => {
  await selectBackend('wasm');
  const engine = new TfjsEngine(setup);
  const start = (await engine.checkpoint()).weights;
  const notes = new NgramModel(config.vocabSize);
  notes.add(text);
  const validation = ValidationSet.of(text, 2, 8, notes)!;
  const before = lstmNats(await engine.score(validation));
  for (let k = 0; k < 3; k++) await engine.step();
  assert.notEqual(lstmNats(await engine.score(validation)), before, 'training changed the scores');
  await engine.load(start);
  assert.equal(lstmNats(await engine.score(validation)), before);
  const model = new CharLstm(config, parametersFromWeights(config, start));
  assert.equal(lstmNats(await scoreLstm(model, validation.ids, validation.batch, validation.seq)), before);
  model.dispose();
  await engine.dispose();
});

test("a validation set's n-gram samples cover exactly the positions the engine scores, so the gate fits on them", async () => {
  await selectBackend('wasm');
  const notes = new NgramModel(config.vocabSize);
  notes.add(text.subarray(0, 40));
  assert.equal(ValidationSet.of(text.subarray(0, 2 * 8), 2, 8, notes), undefined, 'one id short of two windows');
  const validation = ValidationSet.of(text.subarray(0, 2 * 8 + 1), 2, 8, notes)!;
  assert.equal(validation.samples.count, 16);
  const long = ValidationSet.of(text, 3, 8, notes)!;
  const engine = new TfjsEngine(setup);
  const scores = await engine.score(long);
  assert.equal(scores.covered, long.samples.count);
  await engine.dispose();
  // An LSTM sure of every character: the gate fitted with its scores leans on it, down to its loss.
  const sure = Math.log(0.99);
  const gate = long.fitGate({
    covered: scores.covered,
    target: scores.target.map(() => sure),
    max: scores.max.map(() => sure),
  });
  assert.ok(gate.nats < long.samples.notesNats, `mixture ${gate.nats} vs n-gram ${long.samples.notesNats}`);
  assert.ok(gate.nats < -sure + 0.05, `mixture ${gate.nats} vs the LSTM's ${-sure}`);
});

test('timeTrainingStep gives the speed of whole training steps, fastest at least the median, and leaves no tensor behind', async () => {
  await selectBackend('wasm');
  const tensors = tf.memory().numTensors;
  const speed = await timeTrainingStep(
    config,
    { batch: 4, seq: 8, dropout: 0.1, weightDrop: 0.25 },
    { warmup: 1, timed: 3 },
  );
  assert.ok(speed.median > 0 && Number.isFinite(speed.median), `median ${speed.median}`);
  assert.ok(speed.fastest >= speed.median, `fastest ${speed.fastest} vs median ${speed.median}`);
  assert.equal(tf.memory().numTensors, tensors);
});
