// What auto backend selection times for serving: one completion's model steps, before any model is loaded.
import { parameterShapes, type NetworkConfig } from '../model/architecture';
import { LstmPredictor } from '../model/predictor';
import { Vocabulary } from '../model/vocab';

/**
 * What auto backend selection times for serving: the steps of one completion, a few characters
 * fed at batch 1 and a beam search's steps at the beam width, with random weights of the model's size.
 */
export function completionProbe(config: NetworkConfig, beamWidth: number): () => Promise<void> {
  return async () => {
    const vocabulary = Vocabulary.fromText(
      String.fromCodePoint(...Array.from({ length: config.vocabSize - 1 }, (_, i) => 0x100 + i)),
      config.vocabSize,
    );
    const weights = new Map(
      parameterShapes(config).map(([name, shape]) => [
        name,
        new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01),
      ]),
    );
    const predictor = new LstmPredictor({ config, vocabulary, weights });
    let states = [predictor.zeroState()];
    for (let k = 0; k < 4; k++) states = (await predictor.step(states, [1])).map((s) => s.state);
    let beams = Array.from({ length: beamWidth }, () => states[0]);
    for (let k = 0; k < 8; k++)
      beams = (
        await predictor.step(
          beams,
          beams.map((_, b) => 1 + b),
        )
      ).map((s) => s.state);
    predictor.dispose();
  };
}
