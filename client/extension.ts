// The VS Code side: starts the bundled language server when a note needs it, forwards settings, and adds the status
// bar menu and commands. Ghost text comes from languageclient's inline completion support.
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorHandler,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from 'vscode-languageclient/node';
import { IdleExitNotification, ReloadModelRequest, StatusNotification } from '../protocol/messages';
import { SERVER_NODE_FLAGS } from '../protocol/server-process';
import { registerModelCommands } from './models';
import { Onboarding } from './onboarding';
import { StatusBar, warnIfInlineSuggestOff } from './status';
import { Training } from './training';

const SECTION = 'charComplete';
let client: LanguageClient | undefined;
let statusBar: StatusBar;
let onboarding: Onboarding;
/** One log for every server this window starts, so a restart after idling does not add another. */
let outputChannel: vscode.LogOutputChannel;
let extensionContext: vscode.ExtensionContext;

function config() {
  return vscode.workspace.getConfiguration(SECTION);
}

/** Whether the server is for this document: a file or an unsaved one in one of charComplete.languages. */
function served(document: vscode.TextDocument): boolean {
  if (document.uri.scheme !== 'file' && document.uri.scheme !== 'untitled') return false;
  return (config().get<string[]>('languages') ?? []).includes(document.languageId);
}

/** The running client, started now if it is not: for commands that need the server whatever is open. */
function neededClient(): LanguageClient {
  if (!client) void start(extensionContext).catch(() => undefined);
  return client!;
}

/** A window with no note open never starts the server; the first note that opens (or is typed in after idling) does. */
function startIfServed(document: vscode.TextDocument | undefined): void {
  if (!client && document && served(document)) neededClient();
}

/** For tests: whether this window has started a language server (and it has not exited since). */
export interface CharCompleteApi {
  serverStarted(): boolean;
}

export async function activate(context: vscode.ExtensionContext): Promise<CharCompleteApi> {
  extensionContext = context;
  outputChannel = vscode.window.createOutputChannel('Char Complete', { log: true });
  statusBar = new StatusBar(neededClient);
  onboarding = new Onboarding();
  context.subscriptions.push(outputChannel, statusBar, onboarding);
  void warnIfInlineSuggestOff(context);
  registerModelCommands(context, neededClient);
  const training = new Training(context, neededClient);
  context.subscriptions.push(training);

  context.subscriptions.push(
    vscode.commands.registerCommand('charComplete.reloadModel', async () => {
      await neededClient().sendRequest(ReloadModelRequest);
    }),
    vscode.commands.registerCommand('charComplete.showLog', () => outputChannel.show()),
    vscode.commands.registerCommand('charComplete.train', () => training.run()),
    vscode.workspace.onDidGrantWorkspaceTrust(() => client && restart(context)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      // The server pulls the new list itself and answers only for its languages: a note of a newly added language
      // may need it started.
      if (event.affectsConfiguration(`${SECTION}.languages`)) vscode.workspace.textDocuments.forEach(startIfServed);
      statusBar.update();
    }),
    vscode.workspace.onDidOpenTextDocument(startIfServed),
    vscode.workspace.onDidChangeTextDocument((event) => startIfServed(event.document)),
    vscode.window.onDidChangeActiveTextEditor((editor) => startIfServed(editor?.document)),
  );
  if (!vscode.workspace.textDocuments.some(served)) statusBar.serverSleeping();
  for (const document of vscode.workspace.textDocuments) startIfServed(document);
  return { serverStarted: () => client !== undefined };
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  const serverModule = context.asAbsolutePath(path.join('dist', 'server.js'));
  const launch = { module: serverModule, transport: TransportKind.ipc, options: { execArgv: SERVER_NODE_FLAGS } };
  const serverOptions: ServerOptions = { run: launch, debug: launch };
  let idle = false;
  // languageclient's own handler (restarts after a crash, a popup after five) once the client exists.
  const crashes: { handler?: ErrorHandler } = {};
  const clientOptions: LanguageClientOptions = {
    // Every file goes to the server, which answers only for charComplete.languages as it reads them now: a change of
    // the list applies without a restart, which a selector fixed at start would need.
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    outputChannel,
    errorHandler: {
      error: (error, message, count) => crashes.handler!.error(error, message, count),
      // A server that said it exits for idling is let go without a restart or a popup; the next need starts one.
      closed: () => (idle ? { action: CloseAction.DoNotRestart, handled: true } : crashes.handler!.closed()),
    },
    // The server learns from saved notes only where the workspace is trusted, and never from those files.exclude hides.
    initializationOptions: {
      ...JSON.parse(JSON.stringify(config())),
      workspaceTrusted: vscode.workspace.isTrusted,
      filesExclude: filesExclude(),
    },
    synchronize: { configurationSection: [SECTION, 'files.exclude'] },
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!served(document) || !statusBar.allows(document)) return undefined;
        // Wait out a burst of keystrokes; a newer request cancels this one meanwhile.
        const debounceMs = Math.max(0, config().get<number>('debounceMs', 0));
        if (debounceMs > 0) await new Promise((resolve) => setTimeout(resolve, debounceMs));
        if (token.isCancellationRequested) return undefined;
        return next(document, position, context, token);
      },
      provideCompletionItem: async (document, position, context, token, next) => {
        if (!served(document) || !statusBar.allows(document)) return undefined;
        return next(document, position, context, token);
      },
    },
  };
  const started = new LanguageClient('charComplete', 'Char Complete', serverOptions, clientOptions);
  client = started;
  crashes.handler = started.createDefaultErrorHandler();
  statusBar.serverStatus(undefined);
  started.onNotification(StatusNotification, (status) => {
    statusBar.serverStatus(status);
    onboarding.status(status);
  });
  started.onNotification(IdleExitNotification, () => {
    idle = true;
    if (client === started) client = undefined;
    statusBar.serverSleeping();
    onboarding.status(undefined);
    // The stopped client still holds its providers and features.
    setTimeout(() => void started.dispose().catch(() => undefined), 2000);
  });
  try {
    await started.start();
  } catch (error) {
    statusBar.serverFailed(`${(error as Error).message ?? error}\nSee "Char Complete: Show server log".`);
    throw error;
  }
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  await client?.stop();
  client = undefined;
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
