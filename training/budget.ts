// How long a run trains and how large a model it trains: --chars and --epochs count steps; a time
// budget, given or derived from the speed measured on the backend, also picks the largest size it
// can train well (model-size.ts).
import type { NetworkConfig } from '../model/architecture';
import { TRAIN_DEFAULTS } from './defaults';
import { chooseModelSize, SpeedMeasure } from './model-size';
import type { TrainOptions, TrainReporter } from './train-types';

export interface Budget {
  seconds?: number;
  steps?: number;
  /** Seconds, or steps, between validations. */
  evaluateEvery: number;
  earlyStopping: boolean;
  description: string;
}

export interface Plan {
  budget: Budget;
  config: NetworkConfig;
  /** How many times the budget reads the training text: planned for a time budget from the size's speed. */
  epochs: number;
}

/**
 * The budget, and the size it trains unless the size is given or resumed; each reported in one
 * line. Every shape is timed at most once: the budget's speed for the default size is also the size
 * search's first.
 */
export async function planTraining(
  options: TrainOptions & { batch: number },
  run: {
    usingDefault: boolean;
    trainChars: number;
    config: NetworkConfig;
    sizeGiven: boolean;
    /** Training chars per second of a shape, as the engine that will train it runs it. */
    measure: SpeedMeasure;
  },
  reporter: TrainReporter,
): Promise<Plan> {
  const speeds = new Map<string, Promise<number>>();
  const measure: SpeedMeasure = (candidate) => {
    const shape = `${candidate.layers}×${candidate.hidden}`;
    if (!speeds.has(shape)) speeds.set(shape, run.measure(candidate));
    return speeds.get(shape)!;
  };
  const budget = await chooseBudget(options, run.usingDefault, run.trainChars, () => measure(run.config));
  reporter.info(budget.description);
  let config = run.config;
  if (!run.sizeGiven && budget.seconds !== undefined) {
    const size = await chooseModelSize(run.config, budget.seconds, measure);
    reporter.info(size.reason);
    config = size.config;
  }
  const chars =
    budget.seconds !== undefined
      ? budget.seconds * TRAIN_DEFAULTS.trainingShare * (await measure(config))
      : budget.steps! * options.batch * options.seq;
  return { budget, config, epochs: chars / Math.max(1, run.trainChars) };
}

export async function chooseBudget(
  options: Pick<TrainOptions, 'seq' | 'chars' | 'epochs' | 'minutes' | 'earlyStop'> & { batch: number },
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
      earlyStopping: options.earlyStop === true,
      description: `Budget: ${(steps * batchChars).toLocaleString('en-US')} chars (${steps} steps)`,
    };
  }
  if (options.epochs !== undefined) {
    const steps = Math.max(1, Math.round((options.epochs * trainChars) / batchChars));
    return {
      steps,
      evaluateEvery: Math.max(1, Math.ceil(steps / TRAIN_DEFAULTS.evaluationsPerRun)),
      earlyStopping: options.earlyStop === true,
      description: `Budget: ${options.epochs} epoch${options.epochs === 1 ? '' : 's'} (${steps} steps)`,
    };
  }
  let minutes = options.minutes;
  let why = 'as asked';
  if (minutes === undefined) {
    if (usingDefault) {
      minutes = TRAIN_DEFAULTS.defaultCorpusMinutes;
      why = 'default for the embedded corpus';
    } else {
      const charsPerSecond = await measureSpeed();
      const wanted = (TRAIN_DEFAULTS.targetEpochs * trainChars) / (charsPerSecond * TRAIN_DEFAULTS.trainingShare) / 60;
      minutes = Math.min(TRAIN_DEFAULTS.maxMinutes, Math.max(TRAIN_DEFAULTS.minMinutes, Math.round(wanted * 10) / 10));
      why = `about ${TRAIN_DEFAULTS.targetEpochs} epochs of your notes at ${Math.round(charsPerSecond).toLocaleString('en-US')} chars/s for the default size, within ${TRAIN_DEFAULTS.minMinutes}–${TRAIN_DEFAULTS.maxMinutes} minutes`;
    }
  }
  const seconds = minutes * 60;
  const change = options.minutes === undefined ? '; set --minutes or --epochs to change' : '';
  return {
    seconds,
    evaluateEvery: Math.max(5, seconds / TRAIN_DEFAULTS.evaluationsPerRun),
    // A time budget is what the user can spare, not a number of passes: on a GPU a few minutes read small notes a
    // hundred times over, and the validation figure stops improving long before the budget ends.
    earlyStopping: true,
    description: `Budget: ${minutes} minute${minutes === 1 ? '' : 's'} (${why}, with early stopping${change})`,
  };
}
