// npm run test:robust: drives the real language server over stdio with malformed and extreme input
// (bad frames, out-of-range positions, a 30,000-character line, 1,000 documents, 10,000 keystrokes)
// and fails on a crash, a hang or memory that keeps growing. Prints the crash count, the slowest
// request and the server's RSS at start and end.
// ROBUST_DOCUMENTS=N opens N documents instead of 1,000, to see that memory levels off.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LspSession } from '../tools/lsp-driver';
import { randomModel } from './support/random-model';

/** Growth of the server's RSS from after warm-up to the end beyond which memory counts as unbounded. */
const MAX_RSS_GROWTH = 150 * 1024 * 1024;
/** A request unanswered this long counts as a hang. */
const HANG_MS = 10_000;
const KEYSTROKES = 10_000;
const DOCUMENTS = Number(process.env.ROBUST_DOCUMENTS ?? 1_000);
const LONG_LINE = 30_000;

const root = mkdtempSync(join(tmpdir(), 'char-complete-robust-'));
const modelDir = join(root, 'model');
// The shipped architecture's depth at half its width: the server's work per request is what is
// being exercised, and untrained weights exercise it as well as trained ones.
randomModel(1, { embed: 32, hidden: 128, layers: 2 }, modelDir);
const env = { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' };

let crashes = 0;
let hangs = 0;
let internalErrors = 0;
let requests = 0;
let slowest = { ms: 0, what: '' };
let session: LspSession;

function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MB`;
}

async function startServer(): Promise<void> {
  session = new LspSession({ initializationOptions: { modelPath: modelDir }, env });
  session.process.once('exit', (code, signal) => {
    if (!stopping) {
      crashes++;
      console.log(`CRASH: the server exited (${signal ?? `code ${code}`}); stderr tail: ${session.stderr.slice(-400)}`);
    }
  });
  await session.initialize();
}
let stopping = false;

/** Sends a request, timing it; an answer that is an error is returned, not thrown. */
async function request(what: string, method: string, params: unknown): Promise<unknown> {
  requests++;
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), HANG_MS)));
  const answer = await Promise.race([
    session.connection.sendRequest(method, params).catch((error: { code?: number }) => error),
    hang,
  ]);
  clearTimeout(timer);
  const ms = performance.now() - t0;
  if (ms > slowest.ms) slowest = { ms, what };
  if (answer === 'hang') {
    hangs++;
    console.log(`HANG: ${what} unanswered after ${HANG_MS} ms`);
  } else if ((answer as { code?: number })?.code === -32603) {
    internalErrors++;
    console.log(`INTERNAL ERROR: ${what}: ${JSON.stringify(answer)}`);
  }
  return answer;
}

const inline = (what: string, uri: string, line: number, character: number) =>
  request(what, 'textDocument/inlineCompletion', {
    textDocument: { uri },
    position: { line, character },
    context: { triggerKind: 2 },
  });

/** Checks the server still answers; restarts it after a crash so the remaining phases still run. */
async function alive(after: string): Promise<void> {
  if (session.process.exitCode !== null || session.process.signalCode !== null) {
    console.log(`after ${after}: restarting the crashed server`);
    await startServer();
  }
  await session.open('file:///robust/alive.md', 'the quick brown');
  const before = hangs;
  await inline(`liveness after ${after}`, 'file:///robust/alive.md', 0, 15);
  if (hangs > before) {
    // Counted as a hang already; a fresh server lets the remaining phases be measured.
    console.log(`after ${after}: restarting the unresponsive server`);
    session.process.removeAllListeners('exit');
    session.process.kill('SIGKILL');
    await startServer();
  }
}

function frame(body: string): string {
  return `Content-Length: ${Buffer.byteLength(body, 'utf8')}\r\n\r\n${body}`;
}

async function malformed(): Promise<void> {
  const stdin = session.process.stdin!;
  const frames: Array<[string, string]> = [
    ['a body that is not JSON', frame('{"jsonrpc": "2.0", "id": 9001, "method": ')],
    ['a JSON array', frame('[1, 2, 3]')],
    ['JSON that is not a message', frame('{"hello": "world"}')],
    ['a request for an unknown method', frame('{"jsonrpc":"2.0","id":9002,"method":"no/such/method","params":{}}')],
    ['inline completion without params', frame('{"jsonrpc":"2.0","id":9003,"method":"textDocument/inlineCompletion"}')],
    [
      'inline completion with params 5',
      frame('{"jsonrpc":"2.0","id":9004,"method":"textDocument/inlineCompletion","params":5}'),
    ],
    [
      'a didOpen whose text is a number',
      frame(
        '{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///robust/n.md","languageId":"markdown","version":1,"text":5}}}',
      ),
    ],
    [
      'a didChange for a document never opened',
      frame(
        '{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///robust/none.md","version":2},"contentChanges":[{"text":"x"}]}}',
      ),
    ],
    [
      'a didChange with a range far outside the document',
      frame(
        '{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///robust/alive.md","version":99},"contentChanges":[{"range":{"start":{"line":1000000,"character":5},"end":{"line":-3,"character":1.5}},"text":"x"}]}}',
      ),
    ],
    ['a header without Content-Length', 'Foo: bar\r\n\r\n{}'],
    ['a Content-Length that is not a number', 'Content-Length: many\r\n\r\n{}'],
    ['bytes that are no header at all', 'GET / HTTP/1.1 and then some'],
    ['a Content-Length of a hundred terabytes', 'Content-Length: 99999999999999\r\n\r\n'],
    ['a body followed by stray spaces', frame('{"jsonrpc":"2.0","method":"$/x"}') + '        '],
  ];
  for (const [what, bytes] of frames) {
    stdin.write(bytes);
    await alive(what);
  }
}

async function positions(): Promise<void> {
  const uri = 'file:///robust/positions.md';
  await session.open(uri, 'one line\nand another\n');
  const cases: Array<[number, number]> = [
    [1e6, 1e6],
    [0, 1e6],
    [1e6, 0],
    [-1, 0],
    [0, -1],
    [0, 0.5],
    [2 ** 31, 0],
    [Number.MAX_SAFE_INTEGER, 3],
  ];
  for (const [line, character] of cases) await inline(`position ${line}:${character}`, uri, line, character);
  await request('completion far outside', 'textDocument/completion', {
    textDocument: { uri },
    position: { line: 5e5, character: 7e5 },
  });
  await alive('out-of-range positions');
}

async function longLine(): Promise<void> {
  const uri = 'file:///robust/long-line.md';
  const line = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(LONG_LINE / 27)).slice(0, LONG_LINE);
  await session.open(uri, line);
  await inline('30,000-character line: end', uri, 0, LONG_LINE);
  await inline('30,000-character line: middle', uri, 0, LONG_LINE >> 1);
  await inline('30,000-character line: start', uri, 0, 0);
  await request('30,000-character line: completion list at the end', 'textDocument/completion', {
    textDocument: { uri },
    position: { line: 0, character: LONG_LINE },
  });
  let character = LONG_LINE;
  for (const c of 'consectetur adipiscing elit ') {
    await session.change(uri, { start: { line: 0, character }, end: { line: 0, character } }, c);
    character++;
    await inline('30,000-character line: typing at the end', uri, 0, character);
  }
  await session.close(uri);
  await alive('a 30,000-character line');
}

async function manyDocuments(): Promise<void> {
  for (let i = 0; i < DOCUMENTS; i++) {
    const uri = `file:///robust/many/${i}.md`;
    const text = `note ${i}: the quick brown fox jumps over the lazy dog ${i}\n`.repeat(1 + (i % 20));
    await session.open(uri, text);
    await inline(`document ${i} of ${DOCUMENTS}`, uri, 1 + (i % 20), 0);
    await session.close(uri);
  }
  await alive(`${DOCUMENTS} documents opened and closed`);
}

