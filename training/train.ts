// The training loop, readable top to bottom: corpus → vocabulary → split → model → steps with
// periodic validation and atomic best-checkpoint saves → final validation → sample.
import * as tf from '@tensorflow/tfjs';
import { accessSync, constants, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BackendChoice, selectSequenceBackend } from '../backends/select';
import { StreamBatcher } from './batches';
import { defaultCorpusPaths, describeSkipped, loadCorpus, splitCorpus } from './corpus';
import { TRAIN_DEFAULTS } from './defaults';
import { ModelFormatError } from '../model/files';
import { loadModel, ModelMetadata, saveModel } from '../model/format';
import { NetworkConfig } from '../model/architecture';
import {
  assignWeights,
  CharLstm,
  disposeState,
  initialParameters,
  LstmState,
  parametersFromWeights,
  readWeights,
  zeroState,
} from '../model/network';
import { Adam, ADAM_DEFAULTS } from './optimizer';
import { loadOptimizerState, OptimizerState, saveOptimizerState } from './optimizer-state';
import { acquireTrainingLock, LockHeldError } from './lock';
import { generate } from '../completion/complete';
import { LstmPredictor } from '../model/predictor';
import { Mixer } from '../model/mixer';
import { documentNgram, MixturePredictor } from '../model/mixture';
import { NgramModel } from '../model/ngram';
import { saveNgram } from '../model/ngram-format';
import { forgetLearned } from '../model/learned';
import { chooseModelSize, countParameters, measureTrainingSpeed } from './model-size';
import {
  fitMixture,
  LstmScores,
  lstmNats,
  MixtureSamples,
  ngramSamples,
  scoredPositions,
  scoreLstm,
  setLstmScores,
} from './mixture-fit';
import { Vocabulary } from '../model/vocab';

export interface TrainOptions {
  /** Files and folders of notes; empty means the embedded default corpus. */
  paths: string[];
  packageRoot: string;
  out: string;
  minutes?: number;
  epochs?: number;
  /** A budget in training characters seen, for comparing recipes per character. */
  chars?: number;
  /** The shape of a new model; undefined means the default, or with resume the resumed model's. */
  layers?: number;
  hidden?: number;
  embed?: number;
  seq: number;
  batch: number;
  lr: number;
  dropout: number;
  seed: number;
  backend: BackendChoice;
  resume: boolean;
}

export interface Progress {
  fraction: number;
  charsPerSecond: number;
  loss: number;
  validationBpc: number | null;
  etaSeconds: number;
  epoch: number;
}

export interface TrainReporter {
  info(line: string): void;
  progress(progress: Progress): void;
}

export interface TrainResult {
  model: string;
  /** The model as served: the mixture of the LSTM and the n-grams. */
  validationNats: number | null;
  validationBpc: number | null;
  lstmValidationNats: number | null;
  ngramValidationNats: number | null;
  charsPerSecond: number;
  backend: string;
  steps: number;
  trainedChars: number;
  seconds: number;
  stoppedBy: 'budget' | 'early stopping' | 'interrupted';
  sample: string;
}

/** Bad input from the user: the command line reports it and exits with code 2. */
export class TrainInputError extends Error {}

const LN2 = Math.LN2;

/** Above this share of characters outside a resumed model's vocabulary, training anew is suggested. */
const UNKNOWN_SHARE_WARNING = 0.25;

export async function train(
  options: TrainOptions,
  reporter: TrainReporter,
  shouldStop: () => boolean = () => false,
): Promise<TrainResult> {
  const releases: Array<() => void> = [];
  try {
    return await runTraining(options, reporter, shouldStop, releases);
  } finally {
    for (const release of releases) release();
  }
}

