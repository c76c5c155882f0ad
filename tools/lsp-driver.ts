// Drives the real language server process over stdio with JSON-RPC, as an editor would. Shared by
// the eval and bench tools and by the server tests, so neither depends on the other.
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createMessageConnection,
  MessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import { StatusNotification, StatusParams } from '../protocol/messages';
import { SERVER_NODE_FLAGS } from '../protocol/server-process';

export interface LspSessionOptions {
  serverPath?: string;
  initializationOptions?: Record<string, unknown>;
  /** What the server gets back for workspace/configuration; undefined means the client lacks it. */
  configuration?: () => unknown;
  /** The editor's files.exclude, answered when the server asks for that section. */
  filesExclude?: () => unknown;
  env?: NodeJS.ProcessEnv;
  /** Workspace folder URIs announced at initialize. */
  workspaceFolders?: string[];
}

export interface Range {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

export class LspSession {
  readonly process: ChildProcess;
  readonly connection: MessageConnection;
  readonly messages: Array<{ type: number; message: string }> = [];
  readonly logs: string[] = [];
  readonly statuses: StatusParams[] = [];
  stderr = '';
  private versions = new Map<string, number>();

  constructor(private readonly options: LspSessionOptions = {}) {
    // Bundles live in dist/ (scripts) or dist/test/ (tests), next to or below server.js.
    const serverPath =
      options.serverPath ??
      [join(__dirname, 'server.js'), join(__dirname, '..', 'server.js')].find((p) => existsSync(p))!;
    this.process = spawn(process.execPath, [...SERVER_NODE_FLAGS, serverPath, '--stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    this.process.stderr!.on('data', (chunk) => (this.stderr += chunk));
    this.connection = createMessageConnection(
      new StreamMessageReader(this.process.stdout!),
      new StreamMessageWriter(this.process.stdin!),
    );
    this.connection.onNotification(
      'window/showMessage',
      (p: { type: number; message: string }) => void this.messages.push(p),
    );
    this.connection.onNotification('window/logMessage', (p: { message: string }) => void this.logs.push(p.message));
    this.connection.onNotification(StatusNotification, (p) => void this.statuses.push(p));
    this.connection.onRequest('workspace/configuration', (p: { items: Array<{ section?: string }> }) =>
      p.items.map((item) =>
        item.section === 'files.exclude' ? (options.filesExclude?.() ?? null) : (options.configuration?.() ?? {}),
      ),
    );
    this.connection.onRequest('client/registerCapability', () => null);
    this.connection.onRequest('window/showMessageRequest', () => null);
    this.connection.listen();
  }

  async initialize(): Promise<{ capabilities: Record<string, unknown> }> {
    const result = await this.connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      workspaceFolders: this.options.workspaceFolders?.map((uri) => ({ uri, name: uri })) ?? null,
      capabilities: {
        workspace: {
          configuration: this.options.configuration !== undefined,
          didChangeConfiguration: { dynamicRegistration: true },
        },
      },
      initializationOptions: this.options.initializationOptions,
    });
    await this.connection.sendNotification('initialized', {});
    return result as { capabilities: Record<string, unknown> };
  }

