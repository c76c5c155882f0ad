// The language server: documents in, completions out. Start it with `node dist/server.js --stdio`
// (or --node-ipc, as the VS Code client does).
import {
  CompletionItem, CompletionItemKind, createConnection, DidChangeConfigurationNotification, InlineCompletionItem,
  Position, ProposedFeatures, TextDocuments, TextDocumentSyncKind, CancellationToken, MessageType, ShowMessageNotification,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { appendFileSync } from 'node:fs';
import { selectBackend } from '../backends/select';
import { complete, Completion, completionProbe, DocumentStates, WordCache } from '../completion/inference';
import { readModelConfig } from '../model/format';
import { NetworkConfig } from '../model/architecture';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { defaultModelDir } from '../model/paths';
import { ModelHost } from './model-host';
import { parseSettings, Settings, SETTINGS_DEFAULTS } from './settings';

// One wasm thread unless asked otherwise: a keystroke's matmuls are too small to share, and a
// second thread competing with the editor for the cores makes latency worse, not better.
process.env.CHAR_COMPLETE_WASM_THREADS ??= '1';

const connection = createConnection(ProposedFeatures.all);
const documents = new TextDocuments(TextDocument);
let settings: Settings = SETTINGS_DEFAULTS;
let clientHasConfiguration = false;
let toldToTrain = false;
let lastLatencyMs: number | undefined;
let backendName = 'not started';
let backendOnGpu = false;

// CHAR_COMPLETE_LOG_FILE also appends the log to a file, for debugging and end-to-end tests.
const logFile = process.env.CHAR_COMPLETE_LOG_FILE;
const log = (message: string) => {
  connection.console.log(message);
  if (logFile) {
    try {
      appendFileSync(logFile, `${new Date().toISOString()} ${message}\n`);
    } catch {
      // A log file that cannot be written must not stop completions.
    }
  }
};
const host = new ModelHost(log, (error) => {
  documentStates.clear();
  shown.clear();
  if (error && !host.predictor && !toldToTrain) {
    toldToTrain = true;
    void connection.sendNotification(ShowMessageNotification.type, {
      type: MessageType.Info,
      message: `Char Complete has no model yet (${error}). Train one on your notes with: npm run train -- ~/notes`,
    });
  }
  sendStatus();
});

/** Per-document model states, dropped with the document or when the model changes. */
const documentStates = new Map<string, { generation: number; states: DocumentStates; words: WordCache }>();
/** The last suggestion per document, kept while the user types along it. */
const shown = new Map<string, { offset: number; before: string; completion: Completion }>();
/** The newest request per document; older ones return nothing when they get their turn. */
const newestRequest = new Map<string, number>();
let requestCounter = 0;

function applySettings(raw: unknown): void {
  const { settings: parsed, warnings } = parseSettings(raw);
  for (const warning of warnings) {
    log(warning);
    void connection.sendNotification(ShowMessageNotification.type, { type: MessageType.Warning, message: `Char Complete: ${warning}` });
  }
  if (parsed.backend !== settings.backend && backendName !== 'not started') {
    log(`charComplete.backend changed to ${parsed.backend}; it applies when the server restarts`);
  }
  settings = parsed;
  shown.clear();
  const c = settings.completion;
  log(`Settings: mode=${c.mode} beamWidth=${c.beamWidth} temperature=${c.temperature} maxChars=${c.maxChars} stopAt=${c.stopAt} minConfidence=${c.minConfidence} seed=${c.seed}`);
  host.use(settings.modelPath || defaultModelDir());
}

function sendStatus(): void {
  void connection.sendNotification('charComplete/status', {
    model: host.info?.dir ?? null,
    description: host.info?.description ?? null,
    backend: backendName,
    gpu: backendOnGpu,
    latencyMs: lastLatencyMs ?? null,
  });
}

connection.onInitialize(async (params) => {
  clientHasConfiguration = params.capabilities.workspace?.configuration === true;
  const initial = parseSettings((params.initializationOptions as Record<string, unknown> | undefined) ?? {});
  const probe = completionProbe(modelSizeForProbe(initial.settings.modelPath || defaultModelDir()), initial.settings.completion.beamWidth);
  const backend = await selectBackend(initial.settings.backend, probe).catch(async (error: Error) => {
    log(`${error.message}; falling back to automatic selection`);
    return selectBackend('auto', probe);
  });
  backendName = backend.name;
  backendOnGpu = backend.gpu;
  log(`Backend: ${backend.name} (${backend.reason})`);
  applySettings(params.initializationOptions ?? {});
  return {
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      inlineCompletionProvider: true,
      completionProvider: { resolveProvider: false },
    },
    serverInfo: { name: 'char-complete' },
  };
});

