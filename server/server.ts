// The language server as one object: it maps LSP requests for documents onto completion sessions, and keeps settings,
// model and status.
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  CancellationToken,
  CompletionItem,
  CompletionItemKind,
  CompletionParams,
  Connection,
  DidChangeConfigurationNotification,
  DidChangeConfigurationParams,
  ErrorCodes,
  InitializeParams,
  InitializeResult,
  InlineCompletionItem,
  InlineCompletionParams,
  InlineCompletionTriggerKind,
  MessageType,
  Position,
  ResponseError,
  ShowMessageNotification,
  TextDocuments,
  TextDocumentSyncKind,
  URI,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { appendFileSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { servingOptions } from '../backends/probe-cache';
import { selectBackend } from '../backends/select';
import { completionProbe } from '../completion/probe';
import { Completion, wordBefore } from '../completion/options';
import { CompletionSession } from '../completion/session';
import { readModelConfig } from '../model/format';
import { DEFAULT_NETWORK, NetworkConfig } from '../model/architecture';
import { Exclusions } from '../model/exclusions';
import { noteKey } from '../model/learned';
import { resolveModelDir } from '../model/paths';
import { characterStart } from '../model/vocab';
import { ForgetResult, IdleExitNotification, LoadedModel, ModelList, StatusNotification } from '../protocol/messages';
import { forgetLearnedNotes } from '../model/learned';
import { deleteModel, listModels, modelDirForName } from '../model/models';
import { ModelHost } from './model-host';
import { filesExcludeGlobs, parseSettings, Settings, SETTINGS_DEFAULTS } from './settings';

/**
 * Sessions kept at once. Each holds model states and the document's n-gram, up to a few megabytes;
 * a document whose session was let go starts cold again, which costs one request a little latency.
 */
const MAX_SESSIONS = 8;
/**
 * Turns of the event loop a completion lets pass before it starts. The connection hands one queued message to its
 * handler per turn, so messages that arrived together with a request (the editor's next request behind it, or an edit)
 * are handled before it does any work.
 */
const TURNS_BEFORE_COMPLETING = 4;
const REQUEST_KINDS = ['inline', 'list'] as const;
type RequestKind = (typeof REQUEST_KINDS)[number];
/** How often a saved note whose write failed is tried again. */
const LEARN_RETRY_MS = 1000;
/**
 * A server nobody has asked anything for this long exits, giving back its memory (a model and a backend, about 200 MB);
 * the client starts it again when a note needs it. CHAR_COMPLETE_IDLE_EXIT_MS sets another period (tests).
 */
const IDLE_EXIT_MS = Number(process.env.CHAR_COMPLETE_IDLE_EXIT_MS) || 30 * 60_000;
/**
 * A pause this long, with no request and no edit, is idle time for learning what was typed (the
 * LSTM's adaptation to the document): longer than the gap between keys, so that a step, which
 * holds the server for a moment, falls where no one waits for a suggestion.
 */
const IDLE_LEARN_MS = 400;
/**
 * The status bar's latency is a tooltip, read at a pause: while the user types it is sent at most this often, after the
 * responses, rather than with each completion, whose response it would otherwise be written ahead of
 * (docs/measurements.md has the A/B).
 */
const LATENCY_STATUS_MS = 1000;

export class CharCompleteServer {
  private settings: Settings = SETTINGS_DEFAULTS;
  private clientHasConfiguration = false;
  private readonly damagedModelErrorsShown = new Set<string>();
  /** Whether the client has said `initialized`, and so listens for the status. */
  private clientReady = false;
  private lastLatencyMs: number | undefined;
  private backendName = 'not started';
  private backendOnGpu = false;
  private readonly host: ModelHost;
  /** Per-document sessions, each on the model generation it was made for. */
  private readonly sessions = new Map<string, { generation: number; learning: boolean; session: CompletionSession }>();
  /**
   * The newest request per kind and document; older ones return nothing when they get their turn. The completion
   * list and inline completion are asked together on one keystroke, so each kind has its own, or one would cancel
   * the other.
   */
  private readonly newestRequest = new Map<string, number>();
  private requestCounter = 0;
  /** Where the protocol is: requests are answered only between initialize and shutdown. */
  private phase: 'new' | 'initializing' | 'running' | 'shut down' = 'new';
  /** A relative modelPath is relative to this: the workspace folder, or the home directory without one. */
  private baseDir = homedir();
  /** Where saved notes may be learnt from: the workspace folders, when the client trusts them. */
  private learnableFolders: string[] = [];
  /** The editor's files.exclude globs: notes it hides are not learnt either. */
  private editorExcludes: string[] = [];
  /** Saved notes not yet written to the learnt notes (a full disk, a lock another program keeps), by URI. */
  private readonly unlearnt = new Map<string, string>();
  private learnRetryTimer: NodeJS.Timeout | undefined;
  /** Why learning last failed, so that a failure repeated on every retry is logged once. */
  private learnFailure = '';
  /** Warnings about learning already shown, so each is shown once. */
  private readonly learnWarningsShown = new Set<string>();
  // CHAR_COMPLETE_LOG_FILE also appends the log to a file, for debugging and end-to-end tests.
  private readonly logFile = process.env.CHAR_COMPLETE_LOG_FILE;
  private idleTimer: NodeJS.Timeout | undefined;
  private idleLearnTimer: NodeJS.Timeout | undefined;
  private latencyStatusTimer: NodeJS.Timeout | undefined;
  /** The sessions whose first adaptation has been logged. */
  private readonly adaptedSessions = new WeakSet<CompletionSession>();
  /** What ends the process once an idle server has said goodbye; main.ts sets it. */
  onIdleExit: () => void = () => undefined;

  constructor(
    private readonly connection: Connection,
    private readonly documents: TextDocuments<TextDocument>,
  ) {
    this.host = new ModelHost(
      (message) => this.log(message),
      (error, damaged) => this.modelChanged(damaged ? error : undefined),
    );
  }

  log(message: string): void {
    this.connection.console.log(message);
    if (this.logFile) {
      try {
        appendFileSync(this.logFile, `${new Date().toISOString()} [${process.pid}] ${message}\n`);
      } catch {
        // A log file that cannot be written must not stop completions.
      }
    }
  }

  /** Whether shutdown was asked for, which makes the exit that follows a clean one. */
  get shutDown(): boolean {
    return this.phase === 'shut down';
  }

  async initialize(params: InitializeParams): Promise<InitializeResult> {
    if (this.phase !== 'new')
      throw new ResponseError(ErrorCodes.InvalidRequest, 'initialize was already received; it may be sent only once');
    this.phase = 'initializing';
    this.baseDir = workspaceDir(params) ?? homedir();
    this.clientHasConfiguration = params.capabilities.workspace?.configuration === true;
    const options = (params.initializationOptions as Record<string, unknown> | undefined) ?? {};
    // VS Code's client says whether the workspace is trusted; other editors have no such notion.
    if (options.workspaceTrusted !== false) {
      const folders = params.workspaceFolders?.map((folder) => folder.uri) ?? (params.rootUri ? [params.rootUri] : []);
      this.learnableFolders = folders.map((uri) => (uri.endsWith('/') ? uri : `${uri}/`));
    }
    this.editorExcludes = filesExcludeGlobs(options.filesExclude);
    const initial = parseSettings(options);
    const size = modelSizeForProbe(this.modelDir(initial.settings));
    const { beamWidth } = initial.settings.completion;
    const probe = completionProbe(size, beamWidth);
    const serving = servingOptions(size, beamWidth);
    const backend = await selectBackend(initial.settings.backend, probe, serving).catch(async (error: Error) => {
      this.log(`${error.message}; falling back to automatic selection`);
      return selectBackend('auto', probe, serving);
    });
    this.backendName = backend.name;
    this.backendOnGpu = backend.gpu;
    this.log(`Backend: ${backend.name} (${backend.reason})`);
    this.applySettings(params.initializationOptions ?? {});
    this.phase = 'running';
    return {
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental, save: { includeText: false } },
        inlineCompletionProvider: true,
        completionProvider: { resolveProvider: false },
      },
      serverInfo: { name: 'char-complete' },
    };
  }

  async initialized(): Promise<void> {
    // A client registers its handlers for custom notifications only once it has the answer to
    // initialize (vscode-languageclient does), so a status sent while initialize loaded the model is
    // lost: the first one goes now.
    this.clientReady = true;
    this.sendStatus();
    this.activity();
    if (!this.clientHasConfiguration) return;
    void this.connection.client.register(DidChangeConfigurationNotification.type, {
      section: ['charComplete', 'files.exclude'],
    });
    await this.pullConfiguration();
  }

  async didChangeConfiguration(change: DidChangeConfigurationParams): Promise<void> {
    // Before initialize there is no backend to load a model on; after shutdown nothing is wanted.
    if (this.phase !== 'running') return;
    if (this.clientHasConfiguration) return this.pullConfiguration();
    const settings = change.settings as { charComplete?: unknown; files?: { exclude?: unknown } } | null;
    if (settings?.files) this.editorExcludes = filesExcludeGlobs(settings.files.exclude);
    this.applySettings(settings?.charComplete ?? {});
  }

  didClose(uri: string): void {
    this.sessions.delete(uri);
    for (const kind of REQUEST_KINDS) this.newestRequest.delete(`${kind} ${uri}`);
  }

  /**
   * Throws the protocol's answer to a request that cannot be served now or whose position is not
   * one: the client learns it sent something wrong, instead of getting an empty or a null answer.
   */
  checkRequest(params: { position?: unknown }): void {
    if (this.phase === 'new' || this.phase === 'initializing')
      throw new ResponseError(ErrorCodes.ServerNotInitialized, 'the server has not been initialized yet');
    if (this.phase === 'shut down') throw new ResponseError(ErrorCodes.InvalidRequest, 'the server is shutting down');
    this.activity();
    if (params.position === undefined) return;
    const position = params.position as Partial<Position> | null;
    const valid = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 2 ** 31 - 1;
    if (typeof position !== 'object' || position === null || !valid(position.line) || !valid(position.character)) {
      throw new ResponseError(
        ErrorCodes.InvalidParams,
        `position must have non-negative integer line and character, got ${truncatedJson(position)}`,
      );
    }
  }

  async inlineCompletion(params: InlineCompletionParams, token: CancellationToken): Promise<InlineCompletionItem[]> {
    this.checkRequest(params);
    try {
      const alternativesWanted = params.context?.triggerKind === InlineCompletionTriggerKind.Invoked;
      const found = await this.completionAt(
        'inline',
        params.textDocument.uri,
        params.position,
        token,
        alternativesWanted,
      );
      if (!found) return [];
      const position = found.document.positionAt(found.offset);
      // The best first, then the other distinct beams, which the editor cycles through (Alt+] in VS Code, which asks
      // again, as invoked, for them).
      const { completion } = found;
      return [completion, ...(completion.alternatives ?? [])].map((item) =>
        InlineCompletionItem.create(item.text, undefined, { start: position, end: position }),
      );
    } catch (error) {
      this.log(`inline completion failed: ${(error as Error).stack ?? error}`);
      return [];
    }
  }

  async completion(params: CompletionParams, token: CancellationToken): Promise<CompletionItem[]> {
    this.checkRequest(params);
    try {
      const found = await this.completionAt('list', params.textDocument.uri, params.position, token);
      if (!found) return [];
      const { document, offset, completion } = found;
      // The item replaces the word being typed, so clients filter it against what was typed.
      const lineStart = document.offsetAt({ line: document.positionAt(offset).line, character: 0 });
      const word = wordBefore(document.getText().slice(lineStart, offset), offset - lineStart);
      const start = document.positionAt(offset - word.length);
      return [
        {
          // The separator a completion may end with is inserted but not shown in the list.
          label: (word + completion.text).trimEnd(),
          kind: CompletionItemKind.Text,
          detail: `char-complete, confidence ${(completion.confidence * 100).toFixed(0)}%`,
          textEdit: { range: { start, end: document.positionAt(offset) }, newText: word + completion.text },
          sortText: '0',
        },
      ];
    } catch (error) {
      this.log(`completion failed: ${(error as Error).stack ?? error}`);
      return [];
    }
  }

  /** A note saved inside a trusted workspace folder is added to the n-gram of the notes, and kept on disk at once. */
  didSave(uri: URI): void {
    const document = this.documents.get(uri);
    if (!this.settings.learnFromSaves || !this.host.model?.learned || !document || !this.serves(document)) return;
    if (!this.inLearnableFolder(uri)) return;
    const excludedBy = this.exclusionRule(uri);
    if (excludedBy) {
      this.log(`Not learning from ${uri}: excluded by ${excludedBy}`);
      return;
    }
    this.unlearnt.set(uri, document.getText());
    this.learnSaved();
    this.host.keepCarriedMixing({ now: true });
  }

  /** Learns every saved note not learnt yet; what cannot be written now is tried again shortly, and at shutdown. */
  private learnSaved(): void {
    clearTimeout(this.learnRetryTimer);
    const learned = this.host.model?.learned;
    if (!learned) return;
    let reload = false;
    for (const [uri, text] of this.unlearnt) {
      let outcome;
      try {
        outcome = learned.learn(noteKeyOfUri(uri), text);
      } catch (error) {
        const failure = `could not keep what was learnt from ${uri} in ${this.host.info?.dir}: ${(error as Error).message}`;
        if (failure !== this.learnFailure) this.log(`${failure}; trying again every ${LEARN_RETRY_MS / 1000} s`);
        this.learnFailure = failure;
        break;
      }
      this.learnFailure = '';
      this.unlearnt.delete(uri);
      reload ||= outcome.reload;
      for (const notice of outcome.notices) this.warnAboutLearning(notice);
      if ('skipped' in outcome) this.warnAboutLearning(`Not learning from ${uri}: ${outcome.skipped}`);
      else if (outcome.learnt > 0) this.log(`Learnt ${outcome.learnt.toLocaleString('en-US')} characters from ${uri}`);
    }
    if (this.unlearnt.size > 0 && this.phase !== 'shut down')
      this.learnRetryTimer = setTimeout(() => this.learnSaved(), LEARN_RETRY_MS);
    // The log was rewritten (a compaction, a retrain): the n-gram is rebuilt from it.
    if (reload) this.host.reload();
  }

  /** Logged every time, and shown to the user the first time it is said. */
  private warnAboutLearning(message: string): void {
    this.log(message);
    const kind = message.replace(/\d[\d,]*/g, 'N').replace(/file:\S+/g, 'URI');
    if (this.learnWarningsShown.has(kind)) return;
    this.learnWarningsShown.add(kind);
    void this.connection.sendNotification(ShowMessageNotification.type, {
      type: MessageType.Warning,
      message: `Char Complete: ${message}`,
    });
  }

  private inLearnableFolder(uri: string): boolean {
    return this.learnableFolders.some((folder) => uri.startsWith(folder));
  }

  /**
   * Whether what typing `uri` teaches the mixing may carry on to other documents, and so be kept beside the model: as
   * for learning from its saves, so that nothing kept on disk was learnt from a document the user keeps out.
   */
  private carriesMixing(uri: string): boolean {
    return this.settings.learnFromSaves && this.inLearnableFolder(uri) && this.exclusionRule(uri) === undefined;
  }

  /**
   * The rule that keeps a saved note out of the model (a default key or credential file, charComplete.exclude, the
   * editor's files.exclude, a .gitignore in its workspace folder), or undefined.
   */
  private exclusionRule(uri: string): string | undefined {
    const folder = this.learnableFolders.filter((f) => uri.startsWith(f)).sort((a, b) => b.length - a.length)[0];
    let root: string;
    let relative: string;
    try {
      root = folder.startsWith('file:') ? fileURLToPath(folder) : decodeURIComponent(new URL(folder).pathname);
      relative = decodeURIComponent(uri.slice(folder.length));
    } catch {
      return 'its path, which cannot be decoded';
    }
    const globs = [...this.settings.exclude, ...this.editorExcludes];
    // Only a folder on this machine has .gitignore files to read.
    return new Exclusions(root, { globs, readGitignore: folder.startsWith('file:') ? undefined : null }).pathRule(
      relative,
    );
  }

  reloadModel(): LoadedModel | null {
    this.checkRequest({});
    this.host.reload();
    return this.host.info ?? null;
  }

  listModels(): ModelList {
    this.checkRequest({});
    return listModels(this.modelDir(this.settings));
  }

  deleteModel(params: { name?: unknown }): { dir: string } {
    this.checkRequest({});
    try {
      return { dir: deleteModel(String(params?.name ?? ''), this.modelDir(this.settings)) };
    } catch (error) {
      throw new ResponseError(ErrorCodes.InvalidParams, (error as Error).message);
    }
  }

  /** Forgets what was learnt from saves of one file (or of every note) and serves the n-gram rebuilt without it. */
  forget(params: { uri?: unknown } | 'all'): ForgetResult {
    this.checkRequest({});
    const dir = this.modelDir(this.settings);
    let uri: string | undefined;
    if (params !== 'all') {
      if (typeof params?.uri !== 'string')
        throw new ResponseError(ErrorCodes.InvalidParams, 'forgetFile needs the uri of a file');
      uri = params.uri;
    }
    if (!this.host.model) throw new ResponseError(ErrorCodes.InvalidRequest, `no model is loaded from ${dir}`);
    // A save not yet written must not bring the note back.
    if (uri === undefined) this.unlearnt.clear();
    else this.unlearnt.delete(uri);
    let forgotten;
    try {
      forgotten = forgetLearnedNotes(dir, uri === undefined ? 'all' : new Set([noteKeyOfUri(uri)]));
    } catch (error) {
      throw new ResponseError(ErrorCodes.InternalError, `could not forget in ${dir}: ${(error as Error).message}`);
    }
    this.host.reload();
    this.log(
      `Forgot ${forgotten.chars.toLocaleString('en-US')} learnt characters of ${uri ?? 'every saved note'} in ${dir}`,
    );
    const text = uri === undefined ? undefined : (this.documents.get(uri)?.getText() ?? fileText(uri));
    const model = this.host.model;
    const trainedShare =
      text === undefined || !model?.hasNotes
        ? uri === undefined
          ? null
          : 0
        : model.mixture.notes.countedShare(model.saved.vocabulary.encode(text));
    return { model: dir, ...forgotten, trainedShare };
  }

  /** A request or a document opened, edited, saved or closed: the idle period starts again. */
  activity(): void {
    clearTimeout(this.idleTimer);
    clearTimeout(this.idleLearnTimer);
    if (this.phase !== 'running') return;
    this.idleTimer = setTimeout(() => void this.idleExit(), IDLE_EXIT_MS);
    this.idleLearnTimer = setTimeout(() => void this.learnWhileIdle(), IDLE_LEARN_MS);
  }

  /** One piece of learning at a time, checking between pieces that the user is still away. */
  private async learnWhileIdle(): Promise<void> {
    const timer = this.idleLearnTimer;
    this.host.keepCarriedMixing();
    for (const [uri, entry] of this.sessions) {
      // A session let go (or a model unloaded) while this waited is not learnt for.
      while (entry.session.learningPending && this.sessions.get(uri) === entry) {
        if (this.phase !== 'running' || this.idleLearnTimer !== timer) return;
        if (!this.adaptedSessions.has(entry.session)) {
          this.adaptedSessions.add(entry.session);
          this.log(`Adapting the LSTM to ${uri} while you pause`);
        }
        try {
          await entry.session.learnWhileIdle();
        } catch (error) {
          this.log(`could not adapt the model to ${uri}: ${(error as Error).message}`);
          return;
        }
      }
    }
  }

  /** Says why it goes, so the client neither restarts it nor reports a crash, then ends as after shutdown. */
  private async idleExit(): Promise<void> {
    if (this.phase !== 'running') return;
    this.log(
      `Idle for ${formatPeriod(IDLE_EXIT_MS)}: exiting; the editor starts the server again when a note needs it`,
    );
    await this.connection.sendNotification(IdleExitNotification, { idleMs: IDLE_EXIT_MS });
    this.shutdown();
    this.onIdleExit();
  }

  shutdown(): void {
    this.checkRequest({});
    clearTimeout(this.idleTimer);
    clearTimeout(this.idleLearnTimer);
    clearTimeout(this.latencyStatusTimer);
    this.phase = 'shut down';
    this.sessions.clear();
    // A note whose write failed gets a last try before the server goes.
    this.learnSaved();
    clearTimeout(this.learnRetryTimer);
    this.host.dispose();
  }

  private applySettings(raw: unknown): void {
    const { settings, warnings } = parseSettings(raw);
    for (const warning of warnings) {
      this.log(warning);
      void this.connection.sendNotification(ShowMessageNotification.type, {
        type: MessageType.Warning,
        message: `Char Complete: ${warning}`,
      });
    }
    if (settings.backend !== this.settings.backend && this.backendName !== 'not started') {
      this.log(`charComplete.backend changed to ${settings.backend}; it applies when the server restarts`);
    }
    this.settings = settings;
    for (const [uri, { session }] of this.sessions) {
      session.forgetShown();
      session.carriesMixing = this.carriesMixing(uri);
    }
    const c = settings.completion;
    this.log(
      `Settings: mode=${c.mode} beamWidth=${c.beamWidth} temperature=${c.temperature} maxChars=${c.maxChars} stopAt=${c.stopAt} minConfidence=${c.minConfidence} seed=${c.seed}`,
    );
    this.host.use(this.modelDir(settings));
  }

  private serves(document: TextDocument): boolean {
    return this.settings.languages?.includes(document.languageId) ?? true;
  }

  /** A relative modelPath means the workspace's folder, as it does in the workspace's settings, not wherever the server was started. */
  private modelDir({ modelPath, model }: Settings): string {
    // An explicit modelPath wins over a model's name, so a setup that names a directory keeps working.
    if (!modelPath && model) return modelDirForName(model);
    return resolveModelDir(modelPath, this.baseDir);
  }

  private async pullConfiguration(): Promise<void> {
    try {
      const [section, filesExclude] = await this.connection.workspace.getConfiguration([
        { section: 'charComplete' },
        { section: 'files.exclude' },
      ]);
      this.editorExcludes = filesExcludeGlobs(filesExclude);
      this.applySettings(section ?? {});
    } catch (error) {
      this.log(`could not read the charComplete settings: ${(error as Error).message}`);
    }
  }

  /**
   * The host has logged why there is no model; the client, told by the status, says so once per window with buttons to
   * train or open the walkthrough, and only where a note is open. A model that is there but cannot be used is a
   * different matter, which no button fixes: that is shown once per problem.
   */
  private modelChanged(damagedModelError?: string): void {
    this.sessions.clear();
    if (damagedModelError && !this.damagedModelErrorsShown.has(damagedModelError)) {
      this.damagedModelErrorsShown.add(damagedModelError);
      void this.connection.sendNotification(ShowMessageNotification.type, {
        type: MessageType.Warning,
        message: `Char Complete cannot use its model: ${damagedModelError}`,
      });
    }
    this.sendStatus();
  }

  private sendStatus(): void {
    if (!this.clientReady) return;
    void this.connection.sendNotification(StatusNotification, {
      model: this.host.info?.dir ?? null,
      description: this.host.info?.description ?? null,
      backend: this.backendName,
      gpu: this.backendOnGpu,
      latencyMs: this.lastLatencyMs ?? null,
      lstmTraining: this.host.model !== undefined && this.host.lstmTraining,
    });
  }

  /**
   * The completion at a position, or undefined. Waits one turn of the event loop first so that a
   * newer request or a $/cancelRequest that is already queued wins.
   */
  private async completionAt(
    kind: RequestKind,
    uri: string,
    position: Position,
    token: CancellationToken,
    alternativesWanted = false,
  ): Promise<{ completion: Completion; document: TextDocument; offset: number } | undefined> {
    const id = ++this.requestCounter;
    const key = `${kind} ${uri}`;
    this.newestRequest.set(key, id);
    // Turns rather than a timer, which would wait a millisecond or more; each turn also reads the input waiting.
    for (let turn = 0; turn < TURNS_BEFORE_COMPLETING; turn++) await nextTurn();
    const document = this.documents.get(uri);
    const model = this.host.model;
    const cancelled = () => token.isCancellationRequested || this.newestRequest.get(key) !== id;
    if (!document || !model || cancelled() || !this.serves(document)) return undefined;
    const started = performance.now();
    const text = document.getText();
    // offsetAt clamps positions outside the document; one between the halves of a surrogate pair
    // (a client counting code points, or a stale position) is served as the character's start, so
    // that no edit splits the character.
    const offset = characterStart(text, document.offsetAt(position));
    let entry = this.sessions.get(uri);
    const learning = this.settings.learnWhileTyping;
    if (!entry || entry.generation !== this.host.generation || entry.learning !== learning) {
      entry = { generation: this.host.generation, learning, session: new CompletionSession(model, learning) };
      entry.session.carriesMixing = this.carriesMixing(uri);
    }
    // Most recently used last, so that the least recently used is the one let go.
    this.sessions.delete(uri);
    this.sessions.set(uri, entry);
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const completion = await entry.session.suggest(
      text,
      offset,
      this.settings.completion,
      cancelled,
      alternativesWanted,
    );
    if (cancelled()) return undefined;
    this.lastLatencyMs = performance.now() - started;
    // shutdown() clears a timer still waiting.
    this.latencyStatusTimer ??= setTimeout(() => {
      this.latencyStatusTimer = undefined;
      this.sendStatus();
    }, LATENCY_STATUS_MS);
    return completion && { completion, document, offset };
  }
}

