// The custom messages between the extension and the language server, typed once for the client, the server and the
// tests.
import { NotificationType, RequestType0 } from 'vscode-languageserver-protocol';

/** What the status bar shows; sent by the server after every change of model, backend or latency. */
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

export interface LoadedModel {
  dir: string;
  description: string;
}
/** Loads the model again now, without waiting for the file watcher; answers what is loaded, or null. */
export const ReloadModelRequest = new RequestType0<LoadedModel | null, void>('charComplete/reloadModel');
