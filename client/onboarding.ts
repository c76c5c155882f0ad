// Getting started: the walkthrough's commands, and the one notice per window that there is no model yet, shown only
// once a note is open, with buttons to train or open the walkthrough rather than a command line to type.
import * as vscode from 'vscode';
import type { StatusParams } from '../protocol/messages';

const SECTION = 'charComplete';
const WALKTHROUGH = 'char-complete.char-complete#charComplete.start';

export class Onboarding implements vscode.Disposable {
  private noModel = false;
  private told = false;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor() {
    this.subscriptions.push(
      vscode.commands.registerCommand('charComplete.openWalkthrough', () => openWalkthrough()),
      vscode.commands.registerCommand('charComplete.tryInNote', async () => {
        const note = await vscode.workspace.openTextDocument({
          language: 'markdown',
          content: '# Trying Char Complete\n\n',
        });
        const editor = await vscode.window.showTextDocument(note);
        const end = note.positionAt(note.getText().length);
        editor.selection = new vscode.Selection(end, end);
      }),
      vscode.workspace.onDidOpenTextDocument(() => this.tell()),
    );
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
  }

  /** The server's status; undefined while it starts. */
  status(status: StatusParams | undefined): void {
    void vscode.commands.executeCommand('setContext', 'charComplete.modelLoaded', Boolean(status?.model));
    this.noModel = status !== undefined && !status.model;
    this.tell();
  }

  /** A code project with no note open hears nothing; a window is told at most once. */
  private async tell(): Promise<void> {
    if (!this.noModel || this.told) return;
    const languages = vscode.workspace.getConfiguration(SECTION).get<string[]>('languages') ?? [];
    const served = vscode.workspace.textDocuments.some(
      (d) => (d.uri.scheme === 'file' || d.uri.scheme === 'untitled') && languages.includes(d.languageId),
    );
    if (!served) return;
    this.told = true;
    const action = await vscode.window.showInformationMessage(
      'Char Complete has no model yet: train one on your notes, and it completes what you write as you write it.',
      'Train on your notes…',
      'Open walkthrough',
    );
    if (action === 'Train on your notes…') await vscode.commands.executeCommand('charComplete.train');
    else if (action === 'Open walkthrough') await openWalkthrough();
  }
}

function openWalkthrough(): Thenable<unknown> {
  return vscode.commands.executeCommand('workbench.action.openWalkthrough', WALKTHROUGH, false);
}
