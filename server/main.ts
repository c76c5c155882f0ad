// The language server's entry point: binds every LSP handler to one server object. Start it with `node dist/server.js
// --stdio` (or --node-ipc, as the VS Code client does).
import { createConnection, ProposedFeatures, TextDocuments } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import {
  DeleteModelRequest,
  ForgetFileRequest,
  ForgetLearnedRequest,
  ListModelsRequest,
  ReloadModelRequest,
} from '../protocol/messages';
import { format } from 'node:util';
import { FrameFilter } from './frames';
import { CharCompleteServer } from './server';

// One wasm thread unless asked otherwise: a keystroke's matmuls are too small to share, and a
// second thread competing with the editor for the cores makes latency worse, not better.
process.env.CHAR_COMPLETE_WASM_THREADS ??= '1';

// Over stdio, input goes through a filter that drops malformed frames instead of going deaf.
const stdio = process.argv.includes('--stdio');
const connection = stdio
  ? createConnection(
      ProposedFeatures.all,
      process.stdin.pipe(new FrameFilter((problem) => process.stderr.write(`${problem}\n`))),
      process.stdout,
    )
  : createConnection(ProposedFeatures.all);
if (stdio) {
  // What createConnection does itself when it opens stdio: stdout carries the protocol, so nothing
  // a library logs may be written there.
  for (const level of ['log', 'info', 'debug'] as const)
    console[level] = (...args: unknown[]) => void process.stderr.write(`${format(...args)}\n`);
}
const documents = new TextDocuments(TextDocument);
const server = new CharCompleteServer(connection, documents);

connection.onInitialize((params) => server.initialize(params));
connection.onInitialized(() => server.initialized());
connection.onDidChangeConfiguration((change) => server.didChangeConfiguration(change));
documents.onDidClose((event) => server.didClose(event.document.uri));
// Any document event restarts the idle period, as requests do.
for (const event of [documents.onDidOpen, documents.onDidChangeContent, documents.onDidSave, documents.onDidClose])
  event(() => server.activity());
documents.onDidSave((event) => server.didSave(event.document.uri));
connection.languages.inlineCompletion.on((params, token) => server.inlineCompletion(params, token));
connection.onCompletion((params, token) => server.completion(params, token));
connection.onRequest(ReloadModelRequest, () => server.reloadModel());
connection.onRequest(ListModelsRequest, () => server.listModels());
connection.onRequest(DeleteModelRequest, (params) => server.deleteModel(params));
connection.onRequest(ForgetFileRequest, (params) => server.forget(params));
connection.onRequest(ForgetLearnedRequest, () => server.forget('all'));
connection.onShutdown(() => server.shutdown());
// Live wasm worker threads would keep the process alive after `exit`. An exit without shutdown
// first is an abnormal end, and the protocol says its code is 1.
connection.onExit(() => process.exit(server.shutDown ? 0 : 1));
// A moment for the goodbye notification to leave before the pipe closes.
server.onIdleExit = () => void setTimeout(() => process.exit(0), 100);
process.on('uncaughtException', (error) => server.log(`unexpected error: ${error.stack ?? error}`));

documents.listen(connection);
connection.listen();
