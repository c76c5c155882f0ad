// The status bar item and the menu behind it: on/off where the effective value lives, off for one language, snooze,
// learning from saves, training, model info, models and the log; plus the one-time warning when VS Code's inline
// suggestions, which show the completions, are off.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { ListModelsRequest, StatusParams } from '../protocol/messages';
import { describe } from './models';

const SECTION = 'charComplete';
const SNOOZE_MS = 5 * 60_000;
const WARNED_INLINE_SUGGEST = 'charComplete.warnedInlineSuggestOff';

/**
 * Where a setting's effective value lives: the workspace folder's settings, the workspace's, or the user's. Writing
 * anywhere else would be overridden, and the click would visibly do nothing.
 */
export function whereItLives(section: string, key: string, scope?: vscode.ConfigurationScope) {
  const inspected = vscode.workspace.getConfiguration(section, scope).inspect(key);
  if (inspected?.workspaceFolderValue !== undefined) return vscode.ConfigurationTarget.WorkspaceFolder;
  if (inspected?.workspaceValue !== undefined) return vscode.ConfigurationTarget.Workspace;
  return vscode.ConfigurationTarget.Global;
}

/** Flips a boolean setting where its effective value lives. */
export async function flip(key: string, scope?: vscode.ConfigurationScope): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  await config.update(key, !config.get<boolean>(key, true), whereItLives(SECTION, key, scope));
}

