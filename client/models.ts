// The editor's side of several models and of forgetting: which model a workspace trains into, "Manage models" (Use,
// Retrain, Delete, Reveal), "Forget this file" and "Forget learned notes", all through the server's requests.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import {
  DeleteModelRequest,
  ForgetFileRequest,
  ForgetLearnedRequest,
  ForgetResult,
  ListModelsRequest,
  ModelList,
  ModelSummary,
} from '../protocol/messages';
import { modelNameFor, modelNameProblem } from '../protocol/model-names';

const SECTION = 'charComplete';
/** At or above this share of its n-grams counted, a file is taken to be in what the model was trained on. */
const TRAINED_SHARE = 0.5;

type ClientGetter = () => LanguageClient | undefined;

/** Where training from the editor writes: trainer arguments, and the setting to write once the run starts. */
export interface TrainingTarget {
  /** --name NAME, or --out DIR when charComplete.modelPath names a directory. */
  args: string[];
  /** The model's name, or undefined for a modelPath. */
  name?: string;
  /** Makes this workspace use the model (charComplete.model at workspace scope); call it when training starts. */
  use(): Promise<void>;
}

/**
 * Which model this workspace trains into: charComplete.modelPath when set, else the model charComplete.model names,
 * else one named after the workspace folder. Training into a model this workspace does not already use asks first,
 * modally, when that model exists (its date and sources said); undefined when the user declines.
 */
export async function trainingTarget(client: ClientGetter): Promise<TrainingTarget | undefined> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const modelPath = config.get<string>('modelPath', '').trim();
  if (modelPath) return { args: ['--out', modelPath], use: async () => {} };
  const configured = config.get<string>('model', '').trim();
  let name = configured || modelNameFor(vscode.workspace.workspaceFolders?.[0]?.name ?? 'notes');
  for (;;) {
    const existing = (await listModels(client))?.models.find((m) => m.name === name);
    if (!existing || name === configured) break;
    const answer = await vscode.window.showWarningMessage(
      `A model named "${name}" already exists. Replace it?`,
      { modal: true, detail: `${describe(existing)}\n${existing.dir}` },
      'Replace',
      'Use another name…',
    );
    if (answer === 'Replace') break;
    if (answer !== 'Use another name…') return undefined;
    const other = await vscode.window.showInputBox({
      prompt: 'Name of the new model',
      value: `${name}-2`,
      validateInput: (value) => modelNameProblem(value) ?? null,
    });
    if (!other) return undefined;
    name = other;
  }
  return { args: ['--name', name], name, use: () => useModel(name) };
}

/** Registers the model and forgetting commands. */
export function registerModelCommands(context: vscode.ExtensionContext, client: ClientGetter): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('charComplete.manageModels', () => manageModels(client)),
    vscode.commands.registerCommand('charComplete.forgetFile', (uri?: vscode.Uri) =>
      forgetFile(client, context.asAbsolutePath(path.join('dist', 'train.js')), uri),
    ),
    vscode.commands.registerCommand('charComplete.forgetLearned', () => forgetLearned(client)),
  );
}

async function listModels(client: ClientGetter): Promise<ModelList | undefined> {
  try {
    return await client()?.sendRequest(ListModelsRequest);
  } catch {
    return undefined;
  }
}

/** Date, size, validation, learnt characters and sources, in one line. */
export function describe(m: ModelSummary): string {
  if (m.problem) return `unreadable: ${m.problem}`;
  const bpc = m.validationBpc === null ? 'not validated' : `${m.validationBpc.toFixed(2)} bits/char`;
  return `trained ${new Date(m.savedAt).toLocaleString()} · ${(m.sizeBytes / 1e6).toFixed(1)} MB · ${bpc} · ${m.learntChars.toLocaleString()} characters learnt from saves · from ${m.sources.join(', ') || '–'} (${m.corpusChars.toLocaleString()} characters)`;
}

async function useModel(name: string): Promise<void> {
  const scope = vscode.workspace.workspaceFolders
    ? vscode.ConfigurationTarget.Workspace
    : vscode.ConfigurationTarget.Global;
  await vscode.workspace.getConfiguration(SECTION).update('model', name, scope);
  if (vscode.workspace.getConfiguration(SECTION).get<string>('modelPath', '').trim())
    void vscode.window.showWarningMessage(
      `Char Complete: charComplete.model is now "${name}", but charComplete.modelPath is set and wins; clear it to use "${name}".`,
    );
}

async function failed(what: string, error: unknown): Promise<void> {
  void vscode.window.showErrorMessage(`Char Complete could not ${what}: ${(error as Error).message ?? error}`);
}

