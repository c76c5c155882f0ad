import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../model/backend';
import { CharLstm, initialParameters, zeroState, disposeState } from '../model/network';
import { Adam } from '../model/optimizer';
(async () => {
  console.log(await selectBackend(process.argv[2] as any ?? 'auto'));
  const config = { vocabSize: 65, embed: 64, hidden: 256, layers: 2 };
  const model = new CharLstm(config, initialParameters(config, 1));
  const opt = new Adam(model.params);
  const B = 64, T = 64;
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7) % 65);
  let state = zeroState(config, B);
  const times: number[] = [];
  for (let k = 0; k < 8; k++) {
    const t0 = performance.now();
    const r = model.trainStep(ids, ids, B, T, state, 0.1, k);
    disposeState(state); state = r.state;
    opt.apply(r.gradients, 2e-3);
    times.push(performance.now() - t0);
    console.log(k, (performance.now() - t0).toFixed(0), 'ms', r.loss.toFixed(3), tf.memory().numTensors);
  }
  const med = times.slice(2).sort((a, b) => a - b)[3];
  console.log('chars/s', (B * T / med * 1000).toFixed(0));
  process.exit(0);
})();
