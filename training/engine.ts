// What runs the LSTM's training steps. The trainer keeps the corpus, the budget, progress,
// validation's bookkeeping, the gate and the model files, and asks an engine only to step, to
// score held-out text and to hand over weights and Adam's state, so that another engine (a
// child process with its own framework) can take the steps without the rest changing.
import type { NetworkConfig } from '../model/architecture';
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
import { StreamBatcher } from './batches';
import type { LstmScores, ValidationSet } from './mixture-fit';
import { scoreLstm } from './mixture-fit';
import { Adam, ADAM_DEFAULTS, WeightAverage } from './optimizer';
import type { OptimizerState } from './optimizer-state';

export interface LstmEngine {
  /** Batches in one pass over the training streams. */
  readonly batchesPerEpoch: number;
  /** Trains on the next batch of every stream at `learningRate` (the setup's when not given); returns the batch's mean loss in nats. */
  step(learningRate?: number): Promise<number>;
  /** The averaged weights' log-probabilities at every position the validation set scores. */
  score(validation: ValidationSet): Promise<LstmScores>;
  /**
   * The averaged weights, which a model saves, and Adam's state as it stands, with the weights it steps, in the model
   * files' layout.
   */
  checkpoint(): Promise<{ weights: Map<string, Float32Array>; optimizerState: OptimizerState }>;
  /** Puts saved weights back as both the average and the weights Adam steps (Adam's moments stay): the best checkpoint, before the final scoring. */
  load(weights: Map<string, Float32Array>): Promise<void>;
  dispose(): Promise<void>;
}

export interface EngineSetup {
  config: NetworkConfig;
  trainIds: Int32Array;
  batch: number;
  seq: number;
  lr: number;
  dropout: number;
  /** The share of the recurrent weights each step drops (DropConnect). */
  weightDrop: number;
  seed: number;
  /** The share of the steps taken that the saved weights average over (training/schedule.ts's averageRate). */
  averageShare: number;
  /**
   * The weights to continue from (--resume), which the average goes on from, and which Adam steps unless the
   * optimizer state has its own; a new model is initialised from the seed otherwise.
   */
  weights?: Map<string, Float32Array>;
  optimizerState?: OptimizerState;
}

/** The engine of this process: the tfjs model on the backend selected, with Adam. */
export class TfjsEngine implements LstmEngine {
  readonly batchesPerEpoch: number;
  private readonly model: CharLstm;
  private readonly optimizer: Adam;
  private readonly average: WeightAverage;
  /** The model over the averaged weights, which scoring reads; its parameters are the average's. */
  private readonly averaged: CharLstm;
  private readonly batcher: StreamBatcher;
  private state: LstmState;
  /** Steps a resumed optimizer had already taken: the place in the data and the dropout seeds go on from there. */
  private readonly firstStep: number;
  private taken = 0;

  constructor(private readonly setup: EngineSetup) {
    const { config, weights, seed, optimizerState } = setup;
    const stepped = optimizerState?.trained ?? weights;
    const params = stepped ? parametersFromWeights(config, stepped) : initialParameters(config, seed);
    this.model = new CharLstm(config, params);
    this.average = new WeightAverage(params, setup.averageShare, weights);
    this.averaged = new CharLstm(config, this.average.parameters);
    this.optimizer = new Adam(params, ADAM_DEFAULTS);
    if (optimizerState) this.optimizer.restore(optimizerState);
    this.firstStep = this.optimizer.step;
    this.batcher = new StreamBatcher(setup.trainIds, setup.batch, setup.seq);
    this.batchesPerEpoch = this.batcher.batchesPerEpoch;
    this.state = zeroState(config, setup.batch);
  }

  async step(learningRate = this.setup.lr): Promise<number> {
    const { config, batch, seq, dropout, weightDrop, seed } = this.setup;
    const global = this.firstStep + this.taken;
    const k = global % this.batchesPerEpoch;
    if (k === 0 && this.taken > 0) {
      // A new epoch restarts every stream at its beginning, so the carried state no longer applies.
      disposeState(this.state);
      this.state = zeroState(config, batch);
    }
    const { inputs, targets } = this.batcher.batch(k, Math.floor(global / this.batchesPerEpoch));
    const result = await this.model.trainStep(
      inputs,
      targets,
      batch,
      seq,
      this.state,
      dropout,
      seed * 100_003 + this.firstStep + this.taken,
      weightDrop,
    );
    disposeState(this.state);
    this.state = result.state;
    this.optimizer.apply(result.gradients, learningRate);
    this.average.update(this.optimizer.step);
    this.taken++;
    return result.loss;
  }

  /** Resolves once the last update has been applied: a GPU runs behind the host, and a timer must wait for it. */
  async settled(): Promise<void> {
    await this.average.parameters.get('output/b')!.data();
  }

  score(validation: ValidationSet): Promise<LstmScores> {
    return scoreLstm(this.averaged, validation.ids, validation.batch, validation.seq);
  }

  async checkpoint(): Promise<{ weights: Map<string, Float32Array>; optimizerState: OptimizerState }> {
    const optimizerState = await this.optimizer.state();
    // Without averaging the weights saved are the weights trained, and one copy is enough.
    if (this.setup.averageShare > 0) optimizerState.trained = await readWeights(this.model.params);
    return { weights: await this.average.read(), optimizerState };
  }

  async load(weights: Map<string, Float32Array>): Promise<void> {
    assignWeights(this.model.params, weights);
    this.average.reset(weights);
  }

  async dispose(): Promise<void> {
    disposeState(this.state);
    this.optimizer.dispose();
    this.average.dispose();
    this.model.dispose();
  }
}