async function manageModels(client: ClientGetter): Promise<void> {
  const list = await listModels(client);
  if (!list) return failed('list the models', new Error('the language server is not running'));
  if (list.models.length === 0) {
    const train = await vscode.window.showInformationMessage(`No models yet in ${list.root}.`, 'Train…');
    if (train) await vscode.commands.executeCommand('charComplete.train');
    return;
  }
  const picked = await vscode.window.showQuickPick(
    list.models.map((m) => ({
      label: `${m.inUse ? '$(check) ' : ''}${m.name}`,
      description: m.inUse ? 'in use' : undefined,
      detail: describe(m),
      model: m,
    })),
    { title: 'Char Complete: models', placeHolder: 'Choose a model to use, retrain, delete or reveal' },
  );
  if (!picked) return;
  const m = picked.model;
  const action = await vscode.window.showQuickPick(['Use', 'Retrain', 'Delete', 'Reveal'], {
    title: `Model "${m.name}"`,
    placeHolder: m.dir,
  });
  if (action === 'Use') return useModel(m.name);
  if (action === 'Reveal') {
    await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(m.dir));
    return;
  }
  if (action === 'Retrain') {
    // Training writes into the model the workspace uses; the folder picker then chooses its sources.
    await useModel(m.name);
    await vscode.commands.executeCommand('charComplete.train');
    return;
  }
  if (action !== 'Delete') return;
  if (m.inUse) {
    void vscode.window.showWarningMessage(
      `"${m.name}" is the model in use here: choose another model (Manage models → Use) before deleting it.`,
    );
    return;
  }
  const sure = await vscode.window.showWarningMessage(
    `Delete the model "${m.name}"?`,
    { modal: true, detail: `${describe(m)}\n${m.dir}\n\nIts files are removed; this cannot be undone.` },
    'Delete',
  );
  if (sure !== 'Delete') return;
  try {
    await client()?.sendRequest(DeleteModelRequest, { name: m.name });
    void vscode.window.showInformationMessage(`Char Complete: deleted the model "${m.name}".`);
  } catch (error) {
    await failed(`delete "${m.name}"`, error);
  }
}

async function forgetFile(client: ClientGetter, trainer: string, given?: vscode.Uri): Promise<void> {
  const uri = given ?? vscode.window.activeTextEditor?.document.uri;
  if (!uri) {
    void vscode.window.showWarningMessage('Char Complete: open the file to forget first.');
    return;
  }
  let result: ForgetResult | undefined;
  try {
    result = await client()?.sendRequest(ForgetFileRequest, { uri: uri.toString() });
  } catch (error) {
    return failed(`forget ${uri.fsPath}`, error);
  }
  if (!result) return failed(`forget ${uri.fsPath}`, new Error('the language server is not running'));
  const name = path.basename(uri.fsPath);
  const learnt = `Char Complete forgot ${result.chars.toLocaleString()} characters learnt from saves of ${name}.`;
  if ((result.trainedShare ?? 0) < TRAINED_SHARE) {
    void vscode.window.showInformationMessage(learnt);
    return;
  }
  const retrain = await vscode.window.showWarningMessage(
    `${learnt} Its text is also in the trained model, which only a retrain without it forgets.`,
    'Retrain without it',
  );
  if (retrain) retrainWithout(trainer, uri.fsPath, result.model);
}

/** Runs the trainer on the workspace folders into the same model, never reading the file (--forget). */
function retrainWithout(trainer: string, file: string, model: string): void {
  const folders = vscode.workspace.workspaceFolders?.map((f) => f.uri.fsPath) ?? [];
  if (!vscode.workspace.isTrusted || folders.length === 0) {
    void vscode.window.showWarningMessage(
      `Char Complete trains only in a trusted workspace with a folder open; from a terminal: npm run train -- NOTES --out "${model}" --forget "${file}"`,
    );
    return;
  }
  const minutes = String(Math.max(0.1, vscode.workspace.getConfiguration(SECTION).get<number>('trainMinutes', 5)));
  const args = [trainer, ...folders, '--out', model, '--forget', file, '--minutes', minutes];
  // In a terminal of its own, so its lines (what --forget left out and dropped) stay readable.
  vscode.window
    .createTerminal({
      name: `Char Complete: retrain without ${path.basename(file)}`,
      shellPath: process.execPath,
      shellArgs: args,
      env: { ELECTRON_RUN_AS_NODE: '1' },
    })
    .show();
}

async function forgetLearned(client: ClientGetter): Promise<void> {
  const inUse = (await listModels(client))?.models.find((m) => m.inUse);
  const sure = await vscode.window.showWarningMessage(
    `Forget every note learnt from saves${inUse ? ` in the model "${inUse.name}"` : ''}?`,
    {
      modal: true,
      detail: `${inUse ? `${inUse.learntChars.toLocaleString()} characters learnt since training. ` : ''}What the model was trained on stays; saving a note learns it again.`,
    },
    'Forget',
  );
  if (sure !== 'Forget') return;
  try {
    const result = await client()?.sendRequest(ForgetLearnedRequest);
    if (result)
      void vscode.window.showInformationMessage(
        `Char Complete forgot ${result.chars.toLocaleString()} characters learnt from ${result.notes} saved note${result.notes === 1 ? '' : 's'}.`,
      );
  } catch (error) {
    await failed('forget the learnt notes', error);
  }
}