/** Where a per-language value of charComplete.enable is set for a language, or undefined when none is. */
function languageOverride(languageId: string): vscode.ConfigurationTarget | undefined {
  const inspected = vscode.workspace.getConfiguration(SECTION, { languageId }).inspect<boolean>('enable');
  if (inspected?.workspaceFolderLanguageValue !== undefined) return vscode.ConfigurationTarget.WorkspaceFolder;
  if (inspected?.workspaceLanguageValue !== undefined) return vscode.ConfigurationTarget.Workspace;
  if (inspected?.globalLanguageValue !== undefined) return vscode.ConfigurationTarget.Global;
  return undefined;
}

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(
    'charComplete.status',
    vscode.StatusBarAlignment.Right,
    100,
  );
  private server: StatusParams | undefined;
  private failure: string | undefined;
  /** No server runs: none was needed yet, or it exited for idling. */
  private sleeping = false;
  private snoozedUntil = 0;
  private snoozeTimer: NodeJS.Timeout | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(private readonly client: () => LanguageClient | undefined) {
    this.item.name = 'Char Complete';
    this.item.command = 'charComplete.statusMenu';
    this.subscriptions.push(
      vscode.commands.registerCommand('charComplete.statusMenu', () => this.menu()),
      vscode.commands.registerCommand('charComplete.toggle', () => flip('enable', this.activeDocument())),
      vscode.window.onDidChangeActiveTextEditor(() => this.update()),
    );
    this.update();
  }

  dispose(): void {
    clearTimeout(this.snoozeTimer);
    for (const s of this.subscriptions) s.dispose();
    this.item.dispose();
  }

  /** Whether completions are wanted in this document now: on for its language and not snoozed. */
  allows(document: vscode.TextDocument): boolean {
    return Date.now() >= this.snoozedUntil && vscode.workspace.getConfiguration(SECTION, document).get('enable', true);
  }

  /** The server's latest status; undefined while it starts. */
  serverStatus(status: StatusParams | undefined): void {
    this.server = status;
    this.failure = undefined;
    this.sleeping = false;
    this.update();
  }

  serverSleeping(): void {
    this.server = undefined;
    this.sleeping = true;
    this.update();
  }

  serverFailed(message: string): void {
    this.failure = message;
    this.update();
  }

  private activeDocument(): vscode.TextDocument | undefined {
    return vscode.window.activeTextEditor?.document;
  }

  /**
   * One label, "Char Complete" after an icon, whatever the state, so the status bar does not shift as one types; the
   * state is in the icon, the accessible label and the tooltip.
   */
  update(): void {
    const document = this.activeDocument();
    const on = vscode.workspace.getConfiguration(SECTION, document).get('enable', true);
    const snoozed = Date.now() < this.snoozedUntil;
    // Off only for this document's language when the setting is on for the rest.
    const off =
      document && vscode.workspace.getConfiguration(SECTION).get('enable', true)
        ? `off for ${document.languageId}`
        : 'off';
    let icon: string;
    let state: string;
    let detail: string;
    if (this.failure) {
      [icon, state, detail] = ['error', 'server failed to start', this.failure];
    } else if (this.sleeping) {
      [icon, state, detail] = [
        'circle-large-outline',
        'idle',
        'The language server starts when a note in one of charComplete.languages is open, and exits after 30 minutes unused.',
      ];
    } else if (!this.server) {
      // Until the server has said which model it loaded, "no model" would be a guess, and a wrong one.
      [icon, state, detail] = ['sync~spin', 'starting', 'The language server is starting.'];
    } else if (!this.server.model) {
      [icon, state, detail] = ['warning', 'no model', 'No trained model yet: train one on your notes from the menu.'];
    } else {
      const where = this.server.gpu ? 'GPU' : 'CPU';
      const latency =
        this.server.latencyMs === null ? '' : `, last completion in ${this.server.latencyMs.toFixed(0)} ms`;
      const lstm = this.server.lstmTraining ? '\nThe LSTM is still training; the n-gram serves meanwhile.' : '';
      detail = `Model: ${this.server.model} (${this.server.description})\nBackend: ${this.server.backend} (${where}${latency})${lstm}`;
      if (snoozed) [icon, state] = ['clock', `snoozed until ${new Date(this.snoozedUntil).toLocaleTimeString()}`];
      else if (!on) [icon, state] = ['circle-slash', off];
      else [icon, state] = [this.server.lstmTraining ? 'loading~spin' : 'check', 'on'];
    }
    this.item.text = `$(${icon}) Char Complete`;
    this.item.accessibilityInformation = { label: `Char Complete: ${state}` };
    this.item.tooltip = `Char Complete: ${state}\n${detail}\n\nClick for the menu.`;
    this.item.show();
  }

  private async menu(): Promise<void> {
    const document = this.activeDocument();
    const config = vscode.workspace.getConfiguration(SECTION, document);
    const on = vscode.workspace.getConfiguration(SECTION).get('enable', true);
    const language = document?.languageId;
    const languageOff = language !== undefined && languageOverride(language) !== undefined && !config.get('enable');
    const snoozed = Date.now() < this.snoozedUntil;
    const learn = config.get('learnFromSaves', true);
    const items: Array<vscode.QuickPickItem & { run?: () => unknown }> = [
      {
        label: on ? '$(circle-slash) Turn completions off' : '$(check) Turn completions on',
        description: scopeName(whereItLives(SECTION, 'enable', document)),
        run: () => flip('enable', document),
      },
      ...(language
        ? [
            {
              label: languageOff ? `$(check) Turn on for ${language}` : `$(circle-slash) Turn off for ${language}`,
              description: 'other languages unchanged',
              run: () => this.toggleLanguage(language),
            },
          ]
        : []),
      {
        label: snoozed ? '$(bell) End the snooze' : '$(clock) Snooze for 5 minutes',
        run: () => this.snooze(!snoozed),
      },
      {
        label: `${learn ? '$(check)' : '$(circle-large-outline)'} Learn from saved notes`,
        description: learn ? 'on' : 'off',
        run: () => flip('learnFromSaves', document),
      },
      { label: '', kind: vscode.QuickPickItemKind.Separator },
      {
        label: '$(mortar-board) Train on your notes…',
        run: () => vscode.commands.executeCommand('charComplete.train'),
      },
      { label: '$(info) Model info', run: () => this.modelInfo() },
      { label: '$(library) Manage models', run: () => vscode.commands.executeCommand('charComplete.manageModels') },
      { label: '$(output) Show server log', run: () => vscode.commands.executeCommand('charComplete.showLog') },
    ];
    const picked = await vscode.window.showQuickPick(items, { title: 'Char Complete' });
    await picked?.run?.();
    this.update();
  }

  /** A per-language value, so the other languages and the server's language list stay as they are. */
  private async toggleLanguage(languageId: string): Promise<void> {
    const config = vscode.workspace.getConfiguration(SECTION, { languageId });
    const where = languageOverride(languageId);
    if (where !== undefined && !config.get('enable', true)) await config.update('enable', undefined, where, true);
    else await config.update('enable', false, where ?? vscode.ConfigurationTarget.Global, true);
  }

  private snooze(on: boolean): void {
    clearTimeout(this.snoozeTimer);
    this.snoozedUntil = on ? Date.now() + SNOOZE_MS : 0;
    if (on) this.snoozeTimer = setTimeout(() => this.update(), SNOOZE_MS + 100);
  }

  private async modelInfo(): Promise<void> {
    let message: string;
    let detail: string;
    try {
      const list = await this.client()?.sendRequest(ListModelsRequest);
      const model = list?.models.find((m) => m.inUse);
      if (!list) [message, detail] = ['the language server is not running', 'See "Char Complete: Show server log".'];
      else if (!model) [message, detail] = ['no model yet', `Once trained, it is served from ${list.inUse}.`];
      else [message, detail] = [`model "${model.name}"`, `${describe(model)}\n\n${model.dir}`];
    } catch (error) {
      [message, detail] = ['the models could not be listed', (error as Error).message];
    }
    void vscode.window.showInformationMessage(`Char Complete: ${message}`, { modal: true, detail });
  }
}

function scopeName(target: vscode.ConfigurationTarget): string {
  if (target === vscode.ConfigurationTarget.WorkspaceFolder) return 'in this folder’s settings';
  if (target === vscode.ConfigurationTarget.Workspace) return 'in this workspace’s settings';
  return 'in your user settings';
}

/**
 * Completions show as inline suggestions: with those off in VS Code nothing would appear, and nothing would say why.
 * Warned once per installation, with a button that turns them on where their effective value lives.
 */
export async function warnIfInlineSuggestOff(context: vscode.ExtensionContext): Promise<void> {
  if (vscode.workspace.getConfiguration('editor').get('inlineSuggest.enabled', true)) return;
  if (context.globalState.get(WARNED_INLINE_SUGGEST)) return;
  await context.globalState.update(WARNED_INLINE_SUGGEST, true);
  const turnOn = await vscode.window.showWarningMessage(
    'Char Complete shows its completions as inline suggestions, which are off in VS Code (editor.inlineSuggest.enabled).',
    'Turn them on',
  );
  if (turnOn)
    await vscode.workspace
      .getConfiguration('editor')
      .update('inlineSuggest.enabled', true, whereItLives('editor', 'inlineSuggest.enabled'));
}
