// Every default of the trainer in one place, as nanoGPT keeps them at the top of train.py.
// Chosen for a time budget on a few CPU cores; the learning rate is high because runs are short.
import { DEFAULT_NETWORK } from '../model/architecture';

export const TRAIN_DEFAULTS = {
  layers: DEFAULT_NETWORK.layers,
  /** The size a time budget starts its search from (training/model-size.ts), and the size of --chars and --epochs runs. */
  hidden: DEFAULT_NETWORK.hidden,
  /** Hidden sizes a time budget chooses among. */
  hiddenSizes: [128, 192, 256, 384, 512],
  /**
   * A size is chosen only if the budget feeds it at least this many training chars per parameter: the larger size
   * served better at 2.8 and 3.8 per parameter, and no better at 1.7 and 1.9 (docs/measurements.md).
   */
  charsPerParameter: 2.5,
  /** The share of a time budget that goes to training steps rather than validation. */
  trainingShare: 0.9,
  embed: DEFAULT_NETWORK.embed,
  seq: 64,
  /**
   * Twice the steps of 64 streams for each character read, which a budget of minutes needs more than the wider
   * batch's smoother gradient; on a CPU a step of 32 streams costs nearly half a step of 64 (docs/measurements.md).
   */
  batch: 32,
  /**
   * The streams of a run on a GPU when --batch is not given. A GPU takes a step of many streams in about the time of a
   * step of few, so its characters per second grow with the batch, and a time budget reads many times more text.
   */
  gpuBatch: 256,
  /**
   * A GPU's default halves, down to a CPU's batch, while an epoch of the training text would take fewer steps than
   * this. Small notes read 256 streams at a time overfit after a few hundred steps, and a time budget's early stop
   * then keeps a model that fewer streams, taking more steps over the same text, beat (docs/measurements.md).
   */
  gpuMinStepsPerEpoch: 200,
  /**
   * Constant with no warm-up until the decay: budgets of a few minutes end while the loss is still
   * falling steeply, where a warm-up or an early decay costs more per character than it gains (the
   * recipe A/B against PyTorch in docs/measurements.md). The gradient clip guards the first updates.
   */
  lr: 3e-3,
  /**
   * The rate of an LSTM at least this wide stepped on a CPU's batch (at most `batch` streams). The wider the net, the
   * lower the rate it learns best at: a 2×512 trained for 20 minutes predicts tiny-shakespeare and the notes better at
   * 0.002 than at 0.003 or 0.0015, where a 2×384 is best at 0.003 and a 2×256 does worse at 0.002
   * (docs/measurements.md). A GPU's larger batch, whose gradient is smoother, was measured only at `lr`.
   */
  wide: { hidden: 512, lr: 2e-3 },
  /**
   * The last share of the budget over which the learning rate falls, along a half cosine, to
   * `finalLrFactor` of itself: a high rate finds the basin and a falling one settles into it.
   */
  decay: 0.25,
  finalLrFactor: 0.05,
  /**
   * With a share above 0, the weights saved are an average of those trained, reaching back over about that share of
   * the steps taken (training/schedule.ts's averageRate). Off by default: the average validates better as an LSTM
   * alone, yet the mixture served with it predicts worse (docs/measurements.md).
   */
  averageShare: 0,
  dropout: 0.1,
  /**
   * The share of each recurrent weight matrix a training step drops (DropConnect, as in AWD-LSTM), where the budget
   * reads the training text at least `minEpochs` times: a 2×512 that reads tiny-shakespeare 13 times predicts it better
   * with it, while one that reads the notes corpus 3.4 times predicts them a little worse (docs/measurements.md).
   */
  weightDrop: { rate: 0.25, minEpochs: 6 },
  clipNorm: 5,
  seed: 1,
  /**
   * Room for every character of Chinese or Japanese notes worth a slot; English notes use a few
   * hundred. The output layer grows with it, and so does each training step's cost.
   */
  maxVocab: 8192,
  /** Characters seen fewer times in the training text are UNKNOWN, spelled out by the escape model (model/escape.ts). */
  minCharCount: 2,
  validationFraction: 0.1,
  /** The embedded default corpus trains this long when no budget is given. */
  defaultCorpusMinutes: 3,
  /** A user's corpus gets about this many epochs, within the bounds below, before early stopping. */
  targetEpochs: 10,
  minMinutes: 2,
  maxMinutes: 30,
  /** Periodic validation uses at most this many chars so it stays a small share of the budget; the final figure uses all of it. */
  periodicValidationChars: 32_768,
  /** The final figure is scored on at most this many validation chars, so big notes do not wait minutes for it. */
  finalValidationChars: 400_000,
  evaluationsPerRun: 20,
  /** Stop early after this many evaluations without improvement. */
  patience: 5,
  /**
   * ...but only once the run has read its training text this many times. Before that a plateau is the high rate's
   * noise rather than overfitting, and stopping there keeps a model the rate's fall would have improved: a 2×512 on
   * the notes corpus under --minutes 20 stopped within its first epoch (docs/measurements.md).
   */
  epochsBeforeEarlyStop: 2,
  sampleChars: 300,
  sampleTemperature: 0.8,
} as const;

/** The weight drop of a run that reads the training text `epochs` times, when --weight-drop is not given. */
export function defaultWeightDrop(epochs: number): number {
  return epochs >= TRAIN_DEFAULTS.weightDrop.minEpochs ? TRAIN_DEFAULTS.weightDrop.rate : 0;
}

/** The learning rate of a run not given one: `wide.lr` for a wide LSTM stepped on a CPU's batch, else `lr`. */
export function defaultLearningRate(hidden: number, batch: number): number {
  const { wide } = TRAIN_DEFAULTS;
  return hidden >= wide.hidden && batch <= TRAIN_DEFAULTS.batch ? wide.lr : TRAIN_DEFAULTS.lr;
}
