// The last stage of the mixture: distributions over ids mixed bit by bit. Each id is spelt as bits from the most
// significant; at each node of that binary tree, each input's probability of a 1 (the mass of its ids below the node's
// 1 branch over all the mass below the node) is stretched, and the stretched probabilities are summed with weights
// selected by the node and by contexts, then refined by adaptive probability maps. A weight per node lets an input be
// trusted where it is good (one part for choosing between a letter and a space, another for which letter), which one
// weight per input over whole distributions cannot say; the maps undo what the mix gets systematically wrong.
import {
  atLimitOnSideOf,
  clampNodeProbability,
  clampStretch,
  idBits,
  onlyZeroBranch,
  ProbabilityMap,
  squash,
  stretch,
} from './logistic';

/** How far one bit moves the weights it used. */
const RATE = 0.002;
const MAP_RATE = 0.02;
/** Rows of the map selected by the context and the node, hashed. */
const MAP_CONTEXT_BITS = 10;
/** Probabilities below this are read as it, so that no input is sure beyond recall. */
const LOG_FLOOR = -30;
/**
 * Below a node that the mix reaches with less than this log-probability, the ids are split as the first input (the
 * online stage's mixture) splits them, without mixing: most of the tree lies there, and an id that unlikely costs about
 * as many bits either way (docs/measurements.md has the A/B).
 */
const UNMIXED_BELOW_LOG = Math.log(1e-4);

/**
 * What the mixture's last stage mixes: the online stage's mixture, the notes' and the document's
 * context mixing, the LSTM, the document's and the notes' match models' guesses, and what the
 * document has shown to come below the character above (line-above.ts), and the anchor a link's
 * text spells (heading-anchor.ts); it starts as the online stage's mixture alone, and the anchor.
 */
export const LAST_STAGE_INPUTS = [
  'online',
  'notesContexts',
  'documentContexts',
  'lstm',
  'documentMatch',
  'notesMatch',
  'above',
  'anchor',
  'echo',
] as const;
/**
 * A heading's anchor spelt from its link's text (heading-anchor.ts) is seldom wrong, so it starts trusted above the
 * rest: the contexts that have just read the link's text would copy its spaces and punctuation where the anchor has
 * hyphens.
 */
export const LAST_STAGE_INITIAL_WEIGHTS = [1, 0, 0, 0, 0, 0, 0, 2, 0];

/**
 * One input of the mix: a distribution over the ids as log-probabilities, or the probability of a
 * 1 at each node of the ids' tree (as ContextMixingModel.nodeProbabilitiesAt gives), or nothing
 * to say here (undefined), which reads as even odds at every node.
 */
export type BitwiseInput = { logProbs: Float32Array } | { nodes: Float32Array } | undefined;

export class BitwiseMixer {
  private readonly bits: number;
  private readonly width: number;
  /** The mass below each node of the tree, heap-numbered (the root 1, the ids' leaves from 2^bits), of one distribution. */
  private readonly sums: Float64Array;
  /** Per input, its probability of a 1 at each node: its own, or where it is a distribution, one of ownNodes. */
  private readonly nodes: Float32Array[];
  private readonly ownNodes: Float32Array[];
  private readonly shared: Float32Array;
  private readonly byNode: Float32Array;
  /** Per kind of selecting context, its weight sets. */
  private readonly bySelector: Float32Array[];
  private readonly mapByNode: ProbabilityMap;
  private readonly mapBySelector: ProbabilityMap;
  private readonly stretched: Float32Array;
  private readonly nodeLog: Float64Array;
  private mixed = 0.5;
  /** The last predict()'s mix before it was clamped. */
  private unclamped = 0;
  private nodeSet = 0;
  /** Per kind, where the weight set its context selects begins (-1: none), and the first kind's context: set by select(). */
  private readonly selectorSets: Int32Array;
  private mapContext = 0;

  /**
   * `initial`: each input's weight to start with; `selectors`: per kind of context that selects a weight set, how many
   * contexts it tells apart. The first kind selects a row of the second map too. A context of -1 selects no set of its
   * kind: where a kind has nothing to tell, a set that every position shared would only double the shared weights' rate.
   */
  constructor(
    private readonly vocabSize: number,
    initial: ArrayLike<number>,
    selectors: readonly number[],
  ) {
    const inputs = initial.length;
    this.bits = idBits(vocabSize);
    this.width = inputs + 1;
    this.sums = new Float64Array(2 << this.bits);
    this.ownNodes = Array.from({ length: inputs }, () => new Float32Array(1 << this.bits));
    this.nodes = [...this.ownNodes];
    this.shared = new Float32Array(this.width);
    this.shared.set(initial);
    this.byNode = new Float32Array((1 << this.bits) * this.width);
    this.bySelector = selectors.map((count) => new Float32Array(count * this.width));
    this.selectorSets = new Int32Array(selectors.length);
    this.mapByNode = new ProbabilityMap(1 << this.bits, MAP_RATE);
    this.mapBySelector = new ProbabilityMap(1 << MAP_CONTEXT_BITS, MAP_RATE);
    this.stretched = new Float32Array(this.width);
    this.nodeLog = new Float64Array(2 << this.bits);
  }

  /**
   * Takes the weights `other` has learnt as its own, to learn on from there. Its maps stay fresh: carrying them over
   * as well changed nothing measurable (docs/measurements.md).
   */
  startFrom(other: BitwiseMixer): void {
    const mine = this.weightArrays();
    other.weightArrays().forEach((weights, i) => mine[i].set(weights));
  }

