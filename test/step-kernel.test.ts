// The step kernel that serves single LSTM steps on the CPU, against the same steps through tfjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LstmStepKernel } from '../backends/step-kernel';
import { LstmPredictor, logSoftmax } from '../model/predictor';
import type { SavedModel } from '../model/format';
import { seededRandom } from '../model/random';
import { randomModel } from './support/random-model';
import { maxDifference } from './support/arrays';
import { withEnv } from './support/env';

/** A random model with weights large enough that the gates leave their linear range. */
function model(seed: number, shape: { embed: number; hidden: number; layers: number }): SavedModel {
  const saved = randomModel(seed, shape);
  for (const values of saved.weights.values()) for (let i = 0; i < values.length; i++) values[i] *= 8;
  return saved;
}

/** Steps `saved` through tfjs, whatever the backend. */
function stepThroughTfjs(saved: SavedModel, states: Float32Array[], ids: number[]) {
  return withEnv('CHAR_COMPLETE_STEP_KERNEL', 'off', async () => {
    const predictor = new LstmPredictor(saved);
    try {
      assert.match(predictor.stepsRunOn(), /^tfjs on .*CHAR_COMPLETE_STEP_KERNEL is off/);
      return await predictor.step(states, ids);
    } finally {
      predictor.dispose();
    }
  });
}

function randomBatch(saved: SavedModel, batch: number, seed: number): { states: Float32Array[]; ids: number[] } {
  const random = seededRandom(seed);
  const { hidden, layers, vocabSize } = saved.config;
  const states = Array.from({ length: batch }, () =>
    Float32Array.from({ length: 2 * layers * hidden }, (_, i) =>
      Math.floor(i / hidden) % 2 === 0 ? random() - 0.5 : 2 * random() - 1,
    ),
  );
  const ids = Array.from({ length: batch }, () => 1 + Math.floor(random() * (vocabSize - 1)));
  return { states, ids };
}

// Hidden 20 leaves a four-column edge after the sixteen-column tiles; the vocabulary of 97 is not
// whole vectors, so the output is padded. Batch 1 and 3 take the single-row path, 70 is more
// rows than one call of the kernel takes.
for (const shape of [
  { embed: 5, hidden: 20, layers: 2 },
  { embed: 4, hidden: 8, layers: 3 },
]) {
  for (const batch of [1, 3, 70]) {
    test(`${shape.layers}×${shape.hidden}, batch ${batch}: the step kernel's states and log-probabilities match tfjs's`, () =>
      withEnv('CHAR_COMPLETE_STEP_WEIGHTS', 'f32', async () => {
        const saved = model(batch + shape.hidden, shape);
        const kernel = new LstmPredictor(saved);
        assert.equal(kernel.stepsRunOn(), 'the step kernel, weights in f32');
        const { states, ids } = randomBatch(saved, batch, 7);
        let ours = await kernel.step(states, ids);
        let theirs = await stepThroughTfjs(saved, states, ids);
        // A second step from the states each reached, so that a wrong state would show in what follows.
        const again = ids.map((id) => (id % (saved.config.vocabSize - 1)) + 1);
        ours = await kernel.step(
          ours.map((s) => s.state),
          again,
        );
        theirs = await stepThroughTfjs(
          saved,
          theirs.map((s) => s.state),
          again,
        );
        const states2 = maxDifference(
          ours.map((s) => s.state),
          theirs.map((s) => s.state),
        );
        const logProbs = maxDifference(
          ours.map((s) => s.logProbs),
          theirs.map((s) => s.logProbs),
        );
        assert.ok(states2 < 1e-5, `states differ by ${states2}`);
        assert.ok(logProbs < 1e-4, `log-probabilities differ by ${logProbs}`);
        assert.ok(
          ours.every((s) => s.logProbs.length === saved.config.vocabSize),
          'one log-probability per symbol, none for the padding',
        );
        kernel.dispose();
      }));
  }
}

