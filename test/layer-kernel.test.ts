// The whole-layer LSTM kernel (wasm SIMD, several threads) against the per-step cell kernels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { NetworkConfig } from '../model/architecture';
import { CharLstm, initialParameters, LstmState, zeroState } from '../model/network';
import { selectBackend } from '../backends/select';
import { LAYER_KERNEL_FILES, LayerKernel, startLayerKernel, useLayerKernel } from '../backends/layer-kernel';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempModelDir } from './support/temp-dirs';

/** max |actual − expected| / max |expected|, so that 1e-5 means five significant digits agree. */
function relativeDifference(actual: tf.Tensor, expected: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(actual, expected))).dataSync()[0] / tf.max(tf.abs(expected)).dataSync()[0]);
}

function carriedState(config: NetworkConfig, batch: number, seed: number): LstmState {
  const state = zeroState(config, batch);
  state.h = state.h.map(
    (_, l) => tf.randomUniform([batch, config.hidden], -0.5, 0.5, 'float32', seed + l) as tf.Tensor2D,
  );
  state.c = state.c.map(
    (_, l) => tf.randomUniform([batch, config.hidden], -1, 1, 'float32', seed + 10 + l) as tf.Tensor2D,
  );
  return state;
}

// Hidden 20 leaves a narrow edge after the 16-column tiles; 64 splits into whole tiles. An odd
// batch leaves a single row; three threads split 20 units unevenly (8, 8, 4).
// The last case steps with half its recurrent weights dropped, which the kernel reads as any other weights.
const cases: Array<{
  hidden: number;
  batch: number;
  steps: number;
  threads: number;
  relaxed: boolean;
  weightDrop: number;
}> = [
  { hidden: 20, batch: 5, steps: 7, threads: 1, relaxed: true, weightDrop: 0 },
  { hidden: 20, batch: 5, steps: 7, threads: 2, relaxed: true, weightDrop: 0 },
  { hidden: 20, batch: 5, steps: 7, threads: 3, relaxed: false, weightDrop: 0 },
  { hidden: 64, batch: 8, steps: 12, threads: 2, relaxed: false, weightDrop: 0 },
  { hidden: 64, batch: 8, steps: 12, threads: 2, relaxed: true, weightDrop: 0 },
  { hidden: 64, batch: 8, steps: 12, threads: 2, relaxed: true, weightDrop: 0.5 },
];

for (const { hidden, batch, steps, threads, relaxed, weightDrop } of cases) {
  test(`hidden ${hidden}, batch ${batch}, ${threads} thread(s), ${relaxed ? 'relaxed SIMD where the runtime has it' : 'plain SIMD'}${weightDrop ? `, recurrent weights dropped at ${weightDrop}` : ''}: gradients within 1e-5 of the per-step kernels`, async () => {
    await selectBackend('wasm');
    const kernel = await LayerKernel.start(__dirname, threads, relaxed);
    // Every product whose width allows it goes through the kernel's matmul too, however small.
    kernel.matmulMinMultiplyAdds = 0;
    try {
      const config: NetworkConfig = { vocabSize: 11, embed: 8, hidden, layers: 2 };
      const model = new CharLstm(config, initialParameters(config, hidden + threads));
      const inputs = Int32Array.from({ length: batch * steps }, (_, i) => (i * 7 + 3) % 11);
      const targets = Int32Array.from({ length: batch * steps }, (_, i) => (i * 5 + 1) % 11);
      const state = carriedState(config, batch, 5);

      useLayerKernel(undefined);
      const reference = await model.trainStep(inputs, targets, batch, steps, state, 0, 1, weightDrop);
      const referenceScores = await model.scoreTargets(inputs, targets, batch, steps, state);
      useLayerKernel(kernel);
      const whole = await model.trainStep(inputs, targets, batch, steps, state, 0, 1, weightDrop);
      const wholeScores = await model.scoreTargets(inputs, targets, batch, steps, state);

      assert.ok(
        Math.abs(whole.loss - reference.loss) <= 1e-6 * reference.loss,
        `loss ${whole.loss} vs ${reference.loss}`,
      );
      for (const [name, expected] of reference.gradients) {
        const difference = relativeDifference(whole.gradients.get(name)!, expected);
        assert.ok(difference <= 1e-5, `${name}: relative difference ${difference}`);
      }
      for (let l = 0; l < config.layers; l++) {
        assert.ok(relativeDifference(whole.state.h[l], reference.state.h[l]) <= 1e-5, `final h of layer ${l}`);
        assert.ok(relativeDifference(whole.state.c[l], reference.state.c[l]) <= 1e-5, `final c of layer ${l}`);
      }
      wholeScores.target.forEach((logP, i) =>
        assert.ok(
          Math.abs(logP - referenceScores.target[i]) < 1e-5,
          `score ${i}: ${logP} vs ${referenceScores.target[i]}`,
        ),
      );
    } finally {
      useLayerKernel(undefined);
      await kernel.close();
    }
  });
}

