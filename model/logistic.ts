// The logistic domain that bitwise mixing works in, and the adaptive probability map that refines a mixed bit.

/** Stretched probabilities are clamped to this, so that no input dominates a mix beyond recall. */
export const STRETCH_LIMIT = 8;

export const clampStretch = (x: number): number => Math.max(-STRETCH_LIMIT, Math.min(STRETCH_LIMIT, x));
/** A mixed node's probability of a 1, kept this far from 0 and 1 so that no id is ruled out. */
export const clampNodeProbability = (p: number): number => Math.max(1e-6, Math.min(1 - 1e-6, p));
/**
 * Whether a mix of stretched value `dot`, clamped, stands at the limit on the side `bit` fell: there the clamped mix
 * does not move with the weights, so a mixer's weights have nothing to learn (docs/measurements.md, fifty-first session).
 */
export const atLimitOnSideOf = (dot: number, bit: number): boolean =>
  bit ? dot >= STRETCH_LIMIT : dot <= -STRETCH_LIMIT;
/**
 * ln(p / (1 - p)), clamped. Even odds, which most nodes of the match models and of the context mixings' unlikely slots
 * hold, are 0 without a logarithm.
 */
export const stretch = (p: number): number => (p === 0.5 ? 0 : clampStretch(Math.log(p / (1 - p))));
export const squash = (x: number): number => 1 / (1 + Math.exp(-x));

/** How many bits spell an id of a vocabulary of `size`. */
export const idBits = (size: number): number => Math.max(1, Math.ceil(Math.log2(size)));

/**
 * Whether no id lies under the 1 branch of `node` (heap-numbered: the root 1, the children of n
 * 2n and 2n + 1) in a tree of `bits` levels over `vocabSize` ids, so that its bit is surely 0.
 */
export function onlyZeroBranch(node: number, bits: number, vocabSize: number): boolean {
  const depth = 31 - Math.clz32(node);
  return (2 * node + 1 - (2 << depth)) << (bits - depth - 1) >= vocabSize;
}

/**
 * A guess of one id, `sure` of it, at each node of the ids' binary tree (heap-numbered, `bits` deep), into `out`:
 * along the path to the id, `sure` of that id's branch; elsewhere even odds.
 */
export function pathNodeProbabilities(id: number, sure: number, bits: number, out: Float32Array): Float32Array {
  out.fill(0.5);
  let node = 1;
  for (let depth = bits - 1; depth >= 0; depth--) {
    const bit = (id >>> depth) & 1;
    out[node] = bit ? sure : 1 - sure;
    node = 2 * node + bit;
  }
  return out;
}

/**
 * A guess of one id that is right as often as `right`, at each node of the ids' tree (pathNodeProbabilities): each
 * node on its path as sure as makes the whole path that sure.
 */
export const guessNodeProbabilities = (id: number, right: number, bits: number, out: Float32Array): Float32Array =>
  pathNodeProbabilities(id, right ** (1 / bits), bits, out);

const BUCKETS = 33;
/** A map's row as it starts: each bucket's stretched probability squashed back, the identity. */
const IDENTITY_ROW = Float32Array.from({ length: BUCKETS }, (_, bucket) =>
  squash(((bucket - (BUCKETS - 1) / 2) * 2 * STRETCH_LIMIT) / (BUCKETS - 1)),
);

/**
 * An adaptive probability map (secondary estimation): for each row, chosen by a context, a
 * piecewise-linear map from a stretched probability to a probability, starting as the identity
 * and pulled towards what the bit turned out to be. It corrects what a mix gets systematically
 * wrong in that context, such as over-confidence.
 */
export class ProbabilityMap {
  private readonly map: Float32Array;
  private index = 0;
  private weight = 0;

  constructor(
    rows: number,
    private readonly rate: number,
  ) {
    this.map = new Float32Array(rows * BUCKETS);
    // The first row copied, then the rows so far doubled: a map of thousands of rows, made as a document starts
    // learning, took milliseconds to squash cell by cell.
    if (rows > 0) this.map.set(IDENTITY_ROW);
    for (let filled = BUCKETS; filled < this.map.length; filled *= 2) this.map.copyWithin(filled, 0, filled);
  }

  /** The map's cells, for saving and loading. */
  get cells(): Float32Array {
    return this.map;
  }

  /** The refined probability of a 1 in `row` for the stretched probability `x`; learn() then teaches this cell. */
  refine(row: number, x: number): number {
    const position = ((clampStretch(x) + STRETCH_LIMIT) * (BUCKETS - 1)) / (2 * STRETCH_LIMIT);
    const low = Math.min(BUCKETS - 2, Math.floor(position));
    this.weight = position - low;
    this.index = row * BUCKETS + low;
    return this.map[this.index] * (1 - this.weight) + this.map[this.index + 1] * this.weight;
  }

  /** Teaches the cell the last refine() read that the bit was `bit`. */
  learn(bit: number): void {
    this.map[this.index] += (bit - this.map[this.index]) * this.rate * (1 - this.weight);
    this.map[this.index + 1] += (bit - this.map[this.index + 1]) * this.rate * this.weight;
  }
}
