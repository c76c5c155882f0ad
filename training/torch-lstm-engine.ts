// The torch engine as the training loop sees it (training/engine.ts's LstmEngine): one step per call, checkpoints in
// the model files' layout, and, when the child dies under --engine auto, the hand-over to the engine that goes on.
import { NetworkConfig } from '../model/architecture';
import { initialParameters, readWeights } from '../model/network';
import type { EngineSetup, LstmEngine } from './engine';
import type { LstmScores, ValidationSet } from './mixture-fit';
import { ADAM_DEFAULTS } from './optimizer';
import type { OptimizerState } from './optimizer-state';
import { TorchEngine, TorchEngineError } from './torch-engine';
/** The torch engine as the training loop sees it: one step per call, checkpoints in the files' layout. */
export class TorchLstmEngine implements LstmEngine {
  readonly batchesPerEpoch: number;
  /** Adam's step at setup: the place in the data goes on from there, as TfjsEngine's does. */
  private readonly firstStep: number;
  private taken = 0;
  /** The last weights and Adam's state read back: where a replacement engine goes on from. */
  private lastGood: { weights: Map<string, Float32Array>; optimizerState?: OptimizerState };
  private replacement?: LstmEngine;

  private constructor(
    private readonly torch: TorchEngine,
    private readonly setup: EngineSetup,
    batchesPerEpoch: number,
    weights: Map<string, Float32Array>,
    /** Called once if the engine dies, with the last good state; returns the engine that goes on. */
    private readonly onDeath?: (error: TorchEngineError, lastGood: EngineSetup) => LstmEngine,
    /** Told what the engine changed on its own while training (its CPU threads), for the user. */
    private readonly onNote?: (line: string) => void,
  ) {
    this.batchesPerEpoch = batchesPerEpoch;
    this.firstStep = setup.optimizerState?.step ?? 0;
    this.lastGood = { weights, optimizerState: setup.optimizerState };
  }

  /**
   * Hands a started engine the run. A new model starts from the tfjs engine's initial weights for
   * the seed, so the two engines start alike.
   */
  static async create(
    torch: TorchEngine,
    setup: EngineSetup,
    onDeath?: (error: TorchEngineError, lastGood: EngineSetup) => LstmEngine,
    onNote?: (line: string) => void,
  ): Promise<TorchLstmEngine> {
    const weights = setup.weights ?? (await initialWeights(setup.config, setup.seed));
    const batchesPerEpoch = await torch.setup({
      config: setup.config,
      batch: setup.batch,
      seq: setup.seq,
      dropout: setup.dropout,
      weightDrop: setup.weightDrop,
      seed: setup.seed,
      adam: ADAM_DEFAULTS,
      averageShare: setup.averageShare,
      trainIds: setup.trainIds,
      weights,
      optimizer: setup.optimizerState,
    });
    return new TorchLstmEngine(torch, setup, batchesPerEpoch, weights, onDeath, onNote);
  }

  async step(learningRate = this.setup.lr): Promise<number> {
    return this.guard(
      async () => {
        const { losses, note } = await this.torch.train(this.firstStep + this.taken, [learningRate]);
        this.taken++;
        if (note) this.onNote?.(note);
        return losses[0];
      },
      (engine) => engine.step(learningRate),
    );
  }

  score(validation: ValidationSet): Promise<LstmScores> {
    return this.guard(
      () => this.torch.score(validation.ids, validation.batch, validation.seq),
      (engine) => engine.score(validation),
    );
  }

  checkpoint(): Promise<{ weights: Map<string, Float32Array>; optimizerState: OptimizerState }> {
    return this.guard(
      async () => {
        const { weights, optimizer } = await this.torch.checkpoint();
        // Without averaging the weights saved are the weights trained, and one copy is enough.
        if (this.setup.averageShare === 0) delete optimizer.trained;
        this.lastGood = { weights, optimizerState: optimizer };
        return { weights, optimizerState: optimizer };
      },
      (engine) => engine.checkpoint(),
    );
  }

  load(weights: Map<string, Float32Array>): Promise<void> {
    return this.guard(
      () => this.torch.load(weights),
      (engine) => engine.load(weights),
    );
  }

  async dispose(): Promise<void> {
    await this.torch.close();
    await this.replacement?.dispose();
  }

  /** Runs on torch while it lives; when it dies, hands over to the replacement once, or throws. */
  private async guard<T>(onTorch: () => Promise<T>, onReplacement: (engine: LstmEngine) => Promise<T>): Promise<T> {
    if (this.replacement) return onReplacement(this.replacement);
    try {
      return await onTorch();
    } catch (error) {
      if (!(error instanceof TorchEngineError) || !this.onDeath) throw error;
      await this.torch.close();
      this.replacement = this.onDeath(error, { ...this.setup, ...this.lastGood });
      return onReplacement(this.replacement);
    }
  }
}

/** The tfjs engine's initial weights for a seed, so both engines start a new model alike. */
async function initialWeights(config: NetworkConfig, seed: number): Promise<Map<string, Float32Array>> {
  const params = initialParameters(config, seed);
  const weights = await readWeights(params);
  for (const variable of params.values()) variable.dispose();
  return weights;
}