async function runTraining(
  options: TrainOptions,
  reporter: TrainReporter,
  shouldStop: () => boolean,
  releases: Array<() => void>,
): Promise<TrainResult> {
  // 1. The corpus.
  const usingDefault = options.paths.length === 0;
  const paths = usingDefault ? defaultCorpusPaths(options.packageRoot) : options.paths;
  if (usingDefault) {
    reporter.info("No PATH given: training on the embedded default corpus (this project's own docs and sources).");
    reporter.info('To learn your own notes instead: npm run train -- ~/notes');
  }
  let corpus;
  try {
    corpus = loadCorpus(paths, { exclude: [options.out] });
  } catch (error) {
    throw new TrainInputError((error as Error).message);
  }
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

  // 2. Where the model goes, checked before any time is spent training.
  ensureWritable(options.out);
  try {
    releases.push(acquireTrainingLock(options.out));
  } catch (error) {
    if (error instanceof LockHeldError) throw new TrainInputError(error.message);
    throw error;
  }

  // 3. Vocabulary and architecture: new, or those of the model being resumed.
  let resumed: ReturnType<typeof loadModel> | undefined;
  if (options.resume) {
    try {
      resumed = loadModel(options.out);
    } catch (error) {
      if (error instanceof ModelFormatError) throw new TrainInputError(`cannot resume: ${error.message}`);
      throw error;
    }
    const conflicts = (['layers', 'hidden', 'embed'] as const)
      .filter((key) => options[key] !== undefined && options[key] !== resumed!.config[key])
      .map((key) => `--${key} ${options[key]} (the model has ${resumed!.config[key]})`);
    if (conflicts.length > 0) {
      throw new TrainInputError(
        `cannot resume ${options.out} with a different shape: ${conflicts.join(', ')}. Leave these flags out to resume, or train anew into another --out.`,
      );
    }
    reporter.info(
      `Resuming ${options.out} (${resumed.metadata.trainedChars.toLocaleString('en-US')} chars trained so far)`,
    );
  }
  const split = splitCorpus(corpus, TRAIN_DEFAULTS.validationFraction);
  const vocabulary =
    resumed?.vocabulary ?? Vocabulary.fromText(split.train + split.validation, TRAIN_DEFAULTS.maxVocab);
  // The size is chosen for the budget below unless it is given or resumed.
  const sizeGiven = resumed !== undefined || options.hidden !== undefined;
  let config: NetworkConfig = resumed?.config ?? {
    vocabSize: vocabulary.size,
    embed: options.embed ?? TRAIN_DEFAULTS.embed,
    hidden: options.hidden ?? TRAIN_DEFAULTS.hidden,
    layers: options.layers ?? TRAIN_DEFAULTS.layers,
  };
  const trainIds = vocabulary.encode(split.train);
  const validationIds = vocabulary.encode(split.validation);
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

  // 3b. The n-gram memory of the notes: built in seconds, it serves while the LSTM trains.
  const ngramStarted = performance.now();
  const notes = new NgramModel(vocabulary.size);
  notes.add(trainIds);
  reporter.info(
    `N-gram: order ${notes.order}, ${notes.size.toLocaleString('en-US')} n-grams, built in ${((performance.now() - ngramStarted) / 1000).toFixed(1)} s`,
  );

  // 4. Batches: shrink the batch for a small corpus rather than refuse it.
  const batch = Math.min(options.batch, Math.floor((trainIds.length - 1) / options.seq));
  if (batch < 1)
    throw new TrainInputError(
      `corpus too small: need at least ${options.seq + 1} chars of training text, got ${trainIds.length}`,
    );
  const batcher = new StreamBatcher(trainIds, batch, options.seq);
  const validationBatch = Math.min(32, Math.floor((validationIds.length - 1) / options.seq));
  const periodicIds = validationIds.subarray(
    0,
    Math.max(TRAIN_DEFAULTS.periodicValidationChars, validationBatch * options.seq + 1),
  );
  const finalIds = validationIds.subarray(
    0,
    Math.max(TRAIN_DEFAULTS.finalValidationChars, validationBatch * options.seq + 1),
  );

  // 5. Backend, budget and size: the speed measured on the backend turns epochs into minutes,
  // and minutes into the largest model they can train well.
  const backend = await selectSequenceBackend(options.backend, trainingProbe(config, batch, options.seq));
  reporter.info(`Backend: ${backend.name} (${backend.reason})`);
  // Each shape is timed once: the budget's speed for the default size is also the size search's first.
  const speeds = new Map<string, Promise<number>>();
  const measure = (candidate: NetworkConfig) => {
    const shape = `${candidate.layers}×${candidate.hidden}`;
    if (!speeds.has(shape)) speeds.set(shape, measureTrainingSpeed(candidate, batch, options.seq, options.dropout));
    return speeds.get(shape)!;
  };
  const budget = await chooseBudget(options, usingDefault, trainIds.length, () => measure(config));
  reporter.info(budget.description);
  if (!sizeGiven && budget.seconds !== undefined) {
    const size = await chooseModelSize(config, budget.seconds, measure);
    config = size.config;
    reporter.info(size.reason);
  }

  // 6. The model.
  const params = resumed ? parametersFromWeights(config, resumed.weights) : initialParameters(config, options.seed);
  const model = new CharLstm(config, params);
  const optimizer = new Adam(params, ADAM_DEFAULTS);
  if (resumed) {
    try {
      const state = loadOptimizerState(options.out, config, resumed.weightsFile);
      if ('missing' in state) {
        reporter.info(`Note: no optimizer state to resume (${state.missing}); Adam starts afresh.`);
      } else {
        optimizer.restore(state);
        reporter.info(`Optimizer state restored at step ${state.step}.`);
      }
    } catch (error) {
      if (error instanceof ModelFormatError) throw new TrainInputError(`cannot resume: ${error.message}`);
      throw error;
    }
  }
  // Steps already taken by the resumed optimiser: the warm-up, the dropout seeds and the place in
  // the data go on from there rather than repeating.
  const firstStep = optimizer.step;
  reporter.info(
    `Model: ${config.layers}×${config.hidden} LSTM, embedding ${config.embed}, ${countParameters(config).toLocaleString('en-US')} parameters; batch ${batch}, seq ${options.seq}, lr ${options.lr}`,
  );

  // Validation scores the LSTM at every position, so that the mixture's gate can be fitted on the
  // same positions; the n-grams' side of those samples never changes and is computed once.
  const scorable = (ids: Int32Array) => validationBatch >= 1 && ids.length > validationBatch * options.seq;
  // How much each order's counts are discounted suits some notes better than others; the held-out
  // text chooses.
  if (scorable(periodicIds)) notes.tuneDiscountScale(periodicIds);
  const periodicSamples = scorable(periodicIds)
    ? ngramSamples(
        periodicIds,
        scoredPositions(periodicIds.length, validationBatch, options.seq),
        notes,
        vocabulary.size,
      )
    : undefined;
  let mixer: Mixer | undefined;
  const scoreValidation = async (ids: Int32Array): Promise<LstmScores | null> =>
    scorable(ids) ? scoreLstm(model, ids, validationBatch, options.seq) : null;
  /** Refits the gate on samples with the LSTM's scores; the mixture's cross-fitted nats. */
  const refitMixture = (samples: MixtureSamples | undefined, scores: LstmScores | null): number | null => {
    if (!samples || !scores) return null;
    setLstmScores(samples, scores);
    const fitted = fitMixture(samples, mixer);
    mixer = fitted.mixer;
    return fitted.nats;
  };
  const hyperparameters = {
    layers: config.layers,
    hidden: config.hidden,
    embed: config.embed,
    seq: options.seq,
    batch,
    lr: options.lr,
    dropout: options.dropout,
    seed: options.seed,
  };
  const priorChars = resumed?.metadata.trainedChars ?? 0;
  const priorSteps = resumed?.metadata.steps ?? 0;
  const save = (
    weights: Map<string, Float32Array>,
    figures: Figures,
    meta: { steps: number; chars: number; seconds: number; lstmTrained: boolean },
    optimizerState?: OptimizerState,
  ) => {
    const nats = figures.mixture ?? figures.lstm;
    const metadata: ModelMetadata = {
      createdAt: new Date().toISOString(),
      hyperparameters,
      corpus: {
        // Names only: a model file may be shared, and absolute paths would tell where its author keeps what.
        sources: usingDefault ? ['(embedded default corpus)'] : options.paths.map((p) => basename(p)),
        chars: corpus.chars,
        trainChars: trainIds.length,
        validationChars: validationIds.length,
        split: split.how,
      },
      validation: nats === null ? null : { nats, bpc: nats / LN2 },
      trainedChars: priorChars + meta.chars,
      steps: priorSteps + meta.steps,
      seconds: meta.seconds,
      backend: backend.name,
      lstmTrained: meta.lstmTrained,
      validationParts: { lstmNats: figures.lstm, ngramNats: figures.ngram },
      ...(mixer ? { mixer: mixer.toJSON() } : {}),
    };
    const weightsFile = saveModel(options.out, { config, vocabulary, weights, metadata });
    if (optimizerState) saveOptimizerState(options.out, config, weightsFile, optimizerState);
  };

  // 6b. A first model within seconds: the n-gram, with the LSTM's share fitted to what an
  // untrained LSTM knows (nothing), so completions work while the LSTM trains.
  forgetLearned(options.out);
  saveNgram(options.out, notes, vocabulary);
  if (!resumed && periodicSamples) {
    mixer = fitMixture(periodicSamples).mixer;
    const ngramOnly = mixer.loss(periodicSamples);
    save(
      await readWeights(params),
      { lstm: null, ngram: periodicSamples.notesNats, mixture: ngramOnly },
      { steps: 0, chars: 0, seconds: 0, lstmTrained: false },
    );
    reporter.info(
      `Saved an n-gram model for completions while the LSTM trains: ${(ngramOnly / LN2).toFixed(3)} bits/char on ${periodicSamples.count.toLocaleString('en-US')} validation chars`,
    );
  }

  // 7. The loop. Time counts from here, so the budget covers training and validation.
  const started = performance.now();
  let trainingSeconds = 0;
  let step = 0;
  let state: LstmState = zeroState(config, batch);
  let smoothedLoss = NaN;
  /** The best weights so far (as saved), with the steps and chars of this run that led to them and their figures. */
  let best:
    { nats: number; weights: Map<string, Float32Array>; steps: number; chars: number; figures: Figures } | undefined;
  if (resumed) {
    // The model being resumed is the one to beat, scored on today's split, which may differ from
    // the split it was trained with.
    const scores = await scoreValidation(periodicIds);
    const nats = scores && lstmNats(scores);
    if (nats !== null) {
      best = {
        nats,
        weights: resumed.weights,
        steps: 0,
        chars: 0,
        figures: { lstm: nats, ngram: null, mixture: null },
      };
      reporter.info(
        `The resumed model scores ${(nats / LN2).toFixed(3)} bits/char on this validation set; only a better checkpoint replaces it.`,
      );
    }
  }
  let lastValidationBpc: number | null = null;
  let evaluationsWithoutImprovement = 0;
  let stoppedBy: TrainResult['stoppedBy'] = 'budget';
  let nextEvaluation = budget.evaluateEvery;
  const elapsed = () => (performance.now() - started) / 1000;
  const progressFraction = () => (budget.seconds ? elapsed() / budget.seconds : step / budget.steps!);

  while (progressFraction() < 1) {
    // The SIGINT handler only runs between macrotasks, and on wasm every await in a step resolves
    // as a microtask: without this turn of the event loop Ctrl-C would wait for the budget to end.
    await new Promise((resolve) => setImmediate(resolve));
    if (shouldStop()) {
      stoppedBy = 'interrupted';
      break;
    }
    const k = (firstStep + step) % batcher.batchesPerEpoch;
    if (k === 0 && step > 0) {
      // A new epoch restarts every stream at its beginning, so the carried state no longer applies.
      disposeState(state);
      state = zeroState(config, batch);
    }
    const { inputs, targets } = batcher.batch(k);
    const stepStarted = performance.now();
    const result = await model.trainStep(
      inputs,
      targets,
      batch,
      options.seq,
      state,
      options.dropout,
      options.seed * 100_003 + firstStep + step,
    );
    disposeState(state);
    state = result.state;
    optimizer.apply(result.gradients, learningRate(options.lr, firstStep + step, progressFraction()));
    trainingSeconds += (performance.now() - stepStarted) / 1000;
    step++;
    smoothedLoss = Number.isNaN(smoothedLoss) ? result.loss : 0.95 * smoothedLoss + 0.05 * result.loss;
    if (!Number.isFinite(result.loss))
      throw new Error(`training diverged at step ${step} (loss ${result.loss}); try a lower --lr`);

    const due = budget.seconds ? elapsed() >= nextEvaluation : step >= nextEvaluation;
    if (due) {
      const evaluationStarted = performance.now();
      const scores = await scoreValidation(periodicIds);
      const nats = scores && lstmNats(scores);
      // Validation may take at most a tenth of the time, however short the budget is; a step
      // budget is held to that too, or its twenty evaluations can outlast the training.
      const evaluationSeconds = (performance.now() - evaluationStarted) / 1000;
      nextEvaluation = budget.seconds
        ? elapsed() + Math.max(budget.evaluateEvery, 9 * evaluationSeconds)
        : step + Math.max(budget.evaluateEvery, Math.ceil((9 * evaluationSeconds * step) / trainingSeconds));
      lastValidationBpc = nats === null ? null : nats / LN2;
      if (nats === null || !best || nats < best.nats) {
        const mixture = refitMixture(periodicSamples, scores);
        if (mixture !== null) lastValidationBpc = mixture / LN2;
        const figures: Figures = { lstm: nats, ngram: periodicSamples?.notesNats ?? null, mixture };
        best = {
          nats: nats ?? Infinity,
          weights: await readWeights(params),
          steps: step,
          chars: step * batch * options.seq,
          figures,
        };
        save(
          best.weights,
          figures,
          { steps: best.steps, chars: best.chars, seconds: elapsed(), lstmTrained: true },
          await optimizer.state(),
        );
        evaluationsWithoutImprovement = 0;
      } else if (++evaluationsWithoutImprovement >= TRAIN_DEFAULTS.patience && budget.earlyStopping) {
        stoppedBy = 'early stopping';
        break;
      }
    }
    const fraction = Math.min(1, progressFraction());
    reporter.progress({
      fraction,
      charsPerSecond: (step * batch * options.seq) / trainingSeconds,
      loss: smoothedLoss,
      validationBpc: lastValidationBpc,
      etaSeconds: fraction > 0 ? (elapsed() / fraction) * (1 - fraction) : NaN,
      epoch: Math.floor(step / batcher.batchesPerEpoch) + 1,
    });
  }
  disposeState(state);

  // 8. The final model is the best checkpoint, scored on the validation set (up to
  // finalValidationChars of it). Ctrl-C must return in seconds, and validating takes longer than
  // that, so an interrupted run validates nothing: its best checkpoint is already on disk with its
  // figures and optimizer state. With no checkpoint yet, the weights and optimizer state are saved
  // as they stand for --resume, marked as an LSTM not yet trained, so the server goes on serving
  // the n-gram saved at the start.
  const interrupted = stoppedBy === 'interrupted';
  let figures: Figures = best?.figures ?? { lstm: null, ngram: null, mixture: null };
  let saved: { lstmTrained: boolean; optimizerState?: OptimizerState } | undefined;
  if (interrupted) {
    if (!best && step > 0) {
      const ngramOnly = periodicSamples && mixer ? mixer.loss(periodicSamples) : null;
      figures = { lstm: null, ngram: periodicSamples?.notesNats ?? null, mixture: ngramOnly };
      best = {
        nats: Infinity,
        weights: await readWeights(params),
        steps: step,
        chars: step * batch * options.seq,
        figures,
      };
      saved = { lstmTrained: ngramOnly === null, optimizerState: await optimizer.state() };
    }
  } else {
    const current = await readWeights(params);
    const currentScores = step > 0 ? await scoreValidation(periodicIds) : null;
    const currentNats = currentScores && lstmNats(currentScores);
    let currentIsBest = false;
    if (step > 0 && (!best || (currentNats !== null && currentNats < best.nats))) {
      best = {
        nats: currentNats ?? Infinity,
        weights: current,
        steps: step,
        chars: step * batch * options.seq,
        figures,
      };
      currentIsBest = true;
    }
    if (best) {
      assignWeights(params, best.weights);
      reporter.info(
        `Scoring the best checkpoint and the mixture on ${finalIds.length === validationIds.length ? 'the whole validation set' : `${finalIds.length.toLocaleString('en-US')} validation chars`}…`,
      );
      const samples = scorable(finalIds)
        ? ngramSamples(finalIds, scoredPositions(finalIds.length, validationBatch, options.seq), notes, vocabulary.size)
        : undefined;
      const scores = await scoreValidation(finalIds);
      figures = {
        lstm: scores && lstmNats(scores),
        ngram: samples?.notesNats ?? null,
        mixture: refitMixture(samples, scores),
      };
      // An earlier checkpoint's optimizer state was saved with it; the current one's is saved now.
      saved = { lstmTrained: true, optimizerState: currentIsBest ? await optimizer.state() : undefined };
    }
  }
  const finalNats = figures.mixture ?? figures.lstm;
  const seconds = elapsed();
  if (best && saved)
    save(
      best.weights,
      figures,
      { steps: best.steps, chars: best.chars, seconds, lstmTrained: saved.lstmTrained },
      saved.optimizerState,
    );
  if (!interrupted && best)
    reporter.info(
      `Validation, nats/char: LSTM ${formatNats(figures.lstm)}, n-gram ${formatNats(figures.ngram)}, mixture ${formatNats(figures.mixture)}`,
    );
  if (interrupted) {
    const since = best ? step - best.steps : 0;
    reporter.info(
      !best
        ? 'Interrupted before the first step: nothing new was saved.'
        : saved
          ? `Interrupted before the first checkpoint: saved the weights and optimizer state as they stand to ${options.out}, for --resume.`
          : `Interrupted: the best checkpoint stays in ${options.out}${since > 0 ? `; the ${since} step${since === 1 ? '' : 's'} since it were not validated` : ''}.`,
    );
  }

  let sample = '';
  if (best && !interrupted) {
    const lstm = new LstmPredictor({ config, vocabulary, weights: best.weights });
    const predictor = mixer
      ? new MixturePredictor({ vocabulary, lstm, notes, mixer }, { model: documentNgram(vocabulary.size) })
      : lstm;
    sample = await generate(
      predictor,
      split.validation.slice(0, 40),
      TRAIN_DEFAULTS.sampleChars,
      TRAIN_DEFAULTS.sampleTemperature,
      options.seed,
    );
    lstm.dispose();
  }
  optimizer.dispose();
  model.dispose();
  return {
    model: options.out,
    validationNats: finalNats,
    validationBpc: finalNats === null ? null : finalNats / LN2,
    lstmValidationNats: figures.lstm,
    ngramValidationNats: figures.ngram,
    charsPerSecond: trainingSeconds > 0 ? (step * batch * options.seq) / trainingSeconds : 0,
    backend: backend.name,
    steps: step,
    trainedChars: step * batch * options.seq,
    seconds,
    stoppedBy,
    sample,
  };
}

