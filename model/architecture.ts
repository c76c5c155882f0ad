// The network's shape, apart from tfjs, so the file format and tools can use it without loading tfjs.
export interface NetworkConfig {
  vocabSize: number;
  embed: number;
  hidden: number;
  layers: number;
}

/**
 * The trainer's default shape, from which a time budget searches for the hidden size; also the size
 * the server times the backends for before any model exists.
 */
export const DEFAULT_NETWORK = {
  embed: 64,
  hidden: 256,
  layers: 2,
} as const satisfies Omit<NetworkConfig, 'vocabSize'>;

/** Parameter names and shapes, in file order; shared by the initialiser, the saver and the loader. */
export function parameterShapes(config: NetworkConfig): Array<[string, number[]]> {
  const { vocabSize, embed, hidden, layers } = config;
  const shapes: Array<[string, number[]]> = [['embedding', [vocabSize, embed]]];
  for (let l = 0; l < layers; l++) {
    shapes.push([`lstm${l}/wx`, [l === 0 ? embed : hidden, 4 * hidden]]);
    shapes.push([`lstm${l}/wh`, [hidden, 4 * hidden]]);
    shapes.push([`lstm${l}/b`, [4 * hidden]]);
  }
  shapes.push(['output/w', [hidden, vocabSize]]);
  shapes.push(['output/b', [vocabSize]]);
  return shapes;
}
