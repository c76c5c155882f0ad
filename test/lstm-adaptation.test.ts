// Dynamic evaluation: a document's own copy of the LSTM learns from what is typed there, in idle time, and the shared
// weights, which every other document steps with, never change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdaptedLstms, LSTM_ADAPTATION, LstmAdaptation } from '../model/lstm-adaptation';
import { ADAPTATION_STEP, AdaptationStep, gradientStepInKernel, WeightUpdate } from '../model/lstm-adaptation-step';
import { callingThreadLayerKernel } from '../backends/layer-kernel';
import { BUILT_DIRS } from '../backends/built-files';
import { LstmPredictor } from '../model/predictor';
import { loadServedModel } from '../model/served';
import { CompletionSession } from '../completion/session';
import { randomModel } from './support/random-model';
import { tempModelDir } from './support/temp-dirs';
import { maxDifference } from './support/arrays';
import { withEnv } from './support/env';

const SHAPE = { embed: 8, hidden: 16, layers: 1 };
/** A tiny random network learns a few steps' worth only at a faster rate than a trained one needs. */
const FAST = { ...ADAPTATION_STEP, rate: 0.03 };
const TEXT = 'the cat sat on the mat. '.repeat(6);

/** The mean loss of `lstm` on `text` read from the zero state, and the state before each character. */
async function read(lstm: LstmPredictor, text: string): Promise<{ nats: number; before: Float32Array[] }> {
  const ids = lstm.vocabulary.encode(text);
  let snapshot = (await lstm.step([lstm.zeroState()], [lstm.vocabulary.id('\n')]))[0];
  const before: Float32Array[] = [];
  let nats = 0;
  for (const id of ids) {
    before.push(snapshot.state);
    nats -= snapshot.logProbs[id];
    snapshot = (await lstm.step([snapshot.state], [id]))[0];
  }
  return { nats: nats / ids.length, before };
}

/** Tells `adaptation` of each character of `text`, with the states `lstm` had before each. */
async function observeAll(adaptation: LstmAdaptation, lstm: LstmPredictor, text: string): Promise<void> {
  const { before } = await read(lstm, text);
  lstm.vocabulary.encode(text).forEach((id, i) => adaptation.observe(before[i], id));
}

test('a document adapts its own copy of the LSTM to its text, and the shared weights stay as they were', async () => {
  const shared = new LstmPredictor(randomModel(3, SHAPE));
  const lstms = new AdaptedLstms(shared, 2, FAST);
  const adaptation = new LstmAdaptation(lstms);
  const before = await read(shared, TEXT);
  assert.equal(adaptation.lstm, shared, 'it steps with the shared weights until it has learnt something');

  await observeAll(adaptation, shared, TEXT);
  const taught: number[] = [];
  const copyFor = lstms.copyFor.bind(lstms);
  const watched = new Set<LstmPredictor>();
  lstms.copyFor = (owner) => {
    const copy = copyFor(owner);
    if (watched.has(copy)) return copy;
    watched.add(copy);
    const adapt = copy.adapt.bind(copy);
    copy.adapt = (state, inputs, targets) => {
      inputs.forEach((input, i) => taught.push(input, targets[i]));
      return adapt(state, inputs, targets);
    };
    return copy;
  };
  const segments = Math.floor(([...TEXT].length - 1) / LSTM_ADAPTATION.segment);
  let steps = 0;
  while (adaptation.pending) {
    await adaptation.adaptNext();
    steps++;
  }
  assert.equal(steps, segments, 'one step per segment characters typed, after the first');
  const ids = shared.vocabulary.encode(TEXT);
  const pairs = [...ids.subarray(0, segments * LSTM_ADAPTATION.segment)].flatMap((id, i) => [id, ids[i + 1]]);
  assert.deepEqual(taught, pairs, 'every character typed is taught after the one before, once');
  assert.notEqual(adaptation.lstm, shared);
  const adapted = await read(adaptation.lstm, TEXT);
  assert.ok(adapted.nats < before.nats - 0.01, `${adapted.nats} nats/char after adapting, ${before.nats} before`);
  assert.equal((await read(shared, TEXT)).nats, before.nats, 'the shared weights did not change');
  await assert.rejects(shared.adapt(shared.zeroState(), Int32Array.of(1), Int32Array.of(2)), /only a fork/);
  const tensors = tf.memory().numTensors;
  await observeAll(adaptation, adaptation.lstm, TEXT);
  while (adaptation.pending) await adaptation.adaptNext();
  assert.equal(tf.memory().numTensors, tensors, 'a step leaves no tensors behind');
  lstms.dispose();
  shared.dispose();
});

