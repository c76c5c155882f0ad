// The model's size for the time a user gives: the largest LSTM that the budget can feed enough
// characters per parameter, at the training speed measured on this machine's backend. A short
// budget on two cores is better spent on a small model that sees its data often than on a large
// one that barely starts.
import { NetworkConfig, parameterShapes } from '../model/architecture';
import { TRAIN_DEFAULTS } from './defaults';

export function countParameters(config: NetworkConfig): number {
  return parameterShapes(config).reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
}

export interface SizeChoice {
  config: NetworkConfig;
  /** The measured speed of the chosen size. */
  charsPerSecond: number;
  /** One line for the trainer's first lines: the choice and why. */
  reason: string;
}

export type SpeedMeasure = (config: NetworkConfig) => Promise<number>;

/**
 * Picks the hidden size (from TRAIN_DEFAULTS.hiddenSizes, `base.layers` layers) for a budget of
 * `seconds`: starting from the default size, it grows while the next size would still see
 * TRAIN_DEFAULTS.charsPerParameter training chars per parameter, or shrinks until one does.
 */
export async function chooseModelSize(
  base: NetworkConfig,
  seconds: number,
  measure: SpeedMeasure,
): Promise<SizeChoice> {
  const sizes = TRAIN_DEFAULTS.hiddenSizes;
  const wanted = TRAIN_DEFAULTS.charsPerParameter;
  const trainingSeconds = seconds * TRAIN_DEFAULTS.trainingShare;
  const measured = new Map<
    number,
    { config: NetworkConfig; charsPerSecond: number; chars: number; perParameter: number }
  >();
  const estimate = async (hidden: number) => {
    let known = measured.get(hidden);
    if (!known) {
      const config = { ...base, hidden };
      const charsPerSecond = await measure(config);
      const chars = charsPerSecond * trainingSeconds;
      known = { config, charsPerSecond, chars, perParameter: chars / countParameters(config) };
      measured.set(hidden, known);
    }
    return known;
  };
  let index = sizes.indexOf(TRAIN_DEFAULTS.hidden);
  if ((await estimate(sizes[index])).perParameter >= wanted) {
    while (index + 1 < sizes.length && (await estimate(sizes[index + 1])).perParameter >= wanted) index++;
  } else {
    while (index > 0 && (await estimate(sizes[index])).perParameter < wanted) index--;
  }
  const chosen = await estimate(sizes[index]);
  const others = [...measured.values()]
    .filter((m) => m !== chosen)
    .sort((a, b) => a.config.hidden - b.config.hidden)
    .map(
      (m) =>
        `${m.config.layers}×${m.config.hidden} would get ${formatChars(m.chars)} (${m.perParameter.toFixed(1)} per parameter) at ${Math.round(m.charsPerSecond).toLocaleString('en-US')} chars/s`,
    );
  const budget = `${formatMinutes(seconds)} at a measured ${Math.round(chosen.charsPerSecond).toLocaleString('en-US')} chars/s gives about ${formatChars(chosen.chars)} training chars, ${chosen.perParameter.toFixed(1)} per parameter`;
  return {
    config: chosen.config,
    charsPerSecond: chosen.charsPerSecond,
    reason: `Size: ${chosen.config.layers}×${chosen.config.hidden} fits the budget (${budget}; the largest size with at least ${wanted} is chosen${others.length ? `; ${others.join('; ')}` : ''}). Set --hidden and --layers to choose yourself.`,
  };
}

function formatChars(chars: number): string {
  return chars >= 1e6 ? `${(chars / 1e6).toFixed(1)}M` : `${Math.round(chars / 1e3)}k`;
}

function formatMinutes(seconds: number): string {
  const minutes = Math.round((seconds / 60) * 10) / 10;
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}