/** The weights a bfloat16 step kernel multiplies by: each rounded to its top 16 bits, to nearest with ties to even. */
function roundedToBf16(values: Float32Array): Float32Array {
  const rounded = values.slice();
  const bits = new Uint32Array(rounded.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = (((bits[i] + 0x7fff + ((bits[i] >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return rounded;
}

/** The names the kernel holds in bfloat16: every product's weights but layer 0's input, which is a table of floats. */
const BF16_HELD = /^(lstm\d+\/wh|lstm[1-9]\d*\/wx|output\/w)$/;

for (const batch of [1, 3, 70]) {
  test(`2×20, batch ${batch}: weights held in bfloat16 step as tfjs steps the same weights rounded`, async () => {
    const saved = model(batch, { embed: 5, hidden: 20, layers: 2 });
    const rounded = {
      ...saved,
      weights: new Map(
        [...saved.weights].map(([name, values]) => [name, BF16_HELD.test(name) ? roundedToBf16(values) : values]),
      ),
    };
    const kernel = new LstmStepKernel(saved.config, saved.weights, 'bf16');
    const { states, ids } = randomBatch(saved, batch, 11);
    const { states: next, logits, stride } = kernel.step(states, ids);
    const logProbs = next.map((_, b) => logSoftmax(logits.subarray(b * stride, b * stride + saved.config.vocabSize)));
    const expected = await stepThroughTfjs(rounded, states, ids);
    const unrounded = await stepThroughTfjs(saved, states, ids);
    const statesDiffer = maxDifference(
      next,
      expected.map((s) => s.state),
    );
    const logProbsDiffer = maxDifference(
      logProbs,
      expected.map((s) => s.logProbs),
    );
    assert.ok(statesDiffer < 1e-5, `states differ by ${statesDiffer}`);
    assert.ok(logProbsDiffer < 1e-4, `log-probabilities differ by ${logProbsDiffer}`);
    assert.ok(
      maxDifference(
        logProbs,
        unrounded.map((s) => s.logProbs),
      ) > 1e-3,
      'and the weights are rounded: unrounded, they step otherwise',
    );
  });
}

test('a served LSTM steps with its weights in bfloat16 unless CHAR_COMPLETE_STEP_WEIGHTS says f32', async () => {
  const saved = model(5, { embed: 5, hidden: 20, layers: 2 });
  const { states, ids } = randomBatch(saved, 2, 5);
  const served = (weights: string | undefined) =>
    withEnv('CHAR_COMPLETE_STEP_WEIGHTS', weights, async () => {
      const predictor = new LstmPredictor(saved);
      try {
        return { runsOn: predictor.stepsRunOn(), steps: await predictor.step(states, ids) };
      } finally {
        predictor.dispose();
      }
    });
  const byDefault = await served(undefined);
  const asF32 = await served('f32');
  const direct = new LstmStepKernel(saved.config, saved.weights, 'bf16').step(states, ids).states;
  assert.equal(byDefault.runsOn, 'the step kernel, weights in bfloat16');
  assert.equal(asF32.runsOn, 'the step kernel, weights in f32');
  assert.equal(
    maxDifference(
      byDefault.steps.map((s) => s.state),
      direct,
    ),
    0,
    'the default is the bfloat16 kernel',
  );
  assert.ok(
    maxDifference(
      byDefault.steps.map((s) => s.state),
      asF32.steps.map((s) => s.state),
    ) > 1e-4,
  );
});

test('the step kernel takes new weights in place of those it packed, as after an adaptation step', async () => {
  const shape = { embed: 5, hidden: 20, layers: 2 };
  const first = model(1, shape);
  const second = model(2, shape);
  const kernel = new LstmStepKernel(first.config, first.weights);
  const { states, ids } = randomBatch(first, 2, 3);
  const before = kernel.step(states, ids).states;
  kernel.load(second.weights);
  const after = kernel.step(states, ids).states;
  const expected = (await stepThroughTfjs(second, states, ids)).map((s) => s.state);
  assert.ok(maxDifference(after, expected) < 1e-5, 'the new weights are the ones used');
  assert.ok(maxDifference(before, expected) > 1e-2, 'and they differ from the old ones');
  assert.throws(() => kernel.step([states[0]], [first.config.vocabSize]), /outside the vocabulary/);
});

test('a network too large for the kernel’s memory is refused with its size, before anything is allocated', () => {
  const config = { vocabSize: 97, embed: 4, hidden: 8192, layers: 4 };
  assert.throws(
    () => new LstmStepKernel(config, new Map()),
    /the network needs \d+ MiB, more than the kernel's 2048 MiB/,
  );
});
