// The step kernel that serves single LSTM steps on the CPU, against the same steps through tfjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LstmStepKernel, stepWeightsWanted } from '../backends/step-kernel';
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

/** The names the kernel holds rounded (bfloat16, 8-bit): every product's weights but layer 0's input, a table of floats. */
const ROUNDED_WHEN_HELD = /^(lstm\d+\/wh|lstm[1-9]\d*\/wx|output\/w)$/;

/** `saved` with the weights of its products rounded by `round`, as a kernel that holds them rounded multiplies by. */
function withProductsRounded(
  saved: SavedModel,
  round: (values: Float32Array, name: string) => Float32Array,
): SavedModel {
  return {
    ...saved,
    weights: new Map(
      [...saved.weights].map(([name, values]) => [name, ROUNDED_WHEN_HELD.test(name) ? round(values, name) : values]),
    ),
  };
}

for (const batch of [1, 3, 70]) {
  test(`2×20, batch ${batch}: weights held in bfloat16 step as tfjs steps the same weights rounded`, async () => {
    const saved = model(batch, { embed: 5, hidden: 20, layers: 2 });
    const rounded = withProductsRounded(saved, roundedToBf16);
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

/** The weights an 8-bit step kernel multiplies by: each column's rounded to 255 levels spanning its largest |w|. */
function roundedToI8(values: Float32Array, columns: number): Float32Array {
  const scales = new Float32Array(columns);
  values.forEach((w, i) => (scales[i % columns] = Math.max(scales[i % columns], Math.abs(w) / 127)));
  return values.map((w, i) =>
    scales[i % columns] > 0 ? Math.round(w / scales[i % columns]) * scales[i % columns] : 0,
  );
}

for (const batch of [1, 3, 70]) {
  test(`2×20, batch ${batch}: weights held as 8-bit integers step as tfjs steps the same weights rounded, each row as alone`, async () => {
    const saved = model(batch, { embed: 5, hidden: 20, layers: 2 });
    const rounded = withProductsRounded(saved, (values, name) =>
      roundedToI8(values, name === 'output/w' ? saved.config.vocabSize : 4 * saved.config.hidden),
    );
    const kernel = new LstmStepKernel(saved.config, saved.weights, 'i8');
    const { states, ids } = randomBatch(saved, batch, 11);
    const stepped = kernel.step(states, ids);
    const logProbs = states.map((_, b) =>
      logSoftmax(stepped.logits.subarray(b * stepped.stride, b * stepped.stride + saved.config.vocabSize)),
    );
    const expected = await stepThroughTfjs(rounded, states, ids);
    const unrounded = await stepThroughTfjs(saved, states, ids);
    const heldDiffer = maxDifference(
      logProbs,
      expected.map((s) => s.logProbs),
    );
    const unroundedDiffer = maxDifference(
      logProbs,
      unrounded.map((s) => s.logProbs),
    );
    // What is left is the state's values rounded to 1/4096 on their way into each product.
    assert.ok(heldDiffer < 2e-2, `log-probabilities differ by ${heldDiffer}`);
    assert.ok(heldDiffer < unroundedDiffer / 4, `by ${heldDiffer}, from the weights unrounded by ${unroundedDiffer}`);
    const last = batch - 1;
    const alone = kernel.step([states[last]], [ids[last]]);
    assert.deepEqual(alone.states[0], stepped.states[last], 'a row steps the same with others as alone');
  });
}

test('a served LSTM steps with its weights in 8-bit integers unless CHAR_COMPLETE_STEP_WEIGHTS says bf16 or f32', async () => {
  const saved = model(5, { embed: 5, hidden: 20, layers: 2 });
  const { states, ids } = randomBatch(saved, 2, 5);
  const served = (weights: string | undefined) =>
    withEnv('CHAR_COMPLETE_STEP_WEIGHTS', weights, async () => {
      const predictor = new LstmPredictor(saved);
      try {
        return { runsOn: predictor.stepsRunOn(), states: (await predictor.step(states, ids)).map((s) => s.state) };
      } finally {
        predictor.dispose();
      }
    });
  const byDefault = await served(undefined);
  const asBf16 = await served('bf16');
  const asF32 = await served('f32');
  assert.equal(byDefault.runsOn, 'the step kernel, weights in 8-bit integers');
  assert.equal(asBf16.runsOn, 'the step kernel, weights in bfloat16');
  assert.equal(asF32.runsOn, 'the step kernel, weights in f32');
  for (const [held, steps] of [
    ['i8', byDefault.states],
    ['bf16', asBf16.states],
  ] as const) {
    const direct = new LstmStepKernel(saved.config, saved.weights, held).step(states, ids).states;
    assert.equal(maxDifference(steps, direct), 0, `${held} is the kernel that holds its weights so`);
    assert.ok(maxDifference(steps, asF32.states) > 1e-4, `and ${held} steps otherwise than f32`);
  }
});

test('a network too wide (or a vocabulary too large) for the 8-bit products holds its weights in bfloat16, and the variable chooses over both', () =>
  withEnv('CHAR_COMPLETE_STEP_WEIGHTS', undefined, async () => {
    const shape = (hidden: number) => ({ vocabSize: 97, embed: 4, hidden, layers: 2 });
    assert.equal(stepWeightsWanted(shape(4096)), 'i8');
    assert.equal(stepWeightsWanted(shape(4100)), 'bf16');
    assert.equal(stepWeightsWanted({ ...shape(512), vocabSize: 40_000 }), 'bf16');
    await withEnv('CHAR_COMPLETE_STEP_WEIGHTS', 'bf16', async () =>
      assert.equal(stepWeightsWanted(shape(512)), 'bf16'),
    );
    await withEnv('CHAR_COMPLETE_STEP_WEIGHTS', 'f32', async () => assert.equal(stepWeightsWanted(shape(8192)), 'f32'));
  }));

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