test("the adaptation's rule: a weight's first step is the rate whatever its gradient's size, and each step pulls every weight back toward the shared one", () => {
  const shared = new Map([['w', Float32Array.of(1, -2, 0.5, 3)]]);
  const settings = { rate: 0.1, squareDecay: 0.9, pullBack: 0.25 };
  const step = new AdaptationStep(shared, settings);
  // The last weight has drifted from the shared one and has no gradient.
  const values = Float32Array.of(1, -2, 0.5, 4);
  step.update('w', values, Float32Array.of(2, -0.001, 0, 0));
  const pulled = (stepped: number, to: number) => stepped + settings.pullBack * (to - stepped);
  const expected = [pulled(1 - 0.1, 1), pulled(-2 + 0.1, -2), 0.5, pulled(4, 3)];
  expected.forEach((want, i) => assert.ok(Math.abs(values[i] - want) < 1e-6, `weight ${i}: ${values[i]}, not ${want}`));
  // Without gradients, each weight's distance to the shared one shrinks by the same share every step.
  const distance = (i: number) => values[i] - shared.get('w')![i];
  const before = [0, 1, 3].map(distance);
  step.update('w', values, new Float32Array(4));
  [0, 1, 3].forEach((i, k) =>
    assert.ok(Math.abs(distance(i) - before[k] * (1 - settings.pullBack)) < 1e-6, `weight ${i}: ${distance(i)}`),
  );
  // The mean squares carry over: the third step's size follows from all three gradients (to within their bfloat16).
  const { squareDecay: d } = settings;
  const meanSquare = d * d * (1 - d) * 4 + (1 - d) * 4;
  const size = settings.rate / Math.sqrt(meanSquare / (1 - d ** 3));
  const first = values[0];
  step.update('w', values, Float32Array.of(2, 0, 0, 0));
  const want = pulled(first - 2 * size, 1);
  assert.ok(Math.abs(values[0] - want) < 2e-3 * size, `weight 0: ${values[0]}, not ${want}`);
  assert.throws(() => step.update('v', values, new Float32Array(4)), /does not match the shared weights/);
});

test('by default, what a document taught its copy is still mostly there after a few thousand characters it did not renew', () => {
  const sharedWeights = Float32Array.of(0.2, -0.4);
  const step = new AdaptationStep(new Map([['w', sharedWeights]]), ADAPTATION_STEP);
  const values = Float32Array.of(0.5, -0.1);
  const taught = values.map((value, i) => value - sharedWeights[i]);
  // Text that teaches these weights nothing, as a note's other paragraphs teach a name's weights.
  const steps = Math.round(2_000 / LSTM_ADAPTATION.segment);
  for (let i = 0; i < steps; i++) step.update('w', values, new Float32Array(2));
  values.forEach((value, i) => {
    const kept = (value - sharedWeights[i]) / taught[i];
    assert.ok(kept > 0.5 && kept < 1, `weight ${i} keeps ${kept} of what it was taught after ${steps} steps`);
  });
});