test('matmul with either operand transposed, and a bias, matches XNNPACK within 1e-5', async () => {
  await selectBackend('wasm');
  const kernel = await LayerKernel.start(__dirname, 2);
  try {
    // K crosses a block boundary; N leaves a 4-column edge after three 16-column tiles; M is odd.
    const [M, N, K] = [37, 52, 300];
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const a = tf.randomUniform(transposeA ? [K, M] : [M, K], -1, 1, 'float32', 1) as tf.Tensor2D;
        const b = tf.randomUniform(transposeB ? [N, K] : [K, N], -1, 1, 'float32', 2) as tf.Tensor2D;
        const bias = tf.randomUniform([N], -1, 1, 'float32', 3) as tf.Tensor1D;
        useLayerKernel(undefined);
        const expected = tf.matMul(a, b, transposeA, transposeB);
        const ours = tf.tensor2d(
          kernel.matmul(a.dataSync() as Float32Array, transposeA, b.dataSync() as Float32Array, transposeB, M, N, K),
          [M, N],
        );
        const withBias = tf.tensor2d(
          kernel.matmul(
            a.dataSync() as Float32Array,
            transposeA,
            b.dataSync() as Float32Array,
            transposeB,
            M,
            N,
            K,
            bias.dataSync() as Float32Array,
          ),
          [M, N],
        );
        const label = `transposeA ${transposeA}, transposeB ${transposeB}`;
        assert.ok(relativeDifference(ours, expected) <= 1e-5, `${label}: ${relativeDifference(ours, expected)}`);
        assert.ok(relativeDifference(withBias, tf.add(expected, bias)) <= 1e-5, `${label} with bias`);
        // The same product asked of tfjs, routed to the kernel by the registered BatchMatMul.
        useLayerKernel(kernel);
        kernel.matmulMinMultiplyAdds = 0;
        const routed = tf.matMul(a, b, transposeA, transposeB);
        assert.ok(relativeDifference(routed, expected) <= 1e-5, `${label}: routed through tfjs`);
        useLayerKernel(undefined);
      }
    }
    assert.throws(
      () => kernel.matmul(new Float32Array(6), false, new Float32Array(6), false, 2, 3, 2),
      /N a multiple of 4/,
    );
  } finally {
    useLayerKernel(undefined);
    await kernel.close();
  }
});

test("arrays resident in the kernel's memory are read in place, with the results of the same arrays copied in, and a released block goes to the next arrays that fit", async () => {
  await selectBackend('wasm');
  const kernel = await LayerKernel.start(__dirname, 2);
  try {
    const [B, H, T] = [3, 20, 5];
    const G = 4 * H;
    const random = (n: number, seed: number) =>
      tf.randomUniform([n], -1, 1, 'float32', seed).dataSync() as Float32Array;
    const wh = random(H * G, 1);
    const xProj = random(T * B * G, 2);
    const h0 = random(B * H, 3);
    const c0 = random(B * H, 4);
    const dH = random(T * B * H, 5);
    const a = random(T * H, 6);
    const run = (weights: Float32Array) => {
      const { hSeq } = kernel.forward(0, B, H, T, xProj, weights, h0, c0, true);
      const states = hSeq.slice();
      const dZ = kernel.backward(0, dH, weights).slice();
      const product = kernel.matmul(a, false, weights, false, T, G, H, weights.subarray(0, G)).slice();
      return { states, dZ, product };
    };
    const copied = run(wh);
    const resident = kernel.residentArray(wh.length);
    resident.set(wh);
    const inPlace = run(resident);
    for (const part of ['states', 'dZ', 'product'] as const)
      assert.deepEqual(inPlace[part], copied[part], `${part} from the resident weights`);
    // A job writes nothing into the weights it reads in place.
    assert.deepEqual(resident, wh);

    const other = kernel.residentArray(wh.length);
    assert.notEqual(other.byteOffset, resident.byteOffset, 'two arrays held at once have blocks of their own');
    kernel.releaseResident(resident);
    const again = kernel.residentArray(wh.length);
    assert.equal(again.byteOffset, resident.byteOffset, 'the released block is used again');
    assert.throws(() => kernel.releaseResident(wh), /not in its memory/);
    // Another model's smaller arrays take the blocks of larger ones given back, the smallest that fits first.
    kernel.releaseResident(other);
    kernel.releaseResident(again);
    const small = kernel.residentArray(100);
    assert.ok([other.byteOffset, again.byteOffset].includes(small.byteOffset), 'a smaller array fits a released block');
    kernel.releaseResident(small);
    assert.throws(() => kernel.releaseResident(small), /not in its memory/, 'a block is given back once');
  } finally {
    await kernel.close();
  }
});

