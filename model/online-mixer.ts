// The second, online stage of the mixture: a log-linear (geometric) mix of the offline mixture with its own parts and
// the match model, whose weights learn from each character of the document as it is typed.
//
// Why geometric: a product of experts can sharpen, which a linear mix cannot. Where the LSTM and the document agree,
// their product is surer than either; a linear mix only averages them. And the match model's one guess enters as a
// factor on that one character, with a weight that depends on how long the match is. The weights start where the
// offline stage alone is the answer (weight 1 on it, 0 elsewhere), so a document that has taught nothing yet is served
// exactly as before, and each character typed moves them by one step of the gradient of its log loss.
import type { MatchPrediction } from './match-model';
import { oncePerVocabulary } from './vocab';
import { NESTINGS } from './nesting';

/** The mixed inputs, in the order of the weights: log-probability vectors, then the match models' indicators. */
export const ONLINE_INPUTS = ['mixture', 'lstm', 'notes', 'document', 'words', 'match', 'notesMatch'] as const;
const K = ONLINE_INPUTS.length;
const MIXTURE = 0;
const MATCH = 5;
const NOTES_MATCH = 6;
/** Log-probabilities are read as at least this, so that a part sure a character cannot come does not veto it outright. */
const LOG_FLOOR = -30;

/** Matched lengths (the longer of the two matches) that share a weight set: none, then roughly doubling. */
const MATCH_LENGTH_BUCKETS = [1, 8, 12, 16, 24, 32, 64];
/** The character before: a word's, a space, a line break, anything else. */
export const PREVIOUS_CLASSES = 4;
/**
 * How the two matches stand: one or none; both, guessing the same; both, guessing apart, the
 * document's the longer or as long; the notes' the longer. Where they guess apart, the longer is
 * nearly always the one to trust, which one weight set per length cannot learn.
 */
export const MATCHES_STANDING = 4;
const ONE_OR_NONE = 0;
const ALIKE = 1;
const DOCUMENT_LONGER = 2;
const NOTES_LONGER = 3;
/** How the document's match and the notes' stand, as MATCHES_STANDING counts them. */
export function matchesStanding(match: MatchPrediction, notesMatch: MatchPrediction): number {
  if (match.length === 0 || notesMatch.length === 0) return ONE_OR_NONE;
  if (match.id === notesMatch.id) return ALIKE;
  return match.length >= notesMatch.length ? DOCUMENT_LONGER : NOTES_LONGER;
}
/** Each set comes twice: where the word models have seen the two words, and where they have not. */
const SETS = (MATCH_LENGTH_BUCKETS.length + 1) * MATCHES_STANDING * PREVIOUS_CLASSES * 2;

/** The weight sets selected by the two characters before: a hash of them, this many bits. */
const TWO_BEFORE_BITS = 10;

/**
 * How far one character moves the weights shared by every position, and those of the sets it
 * selects: by its match length and classes, by the character before, and by the two before.
 */
export const ONLINE_LEARNING_RATE = { shared: 0.001, selected: 0.002 };

/**
 * Where the weights start: the offline mixture alone, and a match model trusted the more the
 * longer its match. The match's weights are a log-odds boost of its one character, learnt from
 * there.
 */
function initialSelectedWeights(): Float32Array {
  const weights = new Float32Array(SETS * K);
  // In setOf()'s layout: by bucket, then by standing, then by the rest of what selects a set.
  const perStanding = SETS / (MATCH_LENGTH_BUCKETS.length + 1) / MATCHES_STANDING;
  const trustOfBucket = (bucket: number) => Math.min(3, 0.5 * bucket);
  for (let bucket = 1; bucket <= MATCH_LENGTH_BUCKETS.length; bucket++)
    for (let standing = 0; standing < MATCHES_STANDING; standing++)
      for (let rest = 0; rest < perStanding; rest++) {
        const set = (bucket * MATCHES_STANDING + standing) * perStanding + rest;
        // Where the two guess apart, the shorter match starts as trusted as the shortest: the length that
        // chose the set is the other's.
        const longer = trustOfBucket(bucket);
        weights[set * K + MATCH] = standing === NOTES_LONGER ? trustOfBucket(1) : longer;
        weights[set * K + NOTES_MATCH] = standing === DOCUMENT_LONGER ? trustOfBucket(1) : longer;
      }
  return weights;
}

