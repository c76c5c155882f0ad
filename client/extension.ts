// The VS Code side: starts the bundled language server, forwards settings, and adds the status
// bar item and commands. Ghost text comes from languageclient's inline completion support.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from 'vscode-languageclient/node';
import { ReloadModelRequest, StatusNotification, StatusParams } from '../protocol/messages';
import { registerModelCommands } from './models';
import { Training } from './training';

const SECTION = 'charComplete';
let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let lastStatus: StatusParams | undefined;

function config() {
  return vscode.workspace.getConfiguration(SECTION);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  statusItem = vscode.window.createStatusBarItem('charComplete.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'Char Complete';
  context.subscriptions.push(statusItem);
  updateStatus();
  registerModelCommands(context, () => client);
  const training = new Training(context);
  context.subscriptions.push(training);

  context.subscriptions.push(
    vscode.commands.registerCommand('charComplete.toggle', async () => {
      await config().update('enable', !config().get<boolean>('enable', true), vscode.ConfigurationTarget.Global);
    }),
    vscode.commands.registerCommand('charComplete.reloadModel', async () => {
      await client?.sendRequest(ReloadModelRequest);
    }),
    vscode.commands.registerCommand('charComplete.showLog', () => client?.outputChannel.show()),
    vscode.commands.registerCommand('charComplete.train', () => training.run()),
    vscode.workspace.onDidGrantWorkspaceTrust(() => restart(context)),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration(`${SECTION}.languages`)) await restart(context);
      else updateStatus();
    }),
  );
  await start(context);
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  const serverModule = context.asAbsolutePath(path.join('dist', 'server.js'));
  const serverOptions: ServerOptions = {
    run: { module: serverModule, transport: TransportKind.ipc },
    debug: { module: serverModule, transport: TransportKind.ipc },
  };
  // The manifest gives the default list; an unreadable setting means no languages rather than a guess.
  const languages = config().get<string[]>('languages') ?? [];
  const clientOptions: LanguageClientOptions = {
    documentSelector: languages.flatMap((language) => [
      { scheme: 'file', language },
      { scheme: 'untitled', language },
    ]),
    // The server learns from saved notes only where the workspace is trusted, and never from those files.exclude hides.
    initializationOptions: {
      ...JSON.parse(JSON.stringify(config())),
      workspaceTrusted: vscode.workspace.isTrusted,
      filesExclude: filesExclude(),
    },
    synchronize: { configurationSection: [SECTION, 'files.exclude'] },
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!config().get<boolean>('enable', true)) return undefined;
        // Wait out a burst of keystrokes; a newer request cancels this one meanwhile.
        const debounceMs = Math.max(0, config().get<number>('debounceMs', 0));
        if (debounceMs > 0) await new Promise((resolve) => setTimeout(resolve, debounceMs));
        if (token.isCancellationRequested) return undefined;
        return next(document, position, context, token);
      },
      provideCompletionItem: async (document, position, context, token, next) => {
        if (!config().get<boolean>('enable', true)) return undefined;
        return next(document, position, context, token);
      },
    },
  };
  client = new LanguageClient('charComplete', 'Char Complete', serverOptions, clientOptions);
  client.onNotification(StatusNotification, (status) => {
    lastStatus = status;
    updateStatus();
  });
  try {
    await client.start();
  } catch (error) {
    statusItem.text = '$(error) Char Complete: server failed to start';
    statusItem.tooltip = `${(error as Error).message ?? error}\nSee "Char Complete: Show server log".`;
    statusItem.command = 'charComplete.showLog';
    throw error;
  }
  updateStatus();
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  await client?.stop();
  client = undefined;
  lastStatus = undefined;
  updateStatus();
  await start(context);
}

function updateStatus(): void {
  const enabled = config().get<boolean>('enable', true);
  // Until the server has said which model it loaded, "no model" would be a guess, and a wrong one.
  if (!lastStatus) {
    statusItem.text = '$(sync~spin) Char Complete: starting';
    statusItem.tooltip = 'The Char Complete language server is starting.';
    statusItem.command = 'charComplete.showLog';
  } else if (!lastStatus.model) {
    statusItem.text = '$(circle-slash) Char Complete: no model';
    statusItem.tooltip = 'No trained model yet: click to train one on your notes.';
    statusItem.command = 'charComplete.train';
  } else {
    const where = lastStatus.gpu ? 'GPU' : 'CPU';
    const latency = lastStatus.latencyMs === null ? '' : ` ${lastStatus.latencyMs.toFixed(0)} ms`;
    const training = lastStatus.lstmTraining ? ' (LSTM training)' : '';
    statusItem.text = `${enabled ? '$(sparkle)' : '$(circle-slash)'} ${where}${latency}${training}`;
    statusItem.tooltip = `Char Complete ${enabled ? 'on' : 'off'} (click to toggle)\nModel: ${lastStatus.model} (${lastStatus.description})\nBackend: ${lastStatus.backend} (${where})`;
    statusItem.command = 'charComplete.toggle';
  }
  statusItem.show();
}

/** VS Code's files.exclude: globs, each true, false or a condition on sibling files. */
function filesExclude(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(vscode.workspace.getConfiguration('files').get('exclude') ?? {}));
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
