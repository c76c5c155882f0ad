// The learning rate along a run: constant, then a half cosine down over the budget's last share.
import { TRAIN_DEFAULTS } from './defaults';

/**
 * The rate at `progress` (0 to 1) through the budget, for a peak rate `lr` that falls over the last
 * `decay` share of the budget to `finalLrFactor` of itself; a decay of 0 keeps it constant.
 */
export function learningRateAt(
  lr: number,
  decay: number,
  progress: number,
  finalLrFactor: number = TRAIN_DEFAULTS.finalLrFactor,
): number {
  const into = decay > 0 ? Math.min(1, Math.max(0, (progress - (1 - decay)) / decay)) : 0;
  return lr * (finalLrFactor + ((1 - finalLrFactor) * (1 + Math.cos(Math.PI * into))) / 2);
}

/** The rate `progress` (0 to 1) through settling a checkpoint: from `from` down to `to` along the same half cosine. */
export function settlingRateAt(from: number, to: number, progress: number): number {
  return learningRateAt(from, 1, progress, to / from);
}

/** How the rate falls, for the line that describes the model being trained. */
export function describeDecay(decay: number, finalLrFactor: number = TRAIN_DEFAULTS.finalLrFactor): string {
  return decay > 0
    ? `, falling to ${finalLrFactor}× over the last ${Math.round(decay * 100)}% of the budget`
    : ', constant';
}

/**
 * How far the saved weights move toward the weights as they stand after Adam's step `step` (from 1): the
 * saved weights are then an average that reaches back over about the last `share` of the steps taken,
 * so a short run's average forgets its first steps as fast as a long run's, and a share of 0 saves
 * the weights as they stand. Averaging irons out the noise that each step at a high rate adds.
 */
export function averageRate(step: number, share: number): number {
  return 1 / (1 + share * step);
}
