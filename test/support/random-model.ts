// A model directory with untrained weights, for tests of the server's behaviour rather than of what it suggests.
import { saveModel, SavedModel, untrainedMetadata } from '../../model/format';
import { NetworkConfig, parameterShapes } from '../../model/architecture';
import { Vocabulary } from '../../model/vocab';

const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('') + '\n';

/** A model of the given shape over printable ASCII whose weights follow from seed; saved to dir when given. */
export function randomModel(
  seed: number,
  shape: Omit<NetworkConfig, 'vocabSize'> = { embed: 4, hidden: 8, layers: 1 },
  dir?: string,
): SavedModel {
  const vocabulary = Vocabulary.fromText(PRINTABLE, 256);
  const config: NetworkConfig = { vocabSize: vocabulary.size, ...shape };
  const weights = new Map<string, Float32Array>();
  for (const [name, dims] of parameterShapes(config)) {
    weights.set(
      name,
      Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(seed * 7919 + i) * 0.1),
    );
  }
  const model: SavedModel = {
    config,
    vocabulary,
    weights,
    metadata: untrainedMetadata('wasm', seed),
  };
  if (dir) saveModel(dir, model);
  return model;
}