/** One position's inputs: each part's log-probabilities over the vocabulary, and the match model's guess. */
export interface OnlineInputs {
  mixture: Float32Array;
  lstm: Float32Array;
  notes: Float32Array;
  document: Float32Array;
  /** The word models' distribution; zeros (no opinion) where they have not seen the two words' context. */
  words: Float32Array;
  match: MatchPrediction;
  notesMatch: MatchPrediction;
  /** The class of the character before (see previousClass). */
  previous: number;
  /** The ids of the character before and the one before it, or -1 where the document has none. */
  previousId: number;
  twoBeforeId: number;
  /** Whether the word models have seen the two words' context. */
  wordsSeen: boolean;
  /** The Markdown spans the position is in (nesting(), word-model.ts); 0 outside every span. */
  nesting: number;
}

/** The classes previousClass gives. */
export const CHARACTER_CLASS = { word: 0, space: 1, lineBreak: 2, other: 3 } as const;

/** The class of a character for choosing weights: a word's, a space, a line break, anything else. */
export function previousClass(char: string | undefined): number {
  if (char === undefined || char === '\n') return CHARACTER_CLASS.lineBreak;
  if (char === ' ' || char === '\t') return CHARACTER_CLASS.space;
  return /[\p{L}\p{N}_]/u.test(char) ? CHARACTER_CLASS.word : CHARACTER_CLASS.other;
}

/** previousClass of each id of `vocabulary`, built once per vocabulary and shared by all that read it. */
export const characterClasses = oncePerVocabulary((vocabulary) =>
  Uint8Array.from(vocabulary.chars, (char) => previousClass(char)),
);

/** The inputs that are log-probability vectors, in the order of their weights. */
function logVectors(inputs: OnlineInputs): Float32Array[] {
  return [inputs.mixture, inputs.lstm, inputs.notes, inputs.document, inputs.words];
}

export class OnlineMixer {
  private readonly shared = new Float32Array(K);
  private readonly selected = initialSelectedWeights();
  /**
   * A second weight set, selected by the character before: after "q" or "'" a part that knows the
   * spelling is worth more than one that knows the topic, and a few classes cannot say so.
   */
  private readonly byPrevious: Float32Array;
  /** Likewise by the two characters before: "e " and "o " begin different words. */
  private readonly byTwoBefore = new Float32Array((1 << TWO_BEFORE_BITS) * K);
  /**
   * And by the Markdown spans the position is in, where it is in any: in a link's target the parts that know the
   * link's text are worth more than those that know prose. Outside every span there is no set, which would only
   * double the shared weights' rate.
   */
  private readonly byNesting = new Float32Array(NESTINGS * K);
  private readonly weights = new Float32Array(K);
  /** How many characters it has learnt from. */
  learnt = 0;

  constructor(private readonly vocabularySize: number) {
    this.shared[MIXTURE] = 1;
    this.byPrevious = new Float32Array(vocabularySize * K);
  }

  /** Its weights, in a fixed order, each array as long for every mixer of the same vocabulary's size: what is saved. */
  weightArrays(): Float32Array[] {
    return [this.shared, this.selected, this.byPrevious, this.byTwoBefore, this.byNesting];
  }

  /** Takes the weights `other` has learnt as its own, to learn on from there. */
  startFrom(other: OnlineMixer): void {
    const mine = this.weightArrays();
    other.weightArrays().forEach((weights, i) => mine[i].set(weights));
  }

  /** Mixes the inputs into `out` as log-probabilities; returns out. */
  mix(inputs: OnlineInputs, out: Float32Array): Float32Array {
    const V = out.length;
    const w = this.weightsFor(inputs);
    out.fill(0);
    const vectors = logVectors(inputs);
    for (let k = 0; k < vectors.length; k++) {
      const z = vectors[k];
      const weight = w[k];
      if (weight !== 0) for (let y = 0; y < V; y++) out[y] += weight * Math.max(LOG_FLOOR, z[y]);
    }
    if (inputs.match.length > 0) out[inputs.match.id] += w[MATCH];
    if (inputs.notesMatch.length > 0) out[inputs.notesMatch.id] += w[NOTES_MATCH];
    let max = -Infinity;
    for (let y = 0; y < V; y++) if (out[y] > max) max = out[y];
    let sum = 0;
    for (let y = 0; y < V; y++) sum += Math.exp(out[y] - max);
    const lse = max + Math.log(sum);
    for (let y = 0; y < V; y++) out[y] -= lse;
    return out;
  }

