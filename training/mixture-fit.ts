// Scores held-out text with each part of the mixture, and fits the mixture's gate on those scores.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { CharLstm, disposeState, zeroState } from '../model/network';
import { Mixer, MixerSamples } from '../model/mixer';
import {
  DOCUMENT_NGRAM_ORDER,
  DOCUMENT_NGRAM_WINDOW,
  documentNgram,
  emptyConfidence,
  GATE_FEATURE,
  MIXER_SHAPE,
  MIXTURE_COMPONENTS,
  mixerPrior,
  mixtureFeatures,
} from '../model/mixture';
import type { NgramModel } from '../model/ngram';
import { StreamBatcher } from './batches';

const K = MIXTURE_COMPONENTS.length;
const F = MIXER_SHAPE.featureCount;
const LSTM = MIXTURE_COMPONENTS.indexOf('lstm');
const NOTES = MIXTURE_COMPONENTS.indexOf('notes');
const DOCUMENT = MIXTURE_COMPONENTS.indexOf('document');

/**
 * The positions the LSTM scores when ids are cut into `batch` streams of whole `seq` windows:
 * the streams lie back to back, so they cover the targets 1..covered without a gap.
 */
export function scoredPositions(length: number, batch: number, seq: number): number {
  return new StreamBatcher(new Int32Array(length), batch, seq).streamLength * batch;
}

/** Per target position t (1..covered), the LSTM's log-probability of ids[t] and its largest log-probability there. */
export interface LstmScores {
  covered: number;
  target: Float32Array;
  max: Float32Array;
}

export async function scoreLstm(model: CharLstm, ids: Int32Array, batch: number, seq: number): Promise<LstmScores> {
  const batcher = new StreamBatcher(ids, batch, seq);
  const covered = batcher.streamLength * batch;
  const target = new Float32Array(covered + 1);
  const max = new Float32Array(covered + 1);
  let state = zeroState(model.config, batch);
  for (let k = 0; k < batcher.batchesPerEpoch; k++) {
    // A turn of the event loop per batch, so that a second Ctrl-C during the final scoring quits at once.
    await nextTurn();
    const { inputs, targets } = batcher.batch(k);
    const result = await model.scoreTargets(inputs, targets, batch, seq, state);
    disposeState(state);
    state = result.state;
    for (let t = 0; t < seq; t++) {
      for (let b = 0; b < batch; b++) {
        const position = b * batcher.streamLength + k * seq + t + 1;
        target[position] = result.target[t * batch + b];
        max[position] = result.max[t * batch + b];
      }
    }
  }
  disposeState(state);
  return { covered, target, max };
}

export function lstmNats(scores: LstmScores): number {
  let total = 0;
  for (let t = 1; t <= scores.covered; t++) total -= scores.target[t];
  return total / scores.covered;
}

/** Samples for the gate at targets 1..covered, with each part's mean loss in nats. */
export interface MixtureSamples extends MixerSamples {
  notesNats: number;
  documentNats: number;
}

/**
 * The n-grams' side of the samples at targets 1..covered: the notes n-gram given everything
 * before, and a document n-gram grown along the text as if it were being typed, started afresh
 * every DOCUMENT_NGRAM_WINDOW characters as the server's is. The LSTM's columns stay uniform until
 * setLstmScores fills them, so the samples also describe a model whose LSTM is not trained yet.
 */
export function ngramSamples(ids: Int32Array, covered: number, notes: NgramModel, vocabSize: number): MixtureSamples {
  const count = covered;
  const targetProbs = new Float32Array(count * K);
  const features = new Float32Array(count * F);
  const notesProbs = new Float32Array(vocabSize);
  const documentProbs = new Float32Array(vocabSize);
  const notesConfidence = emptyConfidence();
  const documentConfidence = emptyConfidence();
  const contextLength = Math.max(notes.order, DOCUMENT_NGRAM_ORDER) - 1;
  let document = documentNgram(vocabSize);
  let documentStart = 0;
  let notesTotal = 0;
  let documentTotal = 0;
  for (let t = 1; t <= covered; t++) {
    const n = t - 1;
    const context = ids.subarray(Math.max(0, t - contextLength), t);
    notes.distribution(context, notesProbs, notesConfidence);
    document.distribution(context, documentProbs, documentConfidence);
    const id = ids[t];
    targetProbs[n * K + LSTM] = 1 / vocabSize;
    targetProbs[n * K + NOTES] = notesProbs[id];
    targetProbs[n * K + DOCUMENT] = documentProbs[id];
    notesTotal -= Math.log(notesProbs[id]);
    documentTotal -= Math.log(documentProbs[id]);
    mixtureFeatures(notesConfidence, 1 / vocabSize, documentConfidence, features.subarray(n * F, (n + 1) * F));
    document.add(ids.subarray(documentStart, t + 1), t - documentStart);
    if (t + 1 - documentStart >= DOCUMENT_NGRAM_WINDOW) {
      document = documentNgram(vocabSize);
      documentStart = t + 1;
    }
  }
  return { count, targetProbs, features, notesNats: notesTotal / count, documentNats: documentTotal / count };
}

/**
 * Held-out ids cut into `batch` streams of whole `seq` windows, with the n-grams' side of the
 * gate's samples at every position the LSTM scores there: periodic validation and the final figure
 * both score through one, and the gate is fitted on the same positions the LSTM was scored on.
 * Every figure it gives charges the characters outside the vocabulary in full: the models pay for
 * UNKNOWN, and the escape model's nats for which character it was are added.
 */
export class ValidationSet {
  /** The n-grams' columns never change; the LSTM's are filled by each fit. */
  readonly samples: MixtureSamples;
  /** The escape model's nats per scored position, on average: what UNKNOWN's probability leaves unpaid. */
  readonly escapeNats: number;