  open(uri: string, text: string, languageId = 'markdown'): Promise<void> {
    this.versions.set(uri, 1);
    return this.connection.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId, version: 1, text },
    });
  }

  /** An incremental change: replaces range with text. */
  change(uri: string, range: Range, text: string): Promise<void> {
    const version = (this.versions.get(uri) ?? 0) + 1;
    this.versions.set(uri, version);
    return this.connection.sendNotification('textDocument/didChange', {
      textDocument: { uri, version },
      contentChanges: [{ range, text }],
    });
  }

  save(uri: string): Promise<void> {
    return this.connection.sendNotification('textDocument/didSave', { textDocument: { uri } });
  }

  close(uri: string): Promise<void> {
    return this.connection.sendNotification('textDocument/didClose', { textDocument: { uri } });
  }

  /** The first suggestion of an inline completion, as the editor asks while the user types. */
  async inline(uri: string, line: number, character: number): Promise<string | undefined> {
    return (await this.inlineItems(uri, line, character))[0];
  }

  /**
   * Every item of an inline completion: trigger kind 2 (automatic) as the editor asks while the user types, 1
   * (invoked) as it asks again when the user cycles to the other suggestions with Alt+].
   */
  async inlineItems(uri: string, line: number, character: number, triggerKind: 1 | 2 = 2): Promise<string[]> {
    const items = (await this.connection.sendRequest('textDocument/inlineCompletion', {
      textDocument: { uri },
      position: { line, character },
      context: { triggerKind },
    })) as Array<{ insertText: string }> | null;
    return (items ?? []).map((item) => item.insertText);
  }

  async completion(
    uri: string,
    line: number,
    character: number,
  ): Promise<Array<{ label: string; textEdit?: { newText: string } }>> {
    const result = (await this.connection.sendRequest('textDocument/completion', {
      textDocument: { uri },
      position: { line, character },
    })) as Array<{ label: string }> | { items: Array<{ label: string }> } | null;
    return Array.isArray(result) ? result : (result?.items ?? []);
  }

  changeConfiguration(): Promise<void> {
    return this.connection.sendNotification('workspace/didChangeConfiguration', {
      settings: { charComplete: this.options.configuration?.() ?? {} },
    });
  }

  /** Resident memory of the server process in bytes (Linux). */
  rss(): number {
    const status = readFileSync(`/proc/${this.process.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
  }

  async shutdown(): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => this.process.once('exit', (code) => resolve(code)));
    try {
      await this.connection.sendRequest('shutdown');
      await this.connection.sendNotification('exit');
    } catch {
      this.process.kill();
    }
    const code = await exited;
    this.connection.dispose();
    return code;
  }
}

export interface ReplayResult {
  chars: number;
  keystrokes: number;
  accepted: number;
  /** Requests that got a suggestion (shown to the typist), accepted or not. */
  shown: number;
  latenciesMs: number[];
  /** Where `invokedEvery` asked: each invoked request's latency and how many suggestions it answered. */
  invoked: { latenciesMs: number[]; items: number[] };
}

export interface ReplayOptions {
  onProgress?: (done: number) => void;
  onSuggestion?: (position: number, suggestion: string | undefined, accepted: boolean) => void;
  /**
   * After every this many shown suggestions, ask again at the same place as Alt+] does (an invoked request) before
   * the next key, as a user who cycles to the other suggestions; 0 never does.
   */
  invokedEvery?: number;
}

/**
 * Types `text` into the open document `uri` (which already holds `existing`) one character at a
 * time, asking for an inline completion before every keystroke and accepting it with one key
 * only when it is exactly the text that comes next.
 */
export async function replayTypist(
  session: LspSession,
  uri: string,
  existing: string,
  text: string,
  { onProgress, onSuggestion, invokedEvery = 0 }: ReplayOptions = {},
): Promise<ReplayResult> {
  let { line, character } = advance({ line: 0, character: 0 }, existing);
  const latenciesMs: number[] = [];
  let keystrokes = 0;
  let accepted = 0;
  let shown = 0;
  let position = 0;
  const invoked = { latenciesMs: [] as number[], items: [] as number[] };
  while (position < text.length) {
    const t0 = performance.now();
    const suggestion = await session.inline(uri, line, character);
    latenciesMs.push(performance.now() - t0);
    let typed: string;
    if (suggestion) shown++;
    if (suggestion && invokedEvery > 0 && shown % invokedEvery === 0) {
      const t1 = performance.now();
      const items = await session.inlineItems(uri, line, character, 1);
      invoked.latenciesMs.push(performance.now() - t1);
      invoked.items.push(items.length);
    }
    if (suggestion && text.startsWith(suggestion, position)) {
      typed = suggestion;
      accepted++;
    } else {
      const code = text.codePointAt(position)!;
      typed = String.fromCodePoint(code);
    }
    onSuggestion?.(position, suggestion, typed === suggestion);
    await session.change(uri, { start: { line, character }, end: { line, character } }, typed);
    keystrokes++;
    position += typed.length;
    ({ line, character } = advance({ line, character }, typed));
    if (onProgress && keystrokes % 500 === 0) onProgress(position);
  }
  return { chars: [...text].length, keystrokes, accepted, shown, latenciesMs, invoked };
}

/** The LSP position (UTF-16 columns) after `text` is inserted at `from`. */
function advance(from: { line: number; character: number }, text: string): { line: number; character: number } {
  let { line, character } = from;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      character = 0;
    } else {
      character++;
    }
  }
  return { line, character };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
