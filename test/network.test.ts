// The hand-written LSTM backward pass and fused cell kernels against tfjs autodiff and plain ops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { NetworkConfig } from '../model/architecture';
import { CharLstm, dropoutMask, initialParameters, StepResult, zeroState } from '../model/network';
import { selectBackend } from '../backends/select';
import { lstmCellBackward, lstmCellForward } from '../backends/lstm-cell';

const config: NetworkConfig = { vocabSize: 7, embed: 5, hidden: 6, layers: 2 };
const batch = 3;
const steps = 4;
const inputs = Int32Array.from({ length: batch * steps }, (_, i) => (i * 5 + 1) % 7);
const targets = Int32Array.from({ length: batch * steps }, (_, i) => (i * 3 + 2) % 7);

/** trainStep's loss and gradients against tfjs's autodiff of `loss`, to 1e-4 of each gradient's scale. */
function assertGradientsMatch(model: CharLstm, ours: StepResult, loss: () => tf.Scalar): void {
  const reference = tf.variableGrads(loss);
  assert.ok(Math.abs(ours.loss - reference.value.dataSync()[0]) < 1e-5, 'loss differs');
  for (const [name, variable] of model.params) {
    const diff = tf.max(tf.abs(tf.sub(ours.gradients.get(name)!, reference.grads[variable.name]))).dataSync()[0];
    assert.ok(
      diff <= 1e-4 * Math.max(1, tf.max(tf.abs(reference.grads[variable.name])).dataSync()[0]),
      `${name}: max abs difference ${diff}`,
    );
  }
}

test('hand-written backward pass matches tfjs autodiff', async () => {
  await selectBackend('wasm');
  const model = new CharLstm(config, initialParameters(config, 42));
  const state = zeroState(config, batch);
  // A non-zero carried state exercises the h0/c0 terms of the gradient.
  state.h[0] = tf.fill([batch, config.hidden], 0.3) as tf.Tensor2D;
  state.c[1] = tf.fill([batch, config.hidden], -0.2) as tf.Tensor2D;

  const ours = await model.trainStep(inputs, targets, batch, steps, state, 0, 1);
  const reference = tf.variableGrads(() => model.lossTensor(inputs, targets, batch, steps, state).loss);

  assert.ok(Math.abs(ours.loss - reference.value.dataSync()[0]) < 1e-5, 'loss differs');
  assert.equal(ours.gradients.size, model.params.size);
  for (const [name, variable] of model.params) {
    const expected = reference.grads[variable.name];
    const actual = ours.gradients.get(name);
    assert.ok(actual, `missing gradient for ${name}`);
    assert.deepEqual(actual.shape, expected.shape, name);
    const diff = tf.max(tf.abs(tf.sub(actual, expected))).dataSync()[0];
    const scale = tf.max(tf.abs(expected)).dataSync()[0];
    assert.ok(scale > 0, `${name}: reference gradient is all zero`);
    assert.ok(diff <= 1e-4 * Math.max(1, scale), `${name}: max abs difference ${diff}`);
  }
});

test('state carried across windows equals one long window', async () => {
  await selectBackend('wasm');
  const model = new CharLstm(config, initialParameters(config, 7));
  const long = Int32Array.from({ length: 2 * steps }, (_, i) => (i * 2 + 1) % 7);
  const next = Int32Array.from({ length: 2 * steps }, (_, i) => (i * 4 + 3) % 7);
  const whole = await model.scoreTargets(long, next, 1, 2 * steps, zeroState(config, 1));
  const first = await model.scoreTargets(long.slice(0, steps), next.slice(0, steps), 1, steps, zeroState(config, 1));
  const second = await model.scoreTargets(long.slice(steps), next.slice(steps), 1, steps, first.state);
  const parts = [...first.target, ...second.target];
  whole.target.forEach((logP, t) =>
    assert.ok(Math.abs(logP - parts[t]) < 1e-5, `position ${t}: ${logP} vs ${parts[t]}`),
  );
});