  private constructor(
    readonly ids: Int32Array,
    readonly batch: number,
    readonly seq: number,
    notes: NgramModel,
    escapeNatsPerCharacter?: Float64Array,
  ) {
    const covered = scoredPositions(ids.length, batch, seq);
    this.samples = ngramSamples(ids, covered, notes, notes.vocabSize);
    let escape = 0;
    if (escapeNatsPerCharacter) {
      if (escapeNatsPerCharacter.length !== ids.length)
        throw new Error(`validation: ${escapeNatsPerCharacter.length} escape costs for ${ids.length} ids`);
      for (let t = 1; t <= covered; t++) escape += escapeNatsPerCharacter[t];
    }
    this.escapeNats = escape / covered;
  }

  /**
   * Undefined when the ids are too short for one window in each of `batch` streams.
   * escapeNatsPerCharacter, one per id, is 0 inside the vocabulary (escapeNatsPerCharacter in model/escape.ts).
   */
  static of(
    ids: Int32Array,
    batch: number,
    seq: number,
    notes: NgramModel,
    escapeNatsPerCharacter?: Float64Array,
  ): ValidationSet | undefined {
    return isScorable(ids, batch, seq) ? new ValidationSet(ids, batch, seq, notes, escapeNatsPerCharacter) : undefined;
  }

  /** The LSTM alone, in nats per char. */
  lstmNats(scores: LstmScores): number {
    return lstmNats(scores) + this.escapeNats;
  }

  /** The notes' n-gram alone, in nats per char. */
  get notesNats(): number {
    return this.samples.notesNats + this.escapeNats;
  }

  /** The mixture with this gate, in nats per char. */
  mixtureNats(mixer: Mixer): number {
    return mixer.loss(this.samples) + this.escapeNats;
  }

  /**
   * Fits the gate on these positions with the LSTM's scores there, warm-started from `start`;
   * returns the gate and the mixture's cross-fitted nats (see fitMixture).
   */
  fitGate(scores: LstmScores, start?: Mixer): { mixer: Mixer; nats: number } {
    setLstmScores(this.samples, scores);
    const { mixer, nats } = fitMixture(this.samples, start);
    return { mixer, nats: nats + this.escapeNats };
  }
}

/** Whether ids hold one `seq` window in each of `batch` streams, with the last window's target. */
export function isScorable(ids: Int32Array, batch: number, seq: number): boolean {
  return batch >= 1 && ids.length > batch * seq;
}

/** Puts the LSTM's scores into samples made by ngramSamples for the same text. */
export function setLstmScores(samples: MixerSamples, scores: LstmScores): void {
  if (scores.covered !== samples.count)
    throw new Error(`mixture: LSTM scored ${scores.covered} positions, the samples hold ${samples.count}`);
  for (let n = 0; n < samples.count; n++) {
    samples.targetProbs[n * K + LSTM] = Math.exp(scores.target[n + 1]);
    samples.features[n * F + GATE_FEATURE.lstmMaxProb] = Math.exp(scores.max[n + 1]);
  }
}

function slice(samples: MixerSamples, from: number, to: number): MixerSamples {
  return {
    count: to - from,
    targetProbs: samples.targetProbs.subarray(from * K, to * K),
    features: samples.features.subarray(from * F, to * F),
  };
}

/**
 * At most `cap` samples taken evenly across, for fitting: the gate has a few dozen weights, so a
 * few tens of thousands of positions fit it as well as all of them, in a fraction of the time.
 */
function thin(samples: MixerSamples, cap: number): MixerSamples {
  if (samples.count <= cap) return samples;
  const stride = samples.count / cap;
  const targetProbs = new Float32Array(cap * K);
  const features = new Float32Array(cap * F);
  for (let i = 0; i < cap; i++) {
    const n = Math.floor(i * stride);
    targetProbs.set(samples.targetProbs.subarray(n * K, (n + 1) * K), i * K);
    features.set(samples.features.subarray(n * F, (n + 1) * F), i * F);
  }
  return { count: cap, targetProbs, features };
}

const FIT_SAMPLES = 24_000;
/** How hard the gate is pulled towards its prior: enough to hold where samples are silent, too little to matter where they speak. */
const PRIOR_STRENGTH = 0.002;

/**
 * Fits the gate on samples, warm-started from `start` when given. The figure returned is
 * cross-fitted (each half scored by a gate fitted on the other), so it is not flattered by the
 * gate having seen the text it is scored on; the gate returned is fitted on all of it.
 */
export function fitMixture(samples: MixerSamples, start?: Mixer, iterations = 150): { mixer: Mixer; nats: number } {
  const prior = { weights: mixerPrior(), strength: PRIOR_STRENGTH };
  const fresh = () => new Mixer(MIXER_SHAPE, Float32Array.from(start?.weights ?? prior.weights));
  const half = Math.floor(samples.count / 2);
  let nats: number;
  if (half >= 1000) {
    const first = slice(samples, 0, half);
    const second = slice(samples, half, samples.count);
    const onFirst = fresh();
    onFirst.fit(thin(first, FIT_SAMPLES / 2), iterations, undefined, prior);
    const onSecond = fresh();
    onSecond.fit(thin(second, FIT_SAMPLES / 2), iterations, undefined, prior);
    nats = (onSecond.loss(first) * first.count + onFirst.loss(second) * second.count) / samples.count;
  } else {
    nats = NaN;
  }
  const mixer = fresh();
  mixer.fit(thin(samples, FIT_SAMPLES), iterations, undefined, prior);
  return { mixer, nats: Number.isNaN(nats) ? mixer.loss(samples) : nats };
}
