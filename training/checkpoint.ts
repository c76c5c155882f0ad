// The model directory a training run writes: checked writable and locked before any time is spent,
// opened for --resume (shape, weights and Adam's state), and saved to atomically, with Adam's state
// beside the weights, each time validation finds a better model.
import { accessSync, constants, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { NetworkConfig } from '../model/architecture';
import { ModelFormatError } from '../model/files';
import { loadModel, ModelMetadata, saveModel } from '../model/format';
import type { EscapeModel } from '../model/escape';
import type { Mixer } from '../model/mixer';
import type { Vocabulary } from '../model/vocab';
import { acquireTrainingLock, LockHeldError } from './lock';
import { loadOptimizerState, OptimizerState, saveOptimizerState } from './optimizer-state';
import { TrainInputError, TrainOptions, TrainReporter } from './train-types';

/** Validation figures in nats per char: the LSTM alone, the notes' n-gram alone, and their mixture as served. */
export interface Figures {
  lstm: number | null;
  ngram: number | null;
  mixture: number | null;
}

/** Weights as saved, with the steps and chars of this run that led to them and their figures. */
export interface Checkpoint {
  /** The LSTM's validation nats that a later checkpoint must beat; Infinity when not scored. */
  nats: number;
  weights: Map<string, Float32Array>;
  steps: number;
  chars: number;
  figures: Figures;
}

/** Makes `dir` if need be and checks that files can be written there; a TrainInputError says why not. */
export function checkWritable(dir: string, remedy: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (error) {
    throw new TrainInputError(`cannot write the model to ${dir}: ${(error as Error).message}. ${remedy}`);
  }
}

/** Checks that the model can be written to `dir` and takes its training lock; returns the release. */
export function claimModelDirectory(dir: string): () => void {
  checkWritable(dir, 'Choose another place with --out DIR.');
  try {
    return acquireTrainingLock(dir);
  } catch (error) {
    if (error instanceof LockHeldError) throw new TrainInputError(error.message);
    throw error;
  }
}

export type ResumedModel = ReturnType<typeof loadModel>;

/** The model in --out, for --resume; shape flags that contradict it are an input error. */
export function openResumed(options: TrainOptions, reporter: TrainReporter): ResumedModel {
  const resumed = resumeStep(() => loadModel(options.out));
  const conflicts = (['layers', 'hidden', 'embed'] as const)
    .filter((key) => options[key] !== undefined && options[key] !== resumed.config[key])
    .map((key) => `--${key} ${options[key]} (the model has ${resumed.config[key]})`);
  if (conflicts.length > 0) {
    throw new TrainInputError(
      `cannot resume ${options.out} with a different shape: ${conflicts.join(', ')}. Leave these flags out to resume, or train anew into another --out.`,
    );
  }
  reporter.info(
    `Resuming ${options.out} (${resumed.metadata.trainedChars.toLocaleString('en-US')} chars trained so far)`,
  );
  return resumed;
}

/** Adam's state saved with the resumed weights; undefined, with a note, when there is none to use. */
export function resumedOptimizerState(
  out: string,
  resumed: ResumedModel,
  reporter: TrainReporter,
): OptimizerState | undefined {
  const state = resumeStep(() => loadOptimizerState(out, resumed.config, resumed.weightsFile));
  if ('damaged' in state) {
    reporter.info(`Warning: ${state.missing}; Adam starts afresh.`);
    return undefined;
  }
  if ('missing' in state) {
    reporter.info(`Note: no optimizer state to resume (${state.missing}); Adam starts afresh.`);
    return undefined;
  }
  reporter.info(`Optimizer state restored at step ${state.step}.`);
  return state;
}

/** A damaged model directory is the user's to fix: its reason becomes an input error. */
function resumeStep<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof ModelFormatError) throw new TrainInputError(`cannot resume: ${error.message}`);
    throw error;
  }
}

