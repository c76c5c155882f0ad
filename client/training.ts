// Training from the editor: pick the notes folders, confirm what the trainer will read (its own dry run, so the
// exclusions are the trainer's), then run it as a child process with its progress, ETA and Cancel in a notification.
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { homedir } from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { trainingTarget, TrainingTarget } from './models';

const SECTION = 'charComplete';

/** What the trainer's --plan prints (scripts/train.ts). */
interface TrainingPlan {
  files: number;
  chars: number;
  bytes: number;
  excluded: number;
  skipped: number;
  minutes: number | null;
  out: string;
  lines: string[];
}

/** One line of the trainer's --progress-json output. */
type TrainerEvent =
  | { event: 'progress'; fraction: number; eta_s: number | null; chars_per_s: number; val_bpc: number | null }
  | {
      event: 'done';
      model: string;
      val_bpc: number | null;
      stopped_by: string;
      seconds: number;
      trained_chars: number;
    };

export class Training implements vscode.Disposable {
  private running: ChildProcess | undefined;
  private readonly output = vscode.window.createOutputChannel('Char Complete Training');

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly client: () => LanguageClient | undefined,
  ) {}

  dispose(): void {
    // A window closing mid-run stops the trainer the gentle way, so its last checkpoint is kept.
    this.running?.kill('SIGTERM');
    this.output.dispose();
  }

  /** The command: folders, plan, confirmation, run. */
  async run(): Promise<void> {
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage('Char Complete does not train in an untrusted workspace.');
      return;
    }
    if (this.running) {
      void vscode.window.showInformationMessage(
        'Char Complete is already training; its progress is in a notification.',
      );
      return;
    }
    const folders = await pickFolders();
    if (!folders || folders.length === 0) return;
    const config = vscode.workspace.getConfiguration(SECTION);
    const minutes = Math.max(0.1, config.get<number>('trainMinutes', 5));
    // Asked before the corpus is read, so declining to replace another model costs nothing.
    const target = await trainingTarget(this.client);
    if (!target) return;
    const args = [...folders, '--minutes', String(minutes), ...target.args, ...excludeArgs()];
    let plan: TrainingPlan;
    try {
      plan = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Char Complete: reading your notes…' },
        () => this.plan(args),
      );
    } catch (error) {
      void vscode.window.showErrorMessage(
        `Char Complete cannot train on ${folders.join(', ')}: ${(error as Error).message}`,
      );
      return;
    }
    const excluded = plan.excluded + plan.skipped > 0 ? ` (${plan.excluded + plan.skipped} files left out)` : '';
    const go = await vscode.window.showInformationMessage(
      `Train on ${plan.files} file${plan.files === 1 ? '' : 's'}, ${megabytes(plan.bytes)}${excluded}, for about ${minutes} minute${minutes === 1 ? '' : 's'}?`,
      {
        modal: true,
        detail: `From: ${folders.join(', ')}\nModel: ${target.name ? `"${target.name}", ` : ''}${plan.out} (replaced when training ends)\n\n${plan.lines.join('\n')}\n\nThe budget is the setting charComplete.trainMinutes.`,
      },
      'Train',
    );
    if (go !== 'Train') return;
    await this.train(args, plan, target);
  }

  private trainer(args: string[]) {
    return {
      command: process.execPath,
      args: [this.context.asAbsolutePath(path.join('dist', 'train.js')), ...args],
      // The trainer resolves a relative --out against its working directory, and the server against the first
      // workspace folder: started there, both name one directory.
      options: {
        cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? homedir(),
        env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      },
    };
  }

  private plan(args: string[]): Promise<TrainingPlan> {
    const { command, args: argv, options } = this.trainer([...args, '--plan']);
    return new Promise((resolve, reject) => {
      execFile(command, argv, { ...options, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        if (error) return reject(new Error(trainerError(stderr) || error.message));
        try {
          resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as TrainingPlan);
        } catch {
          reject(new Error(`the trainer's plan was not readable: ${stdout.slice(0, 200)}`));
        }
      });
    });
  }

  private async train(args: string[], plan: TrainingPlan, target: TrainingTarget): Promise<void> {
    const { command, args: argv, options } = this.trainer([...args, '--progress-json']);
    this.output.appendLine(`$ train ${args.join(' ')}`);
    // The server then watches the directory the trainer writes, and loads its first checkpoint.
    await target.use();
    let done: Extract<TrainerEvent, { event: 'done' }> | undefined;
    let stderrTail = '';
    let cancelled = false;
    const code = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Char Complete: training', cancellable: true },
      (progress, token) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(command, argv, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
          this.running = child;
          token.onCancellationRequested(() => {
            cancelled = true;
            progress.report({ message: 'stopping after this step; the model so far is kept…' });
            child.kill('SIGTERM');
          });
          let reported = 0;
          lines(child.stdout!, (line) => {
            let event: TrainerEvent;
            try {
              event = JSON.parse(line) as TrainerEvent;
            } catch {
              return;
            }
            if (event.event === 'done') done = event;
            else if (!cancelled) {
              const percent = Math.floor(event.fraction * 100);
              progress.report({ increment: Math.max(0, percent - reported), message: describeProgress(event) });
              reported = Math.max(reported, percent);
            }
          });
          lines(child.stderr!, (line) => {
            this.output.appendLine(line);
            stderrTail = (stderrTail + line + '\n').slice(-2000);
          });
          child.on('error', (error) => {
            stderrTail += error.message;
            resolve(null);
          });
          child.on('exit', (exitCode) => resolve(exitCode));
        }),
    );
    this.running = undefined;
    const score =
      done?.val_bpc == null
        ? 'not scored (too few notes to hold some out)'
        : `${done.val_bpc.toFixed(2)} bits per character on notes it did not train on`;
    if (done && (code === 0 || cancelled)) {
      const action = await vscode.window.showInformationMessage(
        cancelled
          ? `Char Complete: training stopped; the model saved so far is in use (${score}).`
          : `Char Complete: model ready, trained on ${plan.files} file${plan.files === 1 ? '' : 's'} in ${minutesAndSeconds(done.seconds)}: ${score}.`,
        'Show training log',
      );
      if (action) this.output.show();
      return;
    }
    const action = await vscode.window.showErrorMessage(
      `Char Complete: training failed: ${trainerError(stderrTail) || `exit code ${code}`}`,
      'Show training log',
    );
    if (action) this.output.show();
  }
}

