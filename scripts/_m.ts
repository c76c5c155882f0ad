import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../model/backend';
function time(label: string, fn: () => tf.Tensor, n = 200) {
  for (let i = 0; i < 20; i++) fn().dispose();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) { const r = fn(); r.dispose(); }
  console.log(label, ((performance.now() - t0) / n * 1000).toFixed(0), 'us');
}
(async () => {
  await selectBackend('wasm');
  const z = tf.randomNormal([64, 1024]); const s = tf.randomNormal([64, 256]); const sc = tf.tensor1d(Array.from({length:1024},(_, i)=> i>=768?2:1));
  time('sigmoid 64x1024', () => tf.sigmoid(z));
  time('tanh 64x256', () => tf.tanh(s));
  time('mul bcast 64x1024', () => tf.mul(z, sc));
  time('add 64x1024', () => tf.add(z, z));
  const h = tf.randomNormal([64, 256]); const wh = tf.randomNormal([256, 1024]);
  time('matMul 64x256x1024', () => tf.matMul(h, wh));
  const big = tf.randomNormal([4096, 256]);
  time('matMul 4096x256x1024', () => tf.matMul(big, wh), 10);
  process.exit(0);
})();