/**
 * The size of the model the server will load, for timing the backends before it is loaded; the
 * common 2×256 when there is no model yet.
 */
function modelSizeForProbe(dir: string): NetworkConfig {
  try {
    return readModelConfig(dir);
  } catch {
    return { vocabSize: 96, embed: TRAIN_DEFAULTS.embed, hidden: TRAIN_DEFAULTS.hidden, layers: TRAIN_DEFAULTS.layers };
  }
}

connection.onInitialized(async () => {
  if (!clientHasConfiguration) return;
  void connection.client.register(DidChangeConfigurationNotification.type, { section: 'charComplete' });
  await pullConfiguration();
});

async function pullConfiguration(): Promise<void> {
  try {
    const [section] = await connection.workspace.getConfiguration([{ section: 'charComplete' }]);
    applySettings(section ?? {});
  } catch (error) {
    log(`could not read the charComplete settings: ${(error as Error).message}`);
  }
}

connection.onDidChangeConfiguration(async (change) => {
  if (clientHasConfiguration) await pullConfiguration();
  else applySettings((change.settings as Record<string, unknown> | null)?.charComplete ?? {});
});

async function computeCompletion(entry: { states: DocumentStates; words: WordCache }, text: string, offset: number, cancelled: () => boolean, passedOver?: string): Promise<Completion | undefined> {
  const { states, words } = entry;
  const snapshot = await states.at(text, offset, cancelled);
  const partial = words.update(text, offset);
  const completion = snapshot && (await complete(host.predictor!, snapshot, settings.completion, cancelled, { words, partial, passedOver }));
  if (completion) states.expect(offset, completion);
  return completion;
}

/**
 * While the user types along the shown suggestion, the rest of it stays without model work. One
 * typed character goes through passedOver instead; this keeps the suggestion when several arrive
 * at once, as with an editor's accept-next-word, or when requests were skipped while typing fast.
 */
function typedAlong(uri: string, text: string, offset: number): Completion | undefined {
  const last = shown.get(uri);
  if (!last) return undefined;
  const typed = offset - last.offset;
  if (typed <= 0 || typed >= last.completion.text.length) return undefined;
  if (text.slice(last.offset, offset) !== last.completion.text.slice(0, typed)) return undefined;
  if (text.slice(Math.max(0, last.offset - 64), last.offset) !== last.before) return undefined;
  return { text: last.completion.text.slice(typed), confidence: last.completion.confidence };
}

/** The rest of the shown suggestion when the user has just typed its first character instead of accepting it. */
function passedOver(uri: string, text: string, offset: number): string | undefined {
  const last = shown.get(uri);
  if (!last || offset !== last.offset + 1 || last.completion.text.length < 2) return undefined;
  if (text.slice(last.offset, offset) !== last.completion.text.slice(0, 1)) return undefined;
  if (text.slice(Math.max(0, last.offset - 64), last.offset) !== last.before) return undefined;
  return last.completion.text.slice(1);
}

documents.onDidClose((event) => {
  documentStates.delete(event.document.uri);
  newestRequest.delete(event.document.uri);
  shown.delete(event.document.uri);
});

/**
 * The completion at a position, or undefined. Waits one turn of the event loop first so that a
 * newer request or a $/cancelRequest that is already queued wins.
 */
