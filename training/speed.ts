// How fast training runs on the active backend, timed on the engine's own step (forward, backward
// with dropout, Adam's update), so that the speed the budget and the size search plan with, the
// one auto backend selection compares and the one npm run bench reports are the speed of training.
import type { NetworkConfig } from '../model/architecture';
import type { Probe } from '../backends/select';
import { TfjsEngine } from './engine';
import { TRAIN_DEFAULTS } from './defaults';

export interface StepShape {
  batch: number;
  seq: number;
  dropout: number;
  weightDrop: number;
}

/** Training chars per second: over the fastest timed step, and over the median one. */
export interface StepSpeed {
  fastest: number;
  median: number;
}

/**
 * Times full training steps of a new `config` model on synthetic text: `warmup` steps untimed
 * (kernels compile, memory is reserved), then `timed` steps, each until its update has landed.
 */
export async function timeTrainingStep(
  config: NetworkConfig,
  shape: StepShape,
  counts: { warmup: number; timed: number } = { warmup: 1, timed: 2 },
): Promise<StepSpeed> {
  const { batch, seq, dropout, weightDrop } = shape;
  const trainIds = Int32Array.from({ length: batch * seq + 1 }, (_, i) => 1 + ((i * 7919) % (config.vocabSize - 1)));
  const engine = new TfjsEngine({
    config,
    trainIds,
    batch,
    seq,
    dropout,
    weightDrop,
    lr: 1e-3,
    seed: 1,
    averageShare: TRAIN_DEFAULTS.averageShare,
  });
  const times: number[] = [];
  try {
    for (let k = 0; k < counts.warmup + counts.timed; k++) {
      const started = performance.now();
      await engine.step();
      await engine.settled();
      if (k >= counts.warmup) times.push(performance.now() - started);
    }
  } finally {
    await engine.dispose();
  }
  times.sort((a, b) => a - b);
  const charsPerSecond = (ms: number) => (batch * seq) / (ms / 1000);
  return { fastest: charsPerSecond(times[0]), median: charsPerSecond(times[Math.floor(times.length / 2)]) };
}

/**
 * Auto backend selection times this on a GPU and on the CPU: one training step of the real model
 * and batch over a few timesteps, enough to show which is faster without a long wait on the slower.
 */
export function trainingProbe(config: NetworkConfig, batch: number, seq: number): Probe {
  return async () => {
    await timeTrainingStep(
      config,
      { batch, seq: Math.min(seq, 8), dropout: 0, weightDrop: 0 },
      { warmup: 0, timed: 1 },
    );
  };
}