/** Validation figures in nats per char: the LSTM alone, the notes' n-gram alone, and their mixture as served. */
interface Figures {
  lstm: number | null;
  ngram: number | null;
  mixture: number | null;
}

function formatNats(nats: number | null): string {
  return nats === null ? 'n/a' : nats.toFixed(3);
}

interface Budget {
  seconds?: number;
  steps?: number;
  evaluateEvery: number;
  earlyStopping: boolean;
  description: string;
}

async function chooseBudget(
  options: TrainOptions,
  usingDefault: boolean,
  trainChars: number,
  measureSpeed: () => Promise<number>,
): Promise<Budget> {
  const batchChars = options.batch * options.seq;
  if (options.chars !== undefined) {
    const steps = Math.max(1, Math.ceil(options.chars / batchChars));
    return {
      steps,
      evaluateEvery: Math.max(1, Math.ceil(steps / TRAIN_DEFAULTS.evaluationsPerRun)),
      earlyStopping: false,
      description: `Budget: ${(steps * batchChars).toLocaleString('en-US')} chars (${steps} steps)`,
    };
  }
  if (options.epochs !== undefined) {
    const steps = Math.max(1, Math.round((options.epochs * trainChars) / batchChars));
    return {
      steps,
      evaluateEvery: Math.max(1, Math.ceil(steps / TRAIN_DEFAULTS.evaluationsPerRun)),
      earlyStopping: false,
      description: `Budget: ${options.epochs} epoch${options.epochs === 1 ? '' : 's'} (${steps} steps)`,
    };
  }
  let minutes = options.minutes;
  let why = 'as asked';
  if (minutes === undefined) {
    if (usingDefault) {
      minutes = TRAIN_DEFAULTS.defaultCorpusMinutes;
      why = 'default for the embedded corpus; set --minutes or --epochs to change';
    } else {
      const charsPerSecond = await measureSpeed();
      const wanted = (TRAIN_DEFAULTS.targetEpochs * trainChars) / (charsPerSecond * TRAIN_DEFAULTS.trainingShare) / 60;
      minutes = Math.min(TRAIN_DEFAULTS.maxMinutes, Math.max(TRAIN_DEFAULTS.minMinutes, Math.round(wanted * 10) / 10));
      why = `about ${TRAIN_DEFAULTS.targetEpochs} epochs of your notes at ${Math.round(charsPerSecond).toLocaleString('en-US')} chars/s for the default size, within ${TRAIN_DEFAULTS.minMinutes}–${TRAIN_DEFAULTS.maxMinutes} minutes, with early stopping; set --minutes or --epochs to change`;
    }
  }
  const seconds = minutes * 60;
  return {
    seconds,
    evaluateEvery: Math.max(5, seconds / TRAIN_DEFAULTS.evaluationsPerRun),
    earlyStopping: options.minutes === undefined,
    description: `Budget: ${minutes} minute${minutes === 1 ? '' : 's'} (${why})`,
  };
}