async function completionAt(uri: string, position: Position, token: CancellationToken): Promise<{ completion: Completion; document: TextDocument; offset: number } | undefined> {
  const id = ++requestCounter;
  newestRequest.set(uri, id);
  // A timer rather than setImmediate: the event loop reads pending input before timers fire
  // again, so a newer request or a $/cancelRequest sent right behind this one is seen first.
  await new Promise((resolve) => setTimeout(resolve, 1));
  const document = documents.get(uri);
  const predictor = host.predictor;
  const cancelled = () => token.isCancellationRequested || newestRequest.get(uri) !== id;
  if (!document || !predictor || !settings || cancelled()) return undefined;
  const started = performance.now();
  const offset = document.offsetAt(position); // clamps positions outside the document
  const text = document.getText();
  let entry = documentStates.get(uri);
  if (!entry || entry.generation !== host.generation) {
    entry = { generation: host.generation, states: new DocumentStates(predictor), words: new WordCache() };
    documentStates.set(uri, entry);
  }
  // Typing the first character of a suggestion instead of accepting it counts against it, so the
  // search runs again with it demoted; otherwise a suggestion being typed along stays as it is.
  const passed = passedOver(uri, text, offset);
  const completion = (passed === undefined ? typedAlong(uri, text, offset) : undefined) ?? (await computeCompletion(entry, text, offset, cancelled, passed));
  // A $/cancelRequest or a newer request may have arrived during the last model step: look once
  // more, and do not answer with a stale suggestion.
  await new Promise((resolve) => setImmediate(resolve));
  if (cancelled()) return undefined;
  if (completion) shown.set(uri, { offset, before: text.slice(Math.max(0, offset - 64), offset), completion });
  else shown.delete(uri);
  lastLatencyMs = performance.now() - started;
  sendStatus();
  if (!completion) return undefined;
  // Nothing to offer when the text after the cursor already says it.
  const lineEnd = text.indexOf('\n', offset);
  const after = text.slice(offset, lineEnd < 0 ? text.length : lineEnd);
  if (after.startsWith(completion.text)) return undefined;
  return { completion, document, offset };
}

connection.languages.inlineCompletion.on(async (params, token) => {
  try {
    const found = await completionAt(params.textDocument.uri, params.position, token);
    if (!found) return [];
    const position = found.document.positionAt(found.offset);
    return [InlineCompletionItem.create(found.completion.text, undefined, { start: position, end: position })];
  } catch (error) {
    log(`inline completion failed: ${(error as Error).stack ?? error}`);
    return [];
  }
});

const WORD_BEFORE = /[\p{L}\p{N}_'’-]*$/u;

connection.onCompletion(async (params, token) => {
  try {
    const found = await completionAt(params.textDocument.uri, params.position, token);
    if (!found) return [];
    const { document, offset, completion } = found;
    // The item replaces the word being typed, so clients filter it against what was typed.
    const lineStart = document.offsetAt({ line: document.positionAt(offset).line, character: 0 });
    const word = WORD_BEFORE.exec(document.getText().slice(lineStart, offset))![0];
    const start = document.positionAt(offset - word.length);
    const item: CompletionItem = {
      // The separator a completion may end with is inserted but not shown in the list.
      label: (word + completion.text).trimEnd(),
      kind: CompletionItemKind.Text,
      detail: `char-complete, confidence ${(completion.confidence * 100).toFixed(0)}%`,
      textEdit: { range: { start, end: document.positionAt(offset) }, newText: word + completion.text },
      sortText: '0',
    };
    return [item];
  } catch (error) {
    log(`completion failed: ${(error as Error).stack ?? error}`);
    return [];
  }
});

connection.onRequest('charComplete/reloadModel', () => {
  host.reload();
  return host.info ?? null;
});

connection.onShutdown(() => host.dispose());
// Live wasm worker threads would keep the process alive after `exit`.
connection.onExit(() => process.exit(0));
process.on('uncaughtException', (error) => log(`unexpected error: ${error.stack ?? error}`));

documents.listen(connection);
connection.listen();
