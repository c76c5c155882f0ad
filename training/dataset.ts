// The notes as a training run uses them: read (or the embedded default corpus), split into
// training and validation text, encoded, counted into the notes' n-gram, and cut into the training
// batch and the validation sets that periodic and final scoring share.
import type { ResumedModel } from './checkpoint';
import { Corpus, describeExclusions, describeSkipped, loadCorpus } from './corpus';
import { defaultCorpusPaths } from './default-corpus';
import { splitCorpus } from './split';
import { TRAIN_DEFAULTS } from './defaults';
import { isScorable, ValidationSet } from './mixture-fit';
import { EscapeModel, escapeNatsPerCharacter } from '../model/escape';
import { NgramModel } from '../model/ngram';
import { Vocabulary } from '../model/vocab';
import { TrainInputError, TrainOptions, TrainReporter } from './train-types';

/** Above this share of characters outside a resumed model's vocabulary, training anew is suggested. */
const UNKNOWN_SHARE_WARNING = 0.25;

/** The notes named, or the embedded default corpus; an empty or unreadable corpus is an input error. */
export function readNotes(options: TrainOptions, reporter: TrainReporter): { corpus: Corpus; usingDefault: boolean } {
  const usingDefault = options.paths.length === 0;
  const paths = usingDefault ? defaultCorpusPaths(options.packageRoot) : options.paths;
  if (usingDefault) {
    reporter.info("No PATH given: training on the embedded default corpus (this project's own docs and sources).");
    reporter.info('To learn your own notes instead: npm run train -- ~/notes');
  }
  let corpus;
  try {
    corpus = loadCorpus(paths, { exclude: [options.out], excludeGlobs: options.exclude });
  } catch (error) {
    throw new TrainInputError((error as Error).message);
  }
  const excluded = describeExclusions(corpus.excluded, corpus.droppedLines);
  if (excluded) reporter.info(excluded);
  const skipped = describeSkipped(corpus.skipped);
  if (skipped) reporter.info(skipped);
  if (corpus.documents.length === 0 || corpus.chars === 0) {
    throw new TrainInputError(
      `no usable text in ${paths.join(', ')}: give files or folders of UTF-8 text (.md, .txt, .org, …)`,
    );
  }
  reporter.info(
    `Corpus: ${corpus.documents.length} file${corpus.documents.length === 1 ? '' : 's'}, ${corpus.chars.toLocaleString('en-US')} chars`,
  );
  return { corpus, usingDefault };
}

/** The corpus as the run uses it: split, encoded, counted into the notes' n-gram, and cut into batches. */
export interface Dataset {
  /** How the validation text was split off, in words. */
  split: string;
  validationText: string;
  /**
   * What the model's memory of the notes reads (the match and word models through notes.txt, the context mixing):
   * every note, so that a held-out note is completed from as well as any; only the training text with
   * options.validationUnseen, which validationInNotes tells.
   */
  notesText: string;
  notesIds: Int32Array;
  validationInNotes: boolean;
  vocabulary: Vocabulary;
  /** What the characters outside the vocabulary cost, learnt from the training text. */
  escape: EscapeModel;
  trainIds: Int32Array;
  validationIds: Int32Array;
  notes: NgramModel;
  /** The most streams the training text fills with at least one batch each (trainingBatch() picks the run's). */
  maxBatch: number;
  validationBatch: number;
  /** What each periodic validation scores: up to periodicValidationChars, so it stays a small share of the budget. */
  periodic?: ValidationSet;
  /** What the final figure scores: up to finalValidationChars of the validation text. */
  finalIds: Int32Array;
  /** The escape model's nats for each of finalIds, 0 inside the vocabulary. */
  finalEscapeNats: Float64Array;
}

