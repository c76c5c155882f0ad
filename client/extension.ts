// The VS Code side: starts the bundled language server, forwards settings, and adds the status
// bar menu and commands. Ghost text comes from languageclient's inline completion support.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from 'vscode-languageclient/node';
import { ReloadModelRequest, StatusNotification } from '../protocol/messages';
import { registerModelCommands } from './models';
import { Onboarding } from './onboarding';
import { StatusBar, warnIfInlineSuggestOff } from './status';
import { Training } from './training';

const SECTION = 'charComplete';
let client: LanguageClient | undefined;
let statusBar: StatusBar;
let onboarding: Onboarding;

function config() {
  return vscode.workspace.getConfiguration(SECTION);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  statusBar = new StatusBar(() => client);
  onboarding = new Onboarding();
  context.subscriptions.push(statusBar, onboarding);
  void warnIfInlineSuggestOff(context);
  registerModelCommands(context, () => client);
  const training = new Training(context, () => client);
  context.subscriptions.push(training);

  context.subscriptions.push(
    vscode.commands.registerCommand('charComplete.reloadModel', async () => {
      await client?.sendRequest(ReloadModelRequest);
    }),
    vscode.commands.registerCommand('charComplete.showLog', () => client?.outputChannel.show()),
    vscode.commands.registerCommand('charComplete.train', () => training.run()),
    vscode.workspace.onDidGrantWorkspaceTrust(() => restart(context)),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration(`${SECTION}.languages`)) await restart(context);
      else statusBar.update();
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
        if (!statusBar.allows(document)) return undefined;
        // Wait out a burst of keystrokes; a newer request cancels this one meanwhile.
        const debounceMs = Math.max(0, config().get<number>('debounceMs', 0));
        if (debounceMs > 0) await new Promise((resolve) => setTimeout(resolve, debounceMs));
        if (token.isCancellationRequested) return undefined;
        return next(document, position, context, token);
      },
      provideCompletionItem: async (document, position, context, token, next) => {
        if (!statusBar.allows(document)) return undefined;
        return next(document, position, context, token);
      },
    },
  };
  client = new LanguageClient('charComplete', 'Char Complete', serverOptions, clientOptions);
  client.onNotification(StatusNotification, (status) => {
    statusBar.serverStatus(status);
    onboarding.status(status);
  });
  try {
    await client.start();
  } catch (error) {
    statusBar.serverFailed(`${(error as Error).message ?? error}\nSee "Char Complete: Show server log".`);
    throw error;
  }
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  await client?.stop();
  client = undefined;
  statusBar.serverStatus(undefined);
  onboarding.status(undefined);
  await start(context);
}

/** VS Code's files.exclude: globs, each true, false or a condition on sibling files. */
function filesExclude(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(vscode.workspace.getConfiguration('files').get('exclude') ?? {}));
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