test('steps taken in the layer kernel on the weights as arrays are the steps tfjs takes, and leave nothing in tfjs', async () => {
  // Two layers, an embedding and a hidden size that are not whole vectors of sixteen, and weights large enough that
  // the gates leave their linear range.
  const shape = { embed: 5, hidden: 20, layers: 2 };
  const saved = () => {
    const model = randomModel(6, shape);
    for (const values of model.weights.values()) for (let i = 0; i < values.length; i++) values[i] *= 6;
    return model;
  };
  const segment = [...TEXT].slice(3, 3 + LSTM_ADAPTATION.segment + 1).join('');
  const adaptedReading = (layerKernel: string | undefined) =>
    withEnv('CHAR_COMPLETE_LAYER_KERNEL', layerKernel, async () => {
      const shared = new LstmPredictor(saved());
      const { before } = await read(shared, TEXT);
      const copy = shared.fork(FAST);
      const ids = shared.vocabulary.encode(segment);
      const tensors = tf.memory().numTensors;
      await copy.adapt(before[3], ids.subarray(0, ids.length - 1), ids.subarray(1));
      // A second step, on arrays a step keeps for the next: it must start from nothing of the first's.
      await copy.adapt(before[5], ids.subarray(1, ids.length - 1), ids.subarray(2));
      const tensorsAdded = tf.memory().numTensors - tensors;
      const reading = await read(copy, TEXT);
      shared.dispose();
      copy.dispose();
      return { reading, tensorsAdded };
    });
  const kernel = await adaptedReading(undefined);
  const tfjs = await adaptedReading('off');
  const unadapted = await read(new LstmPredictor(saved()), TEXT);
  const change = maxDifference(tfjs.reading.before, unadapted.before);
  assert.ok(change > 1e-2, `the step changed the states tfjs reads (by ${change})`);
  const mismatch = maxDifference(kernel.reading.before, tfjs.reading.before);
  assert.ok(mismatch < 1e-4, `the kernel's step and tfjs's differ by ${mismatch} in the states they lead to`);
  assert.ok(Math.abs(kernel.reading.nats - tfjs.reading.nats) < 1e-4, `${kernel.reading.nats} vs ${tfjs.reading.nats}`);
  assert.equal(kernel.tensorsAdded, 0, 'no tfjs tensors for the weights adapted as arrays');
  assert.ok(tfjs.tensorsAdded > 0, 'where tfjs steps, its variables hold them');
});

test("a weight's gradient taken in blocks of rows, which keeps the kernel's memory small, is its gradient taken whole", async () => {
  const kernel = await callingThreadLayerKernel(BUILT_DIRS);
  assert.ok(kernel, 'the layer kernel runs here');
  const model = randomModel(8, { embed: 5, hidden: 20, layers: 2 });
  const ids = model.vocabulary.encode(TEXT.slice(0, LSTM_ADAPTATION.segment + 1));
  const state = new Float32Array(4 * 20).map((_, i) => Math.sin(i));
  const gradients = (blockRows: number) => {
    const taken = new Map<string, Float32Array>();
    const record: WeightUpdate = (name, values, gradient, offset = 0) => {
      const whole = taken.get(name) ?? new Float32Array(values.length).fill(NaN);
      whole.set(gradient.subarray(0, Math.min(gradient.length, values.length - offset)), offset);
      taken.set(name, whole);
    };
    gradientStepInKernel(
      kernel,
      model.config,
      model.weights,
      state,
      ids.subarray(0, -1),
      ids.subarray(1),
      record,
      blockRows,
    );
    return taken;
  };
  const whole = gradients(1000);
  const inBlocks = gradients(3);
  assert.deepEqual([...inBlocks.keys()].sort(), [...whole.keys()].sort());
  for (const [name, gradient] of whole) {
    assert.ok(gradient.every(Number.isFinite), `${name}: every weight has a gradient`);
    assert.ok(maxDifference([inBlocks.get(name)!], [gradient]) <= 1e-7, `${name}: blocks and whole differ`);
  }
  assert.ok(
    maxDifference([whole.get('lstm1/wh')!], [new Float32Array(20 * 80)]) > 1e-4,
    'the gradient is not all zeros',
  );
});

