// The training loop, readable top to bottom: corpus → vocabulary → split → model → steps with
// periodic validation and atomic best-checkpoint saves → final validation → sample.
import * as tf from '@tensorflow/tfjs';
import { accessSync, constants, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackendChoice, selectBackend } from './backend';
import { StreamBatcher } from './batches';
import { defaultCorpusPaths, describeSkipped, loadCorpus, splitCorpus } from './corpus';
import { TRAIN_DEFAULTS } from './defaults';
import { loadModel, ModelFormatError, ModelMetadata, saveModel } from './format';
import { NetworkConfig, parameterShapes } from './architecture';
import {
  assignWeights, CharLstm, disposeState, initialParameters, LstmState, parametersFromWeights, readWeights, zeroState,
} from './network';
import { Adam, ADAM_DEFAULTS } from './optimizer';
import { generate, Predictor } from './inference';
import { Vocabulary } from './vocab';

export interface TrainOptions {
  /** Files and folders of notes; empty means the embedded default corpus. */
  paths: string[];
  packageRoot: string;
  out: string;
  minutes?: number;
  epochs?: number;
  /** A budget in training characters seen, for comparing recipes per character. */
  chars?: number;
  layers: number;
  hidden: number;
  embed: number;
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
  validationNats: number | null;
  validationBpc: number | null;
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

export async function train(options: TrainOptions, reporter: TrainReporter, shouldStop: () => boolean = () => false): Promise<TrainResult> {
  // 1. The corpus.
  const usingDefault = options.paths.length === 0;
  const paths = usingDefault ? defaultCorpusPaths(options.packageRoot) : options.paths;
  if (usingDefault) {
    reporter.info('No PATH given: training on the embedded default corpus (this project\'s own docs and sources).');
    reporter.info('To learn your own notes instead: npm run train -- ~/notes');
  }
  let corpus;
  try {
    corpus = loadCorpus(paths);
  } catch (error) {
    throw new TrainInputError((error as Error).message);
  }
  const skipped = describeSkipped(corpus.skipped);
  if (skipped) reporter.info(skipped);
  if (corpus.documents.length === 0 || corpus.chars === 0) {
    throw new TrainInputError(`no usable text in ${paths.join(', ')}: give files or folders of UTF-8 text (.md, .txt, .org, …)`);
  }
  reporter.info(`Corpus: ${corpus.documents.length} file${corpus.documents.length === 1 ? '' : 's'}, ${corpus.chars.toLocaleString('en-US')} chars`);

  // 2. Where the model goes, checked before any time is spent training.
  ensureWritable(options.out);

  // 3. Vocabulary and architecture: new, or those of the model being resumed.
  let resumed: ReturnType<typeof loadModel> | undefined;
  if (options.resume) {
    try {
      resumed = loadModel(options.out);
    } catch (error) {
      if (error instanceof ModelFormatError) throw new TrainInputError(`cannot resume: ${error.message}`);
      throw error;
    }
    reporter.info(`Resuming ${options.out} (${resumed.metadata.trainedChars.toLocaleString('en-US')} chars trained so far)`);
  }
  const split = splitCorpus(corpus, TRAIN_DEFAULTS.validationFraction);
  const vocabulary = resumed?.vocabulary ?? Vocabulary.fromText(split.train + split.validation, TRAIN_DEFAULTS.maxVocab);
  const config: NetworkConfig = resumed?.config ?? {
    vocabSize: vocabulary.size, embed: options.embed, hidden: options.hidden, layers: options.layers,
  };
  const trainIds = vocabulary.encode(split.train);
  const validationIds = vocabulary.encode(split.validation);
  reporter.info(`Validation: ${split.how}; vocabulary ${vocabulary.size} symbols`);

  // 4. Batches: shrink the batch for a small corpus rather than refuse it.
  const batch = Math.min(options.batch, Math.floor((trainIds.length - 1) / options.seq));
  if (batch < 1) throw new TrainInputError(`corpus too small: need at least ${options.seq + 1} chars of training text, got ${trainIds.length}`);
  const batcher = new StreamBatcher(trainIds, batch, options.seq);
  const validationBatch = Math.min(32, Math.floor((validationIds.length - 1) / options.seq));
  const periodicIds = validationIds.subarray(0, Math.max(TRAIN_DEFAULTS.periodicValidationChars, validationBatch * options.seq + 1));

  // 5. The budget.
  const budget = chooseBudget(options, usingDefault, trainIds.length);
  reporter.info(budget.description);

  // 6. Backend and model.
  const backend = await selectBackend(options.backend, trainingProbe(config, batch, options.seq));
  reporter.info(`Backend: ${backend.name} (${backend.reason})`);
  const params = resumed ? parametersFromWeights(config, resumed.weights) : initialParameters(config, options.seed);
  const model = new CharLstm(config, params);
  const optimizer = new Adam(params, ADAM_DEFAULTS);
  reporter.info(`Model: ${config.layers}×${config.hidden} LSTM, embedding ${config.embed}, ${countParameters(config).toLocaleString('en-US')} parameters; batch ${batch}, seq ${options.seq}, lr ${options.lr}`);

  const evaluate = async (ids: Int32Array): Promise<number | null> => (validationBatch >= 1 ? validationLoss(model, ids, validationBatch, options.seq) : null);
  const hyperparameters = {
    layers: config.layers, hidden: config.hidden, embed: config.embed, seq: options.seq, batch, lr: options.lr,
    dropout: options.dropout, seed: options.seed,
  };
  const priorChars = resumed?.metadata.trainedChars ?? 0;
  const priorSteps = resumed?.metadata.steps ?? 0;
  const save = (weights: Map<string, Float32Array>, nats: number | null, meta: { steps: number; chars: number; seconds: number }) => {
    const metadata: ModelMetadata = {
      createdAt: new Date().toISOString(),
      hyperparameters,
      corpus: {
        sources: usingDefault ? ['(embedded default corpus)'] : options.paths,
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
    };
    saveModel(options.out, { config, vocabulary, weights, metadata });
  };

  // 7. The loop. Time counts from here, so the budget covers training and validation.
  const started = performance.now();
  let trainingSeconds = 0;
  let step = 0;
  let state: LstmState = zeroState(config, batch);
  let smoothedLoss = NaN;
  let best: { nats: number; weights: Map<string, Float32Array> } | undefined;
  let lastValidationBpc: number | null = null;
  let evaluationsWithoutImprovement = 0;
  let stoppedBy: TrainResult['stoppedBy'] = 'budget';
  let nextEvaluation = budget.evaluateEvery;
  const elapsed = () => (performance.now() - started) / 1000;
  const progressFraction = () => (budget.seconds ? elapsed() / budget.seconds : step / budget.steps!);

  while (progressFraction() < 1) {
    if (shouldStop()) {
      stoppedBy = 'interrupted';
      break;
    }
    const k = step % batcher.batchesPerEpoch;
    if (k === 0 && step > 0) {
      // A new epoch restarts every stream at its beginning, so the carried state no longer applies.
      disposeState(state);
      state = zeroState(config, batch);
    }
    const { inputs, targets } = batcher.batch(k);
    const stepStarted = performance.now();
    const result = await model.trainStep(inputs, targets, batch, options.seq, state, options.dropout, options.seed * 100_003 + step);
    disposeState(state);
    state = result.state;
    optimizer.apply(result.gradients, learningRate(options.lr, step, progressFraction()));
    trainingSeconds += (performance.now() - stepStarted) / 1000;
    step++;
    smoothedLoss = Number.isNaN(smoothedLoss) ? result.loss : 0.95 * smoothedLoss + 0.05 * result.loss;
    if (!Number.isFinite(result.loss)) throw new Error(`training diverged at step ${step} (loss ${result.loss}); try a lower --lr`);

    const due = budget.seconds ? elapsed() >= nextEvaluation : step >= nextEvaluation;
    if (due) {
      const evaluationStarted = performance.now();
      const nats = await evaluate(periodicIds);
      // Validation may take at most a tenth of the time, however short the budget is; a step
      // budget is held to that too, or its twenty evaluations can outlast the training.
      const evaluationSeconds = (performance.now() - evaluationStarted) / 1000;
      nextEvaluation = budget.seconds
        ? elapsed() + Math.max(budget.evaluateEvery, 9 * evaluationSeconds)
        : step + Math.max(budget.evaluateEvery, Math.ceil((9 * evaluationSeconds * step) / trainingSeconds));
      lastValidationBpc = nats === null ? null : nats / LN2;
      if (nats === null || !best || nats < best.nats) {
        best = { nats: nats ?? Infinity, weights: await readWeights(params) };
        save(best.weights, nats, { steps: step, chars: step * batch * options.seq, seconds: elapsed() });
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

  // 8. The final model is the best checkpoint, scored on the whole validation set.
  const current = await readWeights(params);
  const currentNats = step > 0 ? await evaluate(periodicIds) : null;
  if (!best || (currentNats !== null && currentNats < best.nats)) best = { nats: currentNats ?? Infinity, weights: current };
  assignWeights(params, best.weights);
  reporter.info('Scoring the best checkpoint on the whole validation set…');
  const finalNats = await evaluate(validationIds);
  const seconds = elapsed();
  save(best.weights, finalNats, { steps: step, chars: step * batch * options.seq, seconds });

  const predictor = new Predictor({ config, vocabulary, weights: best.weights });
  const sample = await generate(predictor, split.validation.slice(0, 40), TRAIN_DEFAULTS.sampleChars, TRAIN_DEFAULTS.sampleTemperature, options.seed);
  predictor.dispose();
  optimizer.dispose();
  model.dispose();
  return {
    model: options.out,
    validationNats: finalNats,
    validationBpc: finalNats === null ? null : finalNats / LN2,
    charsPerSecond: trainingSeconds > 0 ? (step * batch * options.seq) / trainingSeconds : 0,
    backend: backend.name,
    steps: step,
    trainedChars: step * batch * options.seq,
    seconds,
    stoppedBy,
    sample,
  };
}

interface Budget {
  seconds?: number;
  steps?: number;
  evaluateEvery: number;
  earlyStopping: boolean;
  description: string;
}

function chooseBudget(options: TrainOptions, usingDefault: boolean, trainChars: number): Budget {
  const batchChars = options.batch * options.seq;
  if (options.chars !== undefined) {
    const steps = Math.max(1, Math.ceil(options.chars / batchChars));
    return { steps, evaluateEvery: Math.max(1, Math.ceil(steps / TRAIN_DEFAULTS.evaluationsPerRun)), earlyStopping: false, description: `Budget: ${(steps * batchChars).toLocaleString('en-US')} chars (${steps} steps)` };
  }
  if (options.epochs !== undefined) {
    const steps = Math.max(1, Math.round((options.epochs * trainChars) / batchChars));
    return { steps, evaluateEvery: Math.max(1, Math.ceil(steps / TRAIN_DEFAULTS.evaluationsPerRun)), earlyStopping: false, description: `Budget: ${options.epochs} epoch${options.epochs === 1 ? '' : 's'} (${steps} steps)` };
  }
  let minutes = options.minutes;
  let why = 'as asked';
  if (minutes === undefined) {
    if (usingDefault) {
      minutes = TRAIN_DEFAULTS.defaultCorpusMinutes;
      why = 'default for the embedded corpus; set --minutes or --epochs to change';
    } else {
      const wanted = (TRAIN_DEFAULTS.targetEpochs * trainChars) / TRAIN_DEFAULTS.expectedCharsPerSecond / 60;
      minutes = Math.min(TRAIN_DEFAULTS.maxMinutes, Math.max(TRAIN_DEFAULTS.minMinutes, Math.round(wanted * 10) / 10));
      why = `about ${TRAIN_DEFAULTS.targetEpochs} epochs of your notes, with early stopping; set --minutes or --epochs to change`;
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

/** Mean cross-entropy in nats per char over ids, as contiguous streams carrying state. */
export async function validationLoss(model: CharLstm, ids: Int32Array, batch: number, seq: number): Promise<number> {
  const batcher = new StreamBatcher(ids, batch, seq);
  let state = zeroState(model.config, batch);
  let total = 0;
  for (let k = 0; k < batcher.batchesPerEpoch; k++) {
    const { inputs, targets } = batcher.batch(k);
    const result = await model.evaluate(inputs, targets, batch, seq, state);
    disposeState(state);
    state = result.state;
    total += result.loss;
  }
  disposeState(state);
  return total / batcher.batchesPerEpoch;
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

function countParameters(config: NetworkConfig): number {
  return parameterShapes(config).reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
}

function ensureWritable(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (error) {
    throw new TrainInputError(`cannot write the model to ${dir}: ${(error as Error).message}. Choose another place with --out DIR.`);
  }
}