export function prepareDataset(
  corpus: Corpus,
  resumed: ResumedModel | undefined,
  options: TrainOptions,
  reporter: TrainReporter,
): Dataset {
  const split = splitCorpus(corpus, TRAIN_DEFAULTS.validationFraction);
  // From the training text alone, so that the validation text's novel characters are UNKNOWN as a
  // user's next note's will be, and are charged as such.
  const vocabulary =
    resumed?.vocabulary ?? Vocabulary.fromText(split.train, TRAIN_DEFAULTS.maxVocab, TRAIN_DEFAULTS.minCharCount);
  const escape = EscapeModel.fromText(split.train, vocabulary);
  const trainIds = vocabulary.encode(split.train);
  const validationIds = vocabulary.encode(split.validation);
  const validationInNotes = !options.validationUnseen;
  const notesText = validationInNotes ? split.whole : split.train;
  const notesIds = validationInNotes ? vocabulary.encode(notesText) : trainIds;
  const validationEscapeNats = escapeNatsPerCharacter(escape, split.validation, vocabulary);
  reporter.info(`Validation: ${split.how}; vocabulary ${vocabulary.size} symbols`);
  if (resumed) {
    // Id 0 is the unknown symbol: a resumed model cannot learn characters it has no slot for.
    const unknown = countZeros(trainIds) + countZeros(validationIds);
    const share = unknown / Math.max(1, trainIds.length + validationIds.length);
    if (share > UNKNOWN_SHARE_WARNING) {
      reporter.info(
        `Warning: ${Math.round(share * 100)}% of this corpus is outside the resumed model's vocabulary of ${vocabulary.size} symbols, so it cannot learn those characters. To learn this text, train anew without --resume (into another --out to keep this model).`,
      );
    }
  }

  // The n-gram memory of the notes: built in seconds, it serves while the LSTM trains.
  const ngramStarted = performance.now();
  const notes = new NgramModel(vocabulary.size);
  notes.add(trainIds);
  reporter.info(
    `N-gram: order ${notes.order}, ${notes.size.toLocaleString('en-US')} n-grams, built in ${((performance.now() - ngramStarted) / 1000).toFixed(1)} s`,
  );

  const { seq } = options;
  const maxBatch = Math.floor((trainIds.length - 1) / seq);
  if (maxBatch < 1)
    throw new TrainInputError(
      `corpus too small: need at least ${seq + 1} chars of training text, got ${trainIds.length}`,
    );
  const validationBatch = Math.min(32, Math.floor((validationIds.length - 1) / seq));
  const windowLength = (chars: number) => Math.min(validationIds.length, Math.max(chars, validationBatch * seq + 1));
  const periodicLength = windowLength(TRAIN_DEFAULTS.periodicValidationChars);
  const finalLength = windowLength(TRAIN_DEFAULTS.finalValidationChars);
  const periodicIds = validationIds.subarray(0, periodicLength);
  // How much each order's counts are discounted suits some notes better than others; the held-out
  // text chooses, before the gate's samples are drawn from the n-gram.
  if (isScorable(periodicIds, validationBatch, seq)) notes.tuneDiscountScale(periodicIds);
  return {
    split: split.how,
    validationText: split.validation,
    notesText,
    notesIds,
    validationInNotes,
    vocabulary,
    escape,
    trainIds,
    validationIds,
    notes,
    maxBatch,
    validationBatch,
    periodic: ValidationSet.of(
      periodicIds,
      validationBatch,
      seq,
      notes,
      validationEscapeNats.subarray(0, periodicLength),
    ),
    finalIds: validationIds.subarray(0, finalLength),
    finalEscapeNats: validationEscapeNats.subarray(0, finalLength),
  };
}

/**
 * The streams a run trains: --batch, else the default of the device that trains (a multiple of its
 * processes, each of which takes an equal share), shrunk rather than refused for a small corpus. A GPU's default
 * halves for notes too small to give an epoch TRAIN_DEFAULTS.gpuMinStepsPerEpoch steps.
 */
export function trainingBatch(asked: number | undefined, onGpu: boolean, processes: number, maxBatch: number): number {
  if (asked !== undefined) return Math.min(asked, maxBatch);
  let wanted = onGpu ? TRAIN_DEFAULTS.gpuBatch * processes : TRAIN_DEFAULTS.batch;
  if (onGpu)
    while (wanted / 2 >= TRAIN_DEFAULTS.batch * processes && maxBatch / wanted < TRAIN_DEFAULTS.gpuMinStepsPerEpoch)
      wanted /= 2;
  return fitNotes(wanted, processes, maxBatch);
}

/** The streams a corpus fills, at most `wanted`, split evenly across the processes. */
function fitNotes(wanted: number, processes: number, maxBatch: number): number {
  const fitting = Math.min(wanted, maxBatch);
  return Math.max(1, fitting - (fitting % processes));
}

/** The line that says why a GPU's default batch was halved for small notes, or undefined where it was not. */
export function smallNotesBatch(batch: number, processes: number, maxBatch: number): string | undefined {
  const gpuDefault = fitNotes(TRAIN_DEFAULTS.gpuBatch * processes, processes, maxBatch);
  if (batch >= gpuDefault) return undefined;
  const steps = (streams: number) => Math.floor(maxBatch / streams).toLocaleString('en-US');
  return `Batch: ${batch} streams rather than a GPU's ${gpuDefault}, so that an epoch of these notes takes ${steps(batch)} steps rather than ${steps(gpuDefault)}: small notes overfit in few steps. Set --batch to choose yourself.`;
}

function countZeros(ids: Int32Array): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === 0) n++;
  return n;
}