/**
 * The size of the model the server will load, for timing the backends before it is loaded; the
 * common 2×256 when there is no model yet.
 */
function modelSizeForProbe(dir: string): NetworkConfig {
  try {
    return readModelConfig(dir);
  } catch {
    return { vocabSize: 96, ...DEFAULT_NETWORK };
  }
}

/** A saved note's key in the learnt notes: by its path, as the trainer knows it, when it is a file. */
function noteKeyOfUri(uri: string): string {
  if (uri.startsWith('file:')) {
    try {
      return noteKey(fileURLToPath(uri));
    } catch {
      // Not a usable file URI: known by the URI itself.
    }
  }
  return noteKey(uri);
}

/** A file's text by its URI, or undefined when it is not a readable local file. */
function fileText(uri: string): string | undefined {
  try {
    return readFileSync(fileURLToPath(uri), 'utf8');
  } catch {
    return undefined;
  }
}

/** The first workspace folder (or the root) as a path, when it is on the local filesystem. */
function workspaceDir(params: InitializeParams): string | undefined {
  const uri = params.workspaceFolders?.[0]?.uri ?? params.rootUri ?? undefined;
  if (typeof uri === 'string' && uri.startsWith('file:')) {
    try {
      return fileURLToPath(uri);
    } catch {
      // Not a usable file URI: fall back to rootPath or none.
    }
  }
  return typeof params.rootPath === 'string' && isAbsolute(params.rootPath) ? params.rootPath : undefined;
}

function formatPeriod(ms: number): string {
  return ms >= 60_000 ? `${+(ms / 60_000).toFixed(1)} minutes` : `${+(ms / 1000).toFixed(1)} s`;
}

function truncatedJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
