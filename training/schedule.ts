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

/** How the rate falls, for the line that describes the model being trained. */
export function describeDecay(decay: number, finalLrFactor: number = TRAIN_DEFAULTS.finalLrFactor): string {
  return decay > 0
    ? `, falling to ${finalLrFactor}× over the last ${Math.round(decay * 100)}% of the budget`
    : ', constant';
}