/** The workspace folders, all ticked, plus "another folder"; the folder dialog straight away without a workspace. */
async function pickFolders(): Promise<string[] | undefined> {
  const workspace = vscode.workspace.workspaceFolders?.filter((f) => f.uri.scheme === 'file') ?? [];
  const other = { label: '$(folder-opened) Choose other folders…', picked: false, path: '' };
  let chosen: string[] = [];
  if (workspace.length > 0) {
    const items = [
      ...workspace.map((f) => ({ label: f.name, description: f.uri.fsPath, picked: true, path: f.uri.fsPath })),
      other,
    ];
    const picked = await vscode.window.showQuickPick(items, {
      canPickMany: true,
      title: 'Char Complete: train on which folders of notes?',
      placeHolder: 'Notes only: code, logs and exports make worse completions',
    });
    if (!picked) return undefined;
    chosen = picked.filter((item) => item !== other).map((item) => item.path);
    if (!picked.includes(other)) return chosen;
  }
  const opened = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: true,
    openLabel: 'Train on these notes',
  });
  return opened ? [...chosen, ...opened.map((uri) => uri.fsPath)] : chosen.length > 0 ? chosen : undefined;
}

/** The user's charComplete.exclude and VS Code's files.exclude, as the trainer's --exclude. */
function excludeArgs(): string[] {
  const own = vscode.workspace.getConfiguration(SECTION).get<unknown>('exclude');
  const hidden = vscode.workspace.getConfiguration('files').get<Record<string, unknown>>('exclude') ?? {};
  const globs = [
    ...(Array.isArray(own) ? own.filter((g): g is string => typeof g === 'string') : []),
    ...Object.entries(hidden)
      .filter(([, on]) => on === true)
      .map(([glob]) => glob),
  ];
  return globs.map((glob) => `--exclude=${glob}`);
}

function describeProgress(p: Extract<TrainerEvent, { event: 'progress' }>): string {
  const parts = [`${Math.floor(p.fraction * 100)}%`];
  if (p.eta_s !== null) parts.push(`ETA ${minutesAndSeconds(p.eta_s)}`);
  parts.push(`${p.chars_per_s.toLocaleString('en-US')} chars/s`);
  if (p.val_bpc !== null) parts.push(`validation ${p.val_bpc.toFixed(2)} bits/char`);
  return parts.join(' · ');
}

function minutesAndSeconds(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function megabytes(bytes: number): string {
  return bytes < 100_000 ? `${(bytes / 1000).toFixed(0)} KB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The trainer's own error line ("error: …"), which says what to do; else its last line. */
function trainerError(stderr: string): string {
  const all = stderr.trim().split('\n');
  const error = all.find((line) => line.startsWith('error: '));
  return (error ? error.slice('error: '.length) : (all.at(-1) ?? '')).trim();
}

/** Calls back with each whole line of a stream. */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  });
  stream.on('end', () => pending && onLine(pending));
}