  /** Its weights, in a fixed order, each array as long for every mixer made alike: what is saved. */
  weightArrays(): Float32Array[] {
    return [this.shared, this.byNode, ...this.bySelector];
  }

  /**
   * Mixes `vectors`, one per input, in the contexts `selectors` (one of each kind) into `out`, as log-probabilities.
   */
  mix(vectors: BitwiseInput[], selectors: ArrayLike<number>, out: Float32Array): Float32Array {
    this.sumTrees(vectors);
    this.select(selectors);
    const nodeLog = this.nodeLog;
    nodeLog[1] = 0;
    const leaves = 1 << this.bits;
    for (let node = 1; node < leaves; node++) {
      const depth = 31 - Math.clz32(node);
      if ((node - (1 << depth)) << (this.bits - depth) >= this.vocabSize) continue;
      const p = onlyZeroBranch(node, this.bits, this.vocabSize)
        ? 0
        : nodeLog[node] < UNMIXED_BELOW_LOG
          ? clampNodeProbability(this.nodes[0][node])
          : this.predict(node);
      nodeLog[2 * node] = nodeLog[node] + Math.log(1 - p);
      nodeLog[2 * node + 1] = nodeLog[node] + Math.log(p);
    }
    for (let id = 0; id < this.vocabSize; id++) out[id] = nodeLog[leaves + id];
    return out;
  }

  /** Learns that `target` came where the inputs were `vectors` and the contexts `selectors`. */
  learn(vectors: BitwiseInput[], selectors: ArrayLike<number>, target: number): void {
    this.sumTrees(vectors);
    this.select(selectors);
    let node = 1;
    for (let depth = this.bits - 1; depth >= 0; depth--) {
      const bit = (target >>> depth) & 1;
      if (onlyZeroBranch(node, this.bits, this.vocabSize)) {
        node = 2 * node;
        continue;
      }
      this.predict(node);
      // Stepped where the mix is at its limit, through a long repeat the weights grew without bound on the inputs that
      // agreed, and the new text after it cost twice what it should.
      if (!atLimitOnSideOf(this.unclamped, bit)) {
        const error = bit - this.mixed;
        for (let i = 0; i < this.width; i++) {
          const step = RATE * error * this.stretched[i];
          this.shared[i] += step;
          this.byNode[this.nodeSet + i] += step;
          for (let k = 0; k < this.bySelector.length; k++)
            if (this.selectorSets[k] >= 0) this.bySelector[k][this.selectorSets[k] + i] += step;
        }
      }
      this.mapByNode.learn(bit);
      this.mapBySelector.learn(bit);
      node = 2 * node + bit;
    }
  }

  /** Leaves each input's probability of a 1 at each node in `nodes`, summing the mass below each node of a distribution. */
  private sumTrees(vectors: BitwiseInput[]): void {
    const leaves = 1 << this.bits;
    vectors.forEach((vector, k) => {
      if (vector && 'nodes' in vector) {
        this.nodes[k] = vector.nodes;
        return;
      }
      const nodes = (this.nodes[k] = this.ownNodes[k]);
      if (!vector) return nodes.fill(0.5);
      const sums = this.sums;
      const logProbs = vector.logProbs;
      for (let id = 0; id < leaves; id++)
        sums[leaves + id] = id < this.vocabSize ? Math.exp(Math.max(LOG_FLOOR, logProbs[id])) : 0;
      for (let node = leaves - 1; node >= 1; node--) {
        const below = (sums[node] = sums[2 * node] + sums[2 * node + 1]);
        nodes[node] = below > 0 ? sums[2 * node + 1] / below : 0.5;
      }
    });
  }

  /** Leaves where the weight sets that `selectors` choose begin, which every node of a position reads alike. */
  private select(selectors: ArrayLike<number>): void {
    for (let k = 0; k < this.bySelector.length; k++)
      this.selectorSets[k] = selectors[k] < 0 ? -1 : selectors[k] * this.width;
    this.mapContext = selectors[0];
  }

  /** The probability that the bit at `node` is 1, in the contexts select() left; leaves what learn() needs in scratch. */
  private predict(node: number): number {
    const inputs = this.nodes.length;
    // stretch() clamps, so an input sure of a bit (0 or 1) reads as the limit, not infinity.
    for (let k = 0; k < inputs; k++) this.stretched[k] = stretch(this.nodes[k][node]);
    this.stretched[inputs] = 0.25;
    this.nodeSet = node * this.width;
    let dot = 0;
    for (let i = 0; i < this.width; i++) {
      let weight = this.shared[i] + this.byNode[this.nodeSet + i];
      for (let k = 0; k < this.bySelector.length; k++)
        if (this.selectorSets[k] >= 0) weight += this.bySelector[k][this.selectorSets[k] + i];
      dot += weight * this.stretched[i];
    }
    this.unclamped = dot;
    dot = clampStretch(dot);
    this.mixed = squash(dot);
    const byNode = this.mapByNode.refine(node, dot);
    const row = Math.imul((this.mapContext + 1) * 65_536 + node, 0x9e3779b1) >>> (32 - MAP_CONTEXT_BITS);
    const bySelector = this.mapBySelector.refine(row, dot);
    return clampNodeProbability((2 * this.mixed + byNode + bySelector) / 4);
  }
}