/** What every save of one run shares: the model's shape and vocabulary, and how it was trained. */
export interface RunDescription {
  config: NetworkConfig;
  vocabulary: Vocabulary;
  escape: EscapeModel;
  hyperparameters: ModelMetadata['hyperparameters'];
  corpus: ModelMetadata['corpus'];
  backend: string;
  /** The engine that takes the steps: wasm (this process, on the backend), or torch and where it runs. */
  engine: string;
  /** What the resumed model had been trained on before this run; zero for a new model. */
  prior: { chars: number; steps: number };
}

/** What every checkpoint of this run records besides its weights and figures. */
export function describeRun(run: {
  /** With the learning rate the run trains at, given or the default for its size and batch. */
  options: TrainOptions & { lr: number; weightDrop: number };
  config: NetworkConfig;
  batch: number;
  corpus: { chars: number };
  /** The corpus as the run uses it (dataset.ts). */
  text: {
    vocabulary: Vocabulary;
    escape: EscapeModel;
    trainIds: Int32Array;
    validationIds: Int32Array;
    notesIds: Int32Array;
    split: string;
  };
  usingDefault: boolean;
  backend: string;
  engine: string;
  resumed?: ResumedModel;
}): RunDescription {
  const { options, config, text, resumed } = run;
  const { seq, lr, decay, average, dropout, weightDrop, seed } = options;
  return {
    config,
    vocabulary: text.vocabulary,
    escape: text.escape,
    hyperparameters: {
      layers: config.layers,
      hidden: config.hidden,
      embed: config.embed,
      seq,
      batch: run.batch,
      lr,
      decay,
      average,
      dropout,
      weightDrop,
      seed,
    },
    corpus: {
      // Names only: a model file may be shared, and absolute paths would tell where its author keeps what.
      sources: run.usingDefault ? ['(embedded default corpus)'] : options.paths.map((p) => basename(p)),
      chars: run.corpus.chars,
      trainChars: text.trainIds.length,
      validationChars: text.validationIds.length,
      split: text.split,
      notesChars: text.notesIds.length,
    },
    backend: run.backend,
    engine: run.engine,
    prior: { chars: resumed?.metadata.trainedChars ?? 0, steps: resumed?.metadata.steps ?? 0 },
  };
}

export interface SaveRequest {
  weights: Map<string, Float32Array>;
  figures: Figures;
  /** This run's steps and chars that led to the weights, and its seconds so far. */
  steps: number;
  chars: number;
  seconds: number;
  /** False while the weights are unvalidated, so the server serves the n-gram rather than them. */
  lstmTrained: boolean;
  mixer?: Mixer;
  optimizerState?: OptimizerState;
}

/** Saves a run's models into its directory, each atomically, Adam's state after the weights it belongs to. */
export class ModelWriter {
  constructor(
    readonly out: string,
    private readonly run: RunDescription,
  ) {}

  save(request: SaveRequest): void {
    const { config, vocabulary, escape, prior } = this.run;
    const { figures } = request;
    const nats = figures.mixture ?? figures.lstm;
    const metadata: ModelMetadata = {
      createdAt: new Date().toISOString(),
      hyperparameters: this.run.hyperparameters,
      corpus: this.run.corpus,
      validation: nats === null ? null : { nats, bpc: nats / Math.LN2 },
      trainedChars: prior.chars + request.chars,
      steps: prior.steps + request.steps,
      seconds: request.seconds,
      backend: this.run.backend,
      engine: this.run.engine,
      lstmTrained: request.lstmTrained,
      validationParts: { lstmNats: figures.lstm, ngramNats: figures.ngram },
      ...(request.mixer ? { mixer: request.mixer.toJSON() } : {}),
    };
    const weightsFile = saveModel(this.out, { config, vocabulary, escape, weights: request.weights, metadata });
    if (request.optimizerState) saveOptimizerState(this.out, config, weightsFile, request.optimizerState);
  }
}