test('a product with a transposed operand, on wasm, matches the product of the operands transposed first, whichever is large', async () => {
  await selectBackend('wasm');
  useLayerKernel(undefined);
  // A few rows against a wide matrix (the wrapper multiplies transposed and transposes the result
  // back), the reverse (it transposes the small operand first), and a batch of each.
  for (const [batch, M, N, K] of [
    [0, 3, 48, 64],
    [0, 48, 3, 64],
    [2, 3, 40, 24],
  ]) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const shape = (rows: number, columns: number) => (batch ? [batch, rows, columns] : [rows, columns]);
        const a = tf.randomUniform(transposeA ? shape(K, M) : shape(M, K), -1, 1, 'float32', 4);
        const b = tf.randomUniform(transposeB ? shape(N, K) : shape(K, N), -1, 1, 'float32', 5);
        const swap = (x: tf.Tensor) => tf.transpose(x, batch ? [0, 2, 1] : [1, 0]);
        const expected = tf.matMul(transposeA ? swap(a) : a, transposeB ? swap(b) : b);
        const product = tf.matMul(a, b, transposeA, transposeB);
        const label = `batch ${batch}, ${M}×${K}·${K}×${N}, transposeA ${transposeA}, transposeB ${transposeB}`;
        assert.deepEqual(product.shape, expected.shape, label);
        assert.ok(relativeDifference(product, expected) <= 1e-5, `${label}: ${relativeDifference(product, expected)}`);
      }
    }
  }
});

test("a layer or product too big for the kernel's memory runs on the per-step kernels and XNNPACK, with the same gradients", async () => {
  await selectBackend('wasm');
  // 10 MiB: with X = steps·batch·hidden floats, the first layer needs about 16X = 8 MiB (its trace,
  // input projection and what its backward pass reserves), the second layer 7X more; so the first
  // runs in the kernel, the second on the per-step kernels, and the input projection between them
  // (5X) on XNNPACK.
  const kernel = await LayerKernel.start(__dirname, 2, true, 160);
  kernel.matmulMinMultiplyAdds = 0;
  try {
    const [batch, steps] = [32, 64];
    const config: NetworkConfig = { vocabSize: 11, embed: 8, hidden: 64, layers: 2 };
    const model = new CharLstm(config, initialParameters(config, 3));
    const inputs = Int32Array.from({ length: batch * steps }, (_, i) => (i * 7 + 3) % 11);
    const state = carriedState(config, batch, 9);
    useLayerKernel(undefined);
    const reference = await model.trainStep(inputs, inputs, batch, steps, state, 0, 1);
    useLayerKernel(kernel);
    const mixed = await model.trainStep(inputs, inputs, batch, steps, state, 0, 1);
    for (const [name, expected] of reference.gradients) {
      const difference = relativeDifference(mixed.gradients.get(name)!, expected);
      assert.ok(difference <= 1e-5, `${name}: relative difference ${difference}`);
    }
  } finally {
    useLayerKernel(undefined);
    await kernel.close();
  }
});

test('a backward pass without its forward pass is refused', async () => {
  const kernel = await LayerKernel.start(__dirname, 2);
  try {
    assert.throws(() => kernel.backward(0, new Float32Array(16), new Float32Array(64)), /no forward pass of layer 0/);
    assert.throws(
      () =>
        kernel.forward(
          0,
          2,
          6,
          3,
          new Float32Array(144),
          new Float32Array(144),
          new Float32Array(12),
          new Float32Array(12),
          true,
        ),
      /hidden a multiple of 4/,
    );
  } finally {
    await kernel.close();
  }
});

test('without its files, or without worker threads, the per-step kernels run and the line says why', async () => {
  const empty = tempModelDir('no-kernel');
  mkdirSync(empty, { recursive: true });
  const missing = await startLayerKernel([empty]);
  assert.match(
    missing,
    /^LSTM layers: per-step kernels \(the whole-layer kernel cannot run: lstm-layer\.simd\.wasm is missing next to the bundle; run npm run build\)$/,
  );

  const noThreads = tempModelDir('no-threads');
  mkdirSync(noThreads, { recursive: true });
  for (const file of [LAYER_KERNEL_FILES.relaxed, LAYER_KERNEL_FILES.simd])
    copyFileSync(join(__dirname, file), join(noThreads, file));
  writeFileSync(join(noThreads, LAYER_KERNEL_FILES.worker), "throw new Error('no threads here');\n");
  const line = await startLayerKernel([noThreads]);
  assert.match(
    line,
    /^LSTM layers: per-step kernels \(the whole-layer kernel cannot run: worker threads failed to start \(no threads here\)\)$/,
  );
});
