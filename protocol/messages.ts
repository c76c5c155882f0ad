// The custom messages between the extension and the language server, typed once for the client, the server and the
// tests.
import { NotificationType, RequestType, RequestType0 } from 'vscode-languageserver-protocol';

/**
 * What the status bar shows; sent by the server after every change of model or backend, and of latency at most once a
 * second.
 */
export interface StatusParams {
  /** The model directory in use, or null when there is none yet. */
  model: string | null;
  description: string | null;
  backend: string;
  gpu: boolean;
  latencyMs: number | null;
  /** The model in use is the trainer's first, n-gram only: the LSTM is still training. */
  lstmTraining: boolean;
}
export const StatusNotification = new NotificationType<StatusParams>('charComplete/status');

/**
 * Sent by the server just before it exits for having been idle (no request and no document activity for a while): the
 * client lets it go quietly instead of restarting it or reporting a crash, and starts it again when a note needs it.
 */
export interface IdleExitParams {
  idleMs: number;
}
export const IdleExitNotification = new NotificationType<IdleExitParams>('charComplete/idleExit');

export interface LoadedModel {
  dir: string;
  description: string;
}
/** Loads the model again now, without waiting for the file watcher; answers what is loaded, or null. */
export const ReloadModelRequest = new RequestType0<LoadedModel | null, void>('charComplete/reloadModel');

// Models and forgetting: several models under <data dir>/models/<name>, listed, deleted and forgotten from through the
// server, which serves one of them.

/** One model directory, as "Manage models" and the status menu's model info show it. */
export interface ModelSummary {
  /** The name charComplete.model takes; "default" is the directory from before named models (<data dir>/model). */
  name: string;
  dir: string;
  /** From model.json's corpus summary: the names (not the places) of the paths trained on, and their characters. */
  sources: string[];
  corpusChars: number;
  /** When the model was saved (ISO time). */
  savedAt: string;
  /** Every file of the directory together, in bytes. */
  sizeBytes: number;
  /** Validation bits per character of the model as served, or null when it was not validated. */
  validationBpc: number | null;
  /** Characters learnt from saved notes since the last training. */
  learntChars: number;
  /** False while only the trainer's first, n-gram model is saved. */
  lstmTrained: boolean;
  /** Whether this server serves it now. */
  inUse: boolean;
  /** Why model.json cannot be read; the figures are then zero and the dates empty. */
  problem?: string;
}
export interface ModelList {
  /** Where named models live: <data dir>/models. */
  root: string;
  models: ModelSummary[];
  /** The directory the server serves, or would serve once trained, named or not. */
  inUse: string;
}
export const ListModelsRequest = new RequestType0<ModelList, void>('charComplete/listModels');

export interface DeleteModelParams {
  name: string;
}
/** Deletes a model by name; refused (an error whose message says why) for the model in use. */
export const DeleteModelRequest = new RequestType<DeleteModelParams, { dir: string }, void>('charComplete/deleteModel');

export interface ForgetResult {
  /** The model directory forgotten from. */
  model: string;
  /** Saved notes whose learnt text was dropped, and its characters. */
  notes: number;
  chars: number;
  /**
   * Share (0–1) of the file's n-grams that the trained n-gram (ngram.bin) still counts once the learnt text is gone; a
   * file the trainer read is only forgotten there by a retrain without it. Null for "forget learnt notes".
   */
  trainedShare: number | null;
}
export interface ForgetFileParams {
  /** The file's URI, as the editor knows it. */
  uri: string;
}
/** Forgets what was learnt from saves of one file: its records leave learned.bin and the served n-gram. */
export const ForgetFileRequest = new RequestType<ForgetFileParams, ForgetResult, void>('charComplete/forgetFile');
/** Forgets every note learnt from saves since the last training. */
export const ForgetLearnedRequest = new RequestType0<ForgetResult, void>('charComplete/forgetLearned');