  /**
   * Learns from the character that came, `target`, given the inputs and the mix they gave
   * (`mixed`, log-probabilities from mix()): d(-log p(target))/dw_k = E_p[z_k] - z_k(target).
   */
  learn(inputs: OnlineInputs, mixed: Float32Array, target: number): void {
    const vectors = logVectors(inputs);
    const gradient = new Float64Array(K);
    for (let y = 0; y < mixed.length; y++) {
      const p = Math.exp(mixed[y]);
      for (let k = 0; k < vectors.length; k++) gradient[k] += p * Math.max(LOG_FLOOR, vectors[k][y]);
    }
    for (let k = 0; k < vectors.length; k++) gradient[k] -= Math.max(LOG_FLOOR, vectors[k][target]);
    const { match, notesMatch } = inputs;
    if (match.length > 0) gradient[MATCH] = Math.exp(mixed[match.id]) - (match.id === target ? 1 : 0);
    if (notesMatch.length > 0)
      gradient[NOTES_MATCH] = Math.exp(mixed[notesMatch.id]) - (notesMatch.id === target ? 1 : 0);
    const set = this.setOf(inputs) * K;
    const previous = this.previousSetOf(inputs);
    const twoBefore = this.twoBeforeSetOf(inputs);
    const nesting = this.nestingSetOf(inputs);
    for (let k = 0; k < K; k++) {
      const g = Math.max(-20, Math.min(20, gradient[k]));
      this.shared[k] -= ONLINE_LEARNING_RATE.shared * g;
      this.selected[set + k] -= ONLINE_LEARNING_RATE.selected * g;
      if (previous >= 0) this.byPrevious[previous + k] -= ONLINE_LEARNING_RATE.selected * g;
      if (twoBefore >= 0) this.byTwoBefore[twoBefore + k] -= ONLINE_LEARNING_RATE.selected * g;
      if (nesting >= 0) this.byNesting[nesting + k] -= ONLINE_LEARNING_RATE.selected * g;
    }
    this.learnt++;
  }

  private weightsFor(inputs: OnlineInputs): Float32Array {
    const set = this.setOf(inputs) * K;
    for (let k = 0; k < K; k++) this.weights[k] = this.shared[k] + this.selected[set + k];
    const previous = this.previousSetOf(inputs);
    if (previous >= 0) for (let k = 0; k < K; k++) this.weights[k] += this.byPrevious[previous + k];
    const twoBefore = this.twoBeforeSetOf(inputs);
    if (twoBefore >= 0) for (let k = 0; k < K; k++) this.weights[k] += this.byTwoBefore[twoBefore + k];
    const nesting = this.nestingSetOf(inputs);
    if (nesting >= 0) for (let k = 0; k < K; k++) this.weights[k] += this.byNesting[nesting + k];
    return this.weights;
  }

  /** Where the weights selected by the Markdown spans start, or -1 outside every span. */
  private nestingSetOf(inputs: OnlineInputs): number {
    return inputs.nesting > 0 ? inputs.nesting * K : -1;
  }

  /** Where the weights selected by the two characters before start, or -1 where there are not two. */
  private twoBeforeSetOf(inputs: OnlineInputs): number {
    if (inputs.previousId < 0 || inputs.twoBeforeId < 0) return -1;
    const hash = Math.imul(inputs.twoBeforeId * 65_536 + inputs.previousId + 1, 0x9e3779b1) >>> 0;
    return (hash >>> (32 - TWO_BEFORE_BITS)) * K;
  }

  /** Where the weights selected by the character before start, or -1 where there is none. */
  private previousSetOf(inputs: OnlineInputs): number {
    if (inputs.previousId < 0 || inputs.previousId >= this.vocabularySize) return -1;
    return inputs.previousId * K;
  }

  private setOf(inputs: OnlineInputs): number {
    const length = Math.max(inputs.match.length, inputs.notesMatch.length);
    let match = 0;
    while (match < MATCH_LENGTH_BUCKETS.length && length >= MATCH_LENGTH_BUCKETS[match]) match++;
    const standing = matchesStanding(inputs.match, inputs.notesMatch);
    return (
      ((match * MATCHES_STANDING + standing) * PREVIOUS_CLASSES + inputs.previous) * 2 + (inputs.wordsSeen ? 1 : 0)
    );
  }
}