async function keystrokes(): Promise<void> {
  const uri = 'file:///robust/typing.md';
  await session.open(uri, '');
  const text =
    'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.\n';
  let line = 0;
  let character = 0;
  for (let i = 0; i < KEYSTROKES; i++) {
    const c = text[i % text.length];
    await session.change(uri, { start: { line, character }, end: { line, character } }, c);
    if (c === '\n') {
      line++;
      character = 0;
    } else {
      character++;
    }
    // Every keystroke asks, as an editor does; every 500th also deletes a word, as people do.
    await inline(`keystroke ${i + 1}`, uri, line, character);
    if (i % 500 === 499 && character >= 5) {
      await session.change(uri, { start: { line, character: character - 5 }, end: { line, character } }, '');
      character -= 5;
    }
  }
  await session.close(uri);
  await alive(`${KEYSTROKES} keystrokes`);
}

async function main(): Promise<number> {
  const started = performance.now();
  await startServer();
  await alive('start');
  const rssStart = session.rss();
  const phases: Array<[string, () => Promise<void>]> = [
    ['malformed frames', malformed],
    ['out-of-range positions', positions],
    ['a 30,000-character line', longLine],
    [`${DOCUMENTS} documents opened and closed`, manyDocuments],
    [`${KEYSTROKES} keystrokes`, keystrokes],
  ];
  let rssPeak = rssStart;
  for (const [name, phase] of phases) {
    const t0 = performance.now();
    await phase();
    const rss = session.rss();
    rssPeak = Math.max(rssPeak, rss);
    console.log(`${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s, server RSS ${mb(rss)}`);
  }
  const rssEnd = session.rss();
  stopping = true;
  const code = await session.shutdown();
  const growth = rssEnd - rssStart;
  console.log(
    `crashes: ${crashes}; hangs: ${hangs}; internal errors: ${internalErrors}; exit code after shutdown: ${code}`,
  );
  console.log(`requests: ${requests}; slowest: ${slowest.ms.toFixed(0)} ms (${slowest.what})`);
  console.log(
    `server RSS: ${mb(rssStart)} at start, ${mb(rssEnd)} at end (peak ${mb(rssPeak)}; growth limit ${mb(MAX_RSS_GROWTH)})`,
  );
  console.log(`took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const failures = [
    crashes > 0 && `${crashes} crash(es)`,
    hangs > 0 && `${hangs} hang(s)`,
    internalErrors > 0 && `${internalErrors} internal error(s)`,
    growth > MAX_RSS_GROWTH && `RSS grew by ${mb(growth)}`,
    code !== 0 && `exit code ${code} after shutdown`,
  ].filter(Boolean);
  console.log(failures.length === 0 ? 'PASS' : `FAIL: ${failures.join(', ')}`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    rmSync(root, { recursive: true, force: true });
    process.exit(code);
  },
  (error) => {
    console.error(error);
    if (session?.process.exitCode === null) session.process.kill('SIGKILL');
    process.exit(1);
  },
);
