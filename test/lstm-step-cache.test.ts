// The served LSTM keeps its latest steps and answers them again without stepping: the same answers, and none kept
// past a change of the weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LstmStepCache } from '../model/lstm-step-cache';
import { LstmPredictor } from '../model/predictor';
import { ADAPTATION_STEP } from '../model/lstm-adaptation-step';
import { seededRandom } from '../model/random';
import { randomModel } from './support/random-model';

const SHAPE = { embed: 8, hidden: 16, layers: 2 };

function randomStates(lstm: LstmPredictor, count: number, seed: number): Float32Array[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => lstm.zeroState().map(() => random() - 0.5));
}

const snapshotOf = (value: number, length = 4) => ({
  state: new Float32Array(length).fill(value),
  logProbs: new Float32Array(3).fill(-value),
});

test('the cache answers a state and id it holds with a copy of what was kept, and nothing for any other', () => {
  const cache = new LstmStepCache(4);
  const from = Float32Array.of(0.25, -0.5, 1, 0);
  cache.set(from, 7, snapshotOf(3));
  const found = cache.get(Float32Array.from(from), 7);
  assert.deepEqual(found, snapshotOf(3));
  found!.state.fill(9);
  assert.deepEqual(cache.get(from, 7), snapshotOf(3), 'a copy: changing what it gave changes nothing kept');
  assert.equal(cache.get(from, 8), undefined, 'another id');
  assert.equal(cache.get(Float32Array.of(0.25, -0.5, 1, -0), 7), undefined, 'another state, if only by the sign of 0');
  from[0] = 2;
  assert.equal(cache.get(from, 7), undefined, 'the array it was given, changed, is another state');
  assert.ok(cache.get(Float32Array.of(0.25, -0.5, 1, 0), 7), 'for it kept a copy of the state');
});

test('two states that share a key, differing only where the key does not look, are told apart', () => {
  const cache = new LstmStepCache(4);
  const kept = new Float32Array(4096).map((_, i) => Math.sin(i));
  const other = kept.slice();
  other[4095] += 1;
  cache.set(kept, 2, snapshotOf(1, 4096));
  assert.equal(cache.get(other, 2), undefined);
  assert.ok(cache.get(kept, 2));
});

test('a full cache lets go of the state used least recently', () => {
  const cache = new LstmStepCache(2);
  const states = [1, 2, 3].map((v) => Float32Array.of(v, v));
  cache.set(states[0], 1, snapshotOf(1, 2));
  cache.set(states[1], 1, snapshotOf(2, 2));
  assert.ok(cache.get(states[0], 1), 'used again, so the first is now the more recent');
  cache.set(states[2], 1, snapshotOf(3, 2));
  assert.equal(cache.size, 2);
  assert.ok(cache.get(states[0], 1));
  assert.equal(cache.get(states[1], 1), undefined);
  assert.ok(cache.get(states[2], 1));
  const none = new LstmStepCache(0);
  none.set(states[0], 1, snapshotOf(1, 2));
  assert.equal(none.get(states[0], 1), undefined, 'a cache of no steps keeps none');
});

test('an LSTM that keeps its steps steps as one that does not, a step taken again included', async () => {
  const saved = randomModel(3, SHAPE);
  const plain = new LstmPredictor(saved);
  const caching = new LstmPredictor(saved, 16);
  try {
    assert.match(caching.stepsRunOn(), /^the step kernel/);
    const states = randomStates(plain, 3, 5);
    const ids = [1, 2, 3];
    const expected = await plain.step(states, ids);
    const first = await caching.step(states, ids);
    // Two rows taken before and one new, in one call: the answers line up with their rows.
    const mixed = await caching.step([states[2], randomStates(plain, 1, 9)[0], states[0]], [3, 4, 1]);
    const mixedExpected = await plain.step([states[2], randomStates(plain, 1, 9)[0], states[0]], [3, 4, 1]);
    assert.deepEqual(first, expected);
    assert.deepEqual(mixed, mixedExpected);
    assert.notDeepEqual(mixed[0], mixed[2]);
  } finally {
    plain.dispose();
    caching.dispose();
  }
});

test('an LSTM that has adapted steps with its new weights, not from what it kept before', async () => {
  const settings = { ...ADAPTATION_STEP, rate: 0.03 };
  const shared = new LstmPredictor(randomModel(4, SHAPE), 16);
  const copy = shared.fork(settings);
  const uncached = new LstmPredictor(randomModel(4, SHAPE), 0);
  const uncachedCopy = uncached.fork(settings);
  try {
    const states = randomStates(shared, 2, 6);
    const before = await copy.step(states, [1, 2]);
    assert.deepEqual(
      before,
      await shared.step(states, [1, 2]),
      'a copy that has not adapted steps as the shared weights',
    );
    const ids = shared.vocabulary.encode('the cat sat on the mat');
    for (const lstm of [copy, uncachedCopy])
      await lstm.adapt(states[0], ids.subarray(0, ids.length - 1), ids.subarray(1));
    const after = await copy.step(states, [1, 2]);
    assert.deepEqual(after, await uncachedCopy.step(states, [1, 2]));
    assert.notDeepEqual(after, before);
  } finally {
    for (const lstm of [shared, copy, uncached, uncachedCopy]) lstm.dispose();
  }
});