test('the plain-op LSTM cell (GPU backends) matches the fused kernels forward and backward', async () => {
  await selectBackend('wasm');
  const B = 3;
  const H = 5;
  const random = (shape: [number, number], seed: number) =>
    tf.randomUniform(shape, -2, 2, 'float32', seed) as tf.Tensor2D;
  const recurrent = random([B, 4 * H], 1);
  const inputProjection = random([2 * B, 4 * H], 2);
  const cPrev = random([B, H], 3);
  const dH = random([2 * B, H], 4);
  const dhNext = random([B, H], 5);
  const dcNext = random([B, H], 6);
  const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
  const fused = lstmCellForward(recurrent, inputProjection, B, cPrev, true);
  const plain = lstmCellForward(recurrent, inputProjection, B, cPrev, false);
  for (const key of ['acts', 'c', 'tanhC', 'h'] as const) {
    assert.ok(maxDiff(fused[key], plain[key]) < 1e-5, `forward ${key} differs by ${maxDiff(fused[key], plain[key])}`);
  }
  assert.ok(tf.max(tf.abs(plain.h)).dataSync()[0] > 0.05, 'the test inputs give a non-trivial state');
  const fusedBack = lstmCellBackward(dH, B, dhNext, dcNext, fused.acts, cPrev, fused.tanhC, true);
  const plainBack = lstmCellBackward(dH, B, dhNext, dcNext, plain.acts, cPrev, plain.tanhC, false);
  assert.ok(maxDiff(fusedBack.dZ, plainBack.dZ) < 1e-5, `dZ differs by ${maxDiff(fusedBack.dZ, plainBack.dZ)}`);
  assert.ok(maxDiff(fusedBack.dcPrev, plainBack.dcPrev) < 1e-5, 'dcPrev differs');
});

test('with dropout, the hand-written backward pass still matches autodiff through the same masks', async () => {
  await selectBackend('wasm');
  const model = new CharLstm(config, initialParameters(config, 11));
  const state = zeroState(config, batch);
  const ours = await model.trainStep(inputs, targets, batch, steps, state, 0.3, 5);
  assertGradientsMatch(model, ours, () => model.lossTensor(inputs, targets, batch, steps, state, 0.3, 5).loss);
});

test('with recurrent weights dropped, the hand-written backward pass matches autodiff through the same mask', async () => {
  await selectBackend('wasm');
  const model = new CharLstm(config, initialParameters(config, 13));
  const state = zeroState(config, batch);
  state.h[1] = tf.fill([batch, config.hidden], 0.4) as tf.Tensor2D;
  const ours = await model.trainStep(inputs, targets, batch, steps, state, 0.2, 9, 0.5);
  assertGradientsMatch(
    model,
    ours,
    () => model.lossTensor(inputs, targets, batch, steps, state, 0.2, 9, false, 0.5).loss,
  );
  // A dropped weight takes no gradient, and the step is another function than the one without the drop.
  const recurrentGradient = ours.gradients.get('lstm0/wh')!.dataSync();
  const zeros = recurrentGradient.filter((v) => v === 0).length / recurrentGradient.length;
  assert.ok(zeros > 0.3 && zeros < 0.7, `a share ${zeros} of lstm0/wh's gradient is zero`);
  const undropped = await model.trainStep(inputs, targets, batch, steps, state, 0.2, 9);
  assert.ok(Math.abs(undropped.loss - ours.loss) > 1e-4, `the loss ${ours.loss} is the undropped step's`);
});

test('dropout masks drop the given share, scale the rest, and follow their seed', async () => {
  await selectBackend('wasm');
  const values = (seed: number) => dropoutMask([400, 250], 0.25, seed).dataSync();
  const mask = values(7);
  const dropped = mask.filter((v) => v === 0).length / mask.length;
  assert.ok(Math.abs(dropped - 0.25) < 0.01, `dropped ${dropped}`);
  assert.ok(
    mask.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6),
    'kept units are scaled by 1/(1-rate)',
  );
  assert.deepEqual(values(7), mask, 'the same seed gives the same mask');
  const other = values(8);
  assert.ok(
    other.some((v, i) => v !== mask[i]),
    'another seed gives another mask',
  );
});
