// The trainer's contract with whoever runs it (the command line, the tests): options in, lines and
// progress out, the result, and the error that means bad input rather than a bug.
import type { BackendChoice } from '../backends/select';
import type { EngineChoice } from './engine-choice';
import type { TorchLaunch } from './torch-engine';

export interface TrainOptions {
  /** Files and folders of notes; empty means the embedded default corpus. */
  paths: string[];
  /** Globs of files and folders never read, besides the default key and credential files and .gitignore'd paths. */
  exclude?: string[];
  packageRoot: string;
  out: string;
  minutes?: number;
  epochs?: number;
  /** A budget in training characters seen, for comparing recipes per character. */
  chars?: number;
  /** The shape of a new model; undefined means the default, or with resume the resumed model's. */
  layers?: number;
  hidden?: number;
  embed?: number;
  seq: number;
  /** Parallel streams; undefined: the default of the device that trains (training/defaults.ts). */
  batch?: number;
  /** The peak learning rate; undefined: the default for the model's size and batch (training/defaults.ts). */
  lr?: number;
  /** The last share of the budget over which the learning rate falls (training/schedule.ts). */
  decay: number;
  /** The share of the steps taken that the saved weights average over; 0 saves them as they stand (training/schedule.ts). */
  average: number;
  dropout: number;
  /**
   * The share of the LSTM's recurrent weights each training step drops (DropConnect, as in AWD-LSTM); undefined: by
   * how many times the budget reads the training text (training/defaults.ts).
   */
  weightDrop?: number;
  seed: number;
  backend: BackendChoice;
  /** Which engine takes the training steps (training/engine-choice.ts); auto when absent. */
  engine?: EngineChoice;
  /** Where the torch engine runs: its processes (GPUs, or CPU processes) and machines. */
  torch?: TorchLaunch;
  resume: boolean;
  /**
   * Stop once validation stops improving, and settle the best checkpoint (training/train.ts), with a budget in epochs
   * or characters too; a time budget always does.
   */
  earlyStop?: boolean;
  /**
   * The validation text stays out of the notes' memory (n-gram, match and context models), so that a model can be
   * measured on it: for benchmarks. Otherwise the memory reads every note once the LSTM's validation no longer needs it.
   */
  validationUnseen?: boolean;
}

export interface Progress {
  fraction: number;
  charsPerSecond: number;
  loss: number;
  /**
   * The best checkpoint's mixture on the periodic validation text: what a model saved now would serve. A checkpoint
   * that validates worse leaves it as it is, so the figure never mixes the LSTM's with the mixture's.
   */
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
  /** The model as served: the mixture of the LSTM and the n-grams. */
  validationNats: number | null;
  validationBpc: number | null;
  lstmValidationNats: number | null;
  ngramValidationNats: number | null;
  charsPerSecond: number;
  backend: string;
  /** The engine that took the steps: wasm (this process, on the backend), or torch and where it ran. */
  engine: string;
  steps: number;
  trainedChars: number;
  seconds: number;
  stoppedBy: 'budget' | 'early stopping' | 'interrupted';
  sample: string;
}

/** Bad input from the user: the command line reports it and exits with code 2. */
export class TrainInputError extends Error {}