/** Warm-up, then cosine decay to a floor over the budget. */
export function learningRate(base: number, step: number, progress: number): number {
  const warmup = TRAIN_DEFAULTS.warmupSteps > 0 ? Math.min(1, (step + 1) / TRAIN_DEFAULTS.warmupSteps) : 1;
  const cosine = 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
  return base * warmup * (TRAIN_DEFAULTS.lrFloor + (1 - TRAIN_DEFAULTS.lrFloor) * cosine);
}

/**
 * Auto backend selection times this on a GPU and on the CPU: one training step of the real model
 * and batch over a few timesteps, enough to show which is faster without a long wait on the slower.
 */
export function trainingProbe(config: NetworkConfig, batch: number, seq: number): () => Promise<void> {
  const steps = Math.min(seq, 8);
  const ids = Int32Array.from({ length: batch * steps }, (_, i) => 1 + (i % (config.vocabSize - 1)));
  return async () => {
    const model = new CharLstm(config, initialParameters(config, 1));
    const state = zeroState(config, batch);
    const result = await model.trainStep(ids, ids, batch, steps, state, 0, 1);
    await Promise.all([...result.gradients.values()].map((g) => g.data()));
    tf.dispose([...result.gradients.values()]);
    disposeState(result.state);
    disposeState(state);
    model.dispose();
  };
}

function countZeros(ids: Int32Array): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === 0) n++;
  return n;
}

function ensureWritable(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (error) {
    throw new TrainInputError(
      `cannot write the model to ${dir}: ${(error as Error).message}. Choose another place with --out DIR.`,
    );
  }
}