test('a network the layer kernel cannot take, its hidden size not a multiple of 4, adapts through tfjs', async () => {
  const shared = new LstmPredictor(randomModel(7, { embed: 3, hidden: 6, layers: 1 }));
  const { before, nats } = await read(shared, TEXT);
  const copy = shared.fork(FAST);
  const ids = shared.vocabulary.encode(TEXT.slice(0, LSTM_ADAPTATION.segment + 1));
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) await copy.adapt(before[0], ids.subarray(0, ids.length - 1), ids.subarray(1));
  assert.ok(tf.memory().numTensors > tensors, 'its weights went to tfjs variables');
  const adapted = await read(copy, TEXT);
  assert.ok(adapted.nats < nats - 0.01, `${adapted.nats} nats/char after adapting, ${nats} before`);
  shared.dispose();
  copy.dispose();
});

test('only so many documents keep a copy: the least recently adapted gives its copy up and steps with the shared weights', async () => {
  const shared = new LstmPredictor(randomModel(4, SHAPE));
  const lstms = new AdaptedLstms(shared, 1);
  const first = new LstmAdaptation(lstms);
  const second = new LstmAdaptation(lstms);
  await observeAll(first, shared, TEXT);
  await observeAll(second, shared, TEXT);

  await first.adaptNext();
  const firstCopy = first.lstm;
  assert.notEqual(firstCopy, shared);
  await second.adaptNext();
  assert.equal(lstms.size, 1);
  assert.equal(first.lstm, shared, 'the first document gave its copy up');
  assert.notEqual(second.lstm, shared);
  // A document whose copy was given up while it was adapting, or after, adapts a fresh copy without harm.
  await first.adaptNext();
  assert.notEqual(first.lstm, shared);
  assert.equal(second.lstm, shared);
  await (firstCopy as LstmPredictor).adapt(shared.zeroState(), new Int32Array([1, 2]), new Int32Array([2, 3]));
  // Steps still waiting when the model is unloaded are dropped.
  await observeAll(second, shared, TEXT);
  lstms.dispose();
  await second.adaptNext();
  assert.equal(lstms.size, 0, 'nothing is copied once the model is unloaded');
  shared.dispose();
});

test('typing in a session leaves the LSTM steps for idle time, which change what it predicts there only', async () => {
  const dir = tempModelDir('char-complete-adapt');
  randomModel(5, SHAPE, dir);
  const model = loadServedModel(dir);
  const learning = new CompletionSession(model, true);
  const static_ = new CompletionSession(model, true);
  const off = new CompletionSession(model, false);
  // Made before any document has taught the online stages, whose weights a new document starts from, as static_ was.
  const fresh = new CompletionSession(model, true);
  const typed = TEXT.slice(0, 2 * (LSTM_ADAPTATION.segment + 1));
  for (let offset = 0; offset <= typed.length; offset++) {
    await learning.predictAt(TEXT, offset);
    await static_.predictAt(TEXT, offset);
    await off.predictAt(TEXT, offset);
  }
  assert.ok(learning.learningPending, 'steps wait for idle time');
  assert.equal(off.learningPending, false, 'nothing is learnt without learnWhileTyping');
  while (learning.learningPending) await learning.learnWhileIdle();
  assert.equal(model.mixture.adaptedLstms?.size, 1);

  const next = typed.length + 1;
  const adapted = (await learning.predictAt(TEXT, next))!;
  const unadapted = (await static_.predictAt(TEXT, next))!;
  const change = Math.max(...adapted.map((p, i) => Math.abs(p - unadapted[i])));
  assert.ok(change > 1e-4, `the learnt steps changed the document's predictions (by ${change})`);
  for (let offset = 0; offset < next; offset++) await fresh.predictAt(TEXT, offset);
  assert.deepEqual(await fresh.predictAt(TEXT, next), unadapted, "and no other document's");
  model.dispose();
});
