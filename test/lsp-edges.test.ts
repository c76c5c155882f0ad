// The language server follows the protocol at its edges (order of messages, bad positions, relative paths) and stays
// fast on huge lines and documents.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LspSession } from '../tools/lsp-driver';
import { randomModel } from './support/random-model';

const root = mkdtempSync(join(tmpdir(), 'char-complete-lsp-'));
const modelDir = join(root, 'model');
randomModel(1, { embed: 8, hidden: 32, layers: 1 }, modelDir);
const ENV = { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' };
const sessions: LspSession[] = [];
after(() => {
  for (const s of sessions) if (s.process.exitCode === null) s.process.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

function start(settings: Record<string, unknown> = { modelPath: modelDir }): LspSession {
  const session = new LspSession({ initializationOptions: settings, env: ENV });
  sessions.push(session);
  return session;
}

const exitCode = (s: LspSession) =>
  new Promise<number | null>((resolve) =>
    s.process.exitCode !== null ? resolve(s.process.exitCode) : s.process.once('exit', resolve),
  );

async function errorOf(promise: Promise<unknown>): Promise<{ code: number; message: string } | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return error as { code: number; message: string };
  }
}

test('exit without shutdown exits with 1, after shutdown with 0', async () => {
  const abrupt = start();
  await abrupt.initialize();
  await abrupt.connection.sendNotification('exit');
  assert.equal(await exitCode(abrupt), 1);
  const clean = start();
  await clean.initialize();
  assert.equal(await clean.shutdown(), 0);
});

test('requests before initialize get -32002, a second initialize is refused, requests after shutdown are refused', async () => {
  const s = start();
  const early = await errorOf(
    s.connection.sendRequest('textDocument/inlineCompletion', {
      textDocument: { uri: 'file:///a.md' },
      position: { line: 0, character: 0 },
      context: { triggerKind: 2 },
    }),
  );
  assert.equal(early?.code, -32002, JSON.stringify(early));
  assert.equal(
    (
      await errorOf(
        s.connection.sendRequest('textDocument/completion', {
          textDocument: { uri: 'file:///a.md' },
          position: { line: 0, character: 0 },
        }),
      )
    )?.code,
    -32002,
  );
  await s.initialize();
  const again = await errorOf(s.initialize());
  assert.equal(again?.code, -32600, JSON.stringify(again));
  assert.match(again!.message, /initialize was already received/);
  await s.open('file:///a.md', 'the quick');
  assert.equal(
    typeof (await s.inline('file:///a.md', 0, 9)),
    typeof (await s.inline('file:///a.md', 0, 9)),
    'still serving',
  );
  await s.connection.sendRequest('shutdown');
  assert.equal((await errorOf(s.inline('file:///a.md', 0, 9)))?.code, -32600);
  await s.connection.sendNotification('exit');
  assert.equal(await exitCode(s), 0);
});

test('positions that are not non-negative integers are rejected with -32602, never answered with null', async () => {
  const s = start();
  await s.initialize();
  const uri = 'file:///notes/p.md';
  await s.open(uri, 'the quick brown\nfox');
  for (const position of [
    { line: 0, character: 1.5 },
    { line: -1, character: 0 },
    { line: 0, character: '3' },
    { line: 0 },
    null,
    { line: 0, character: 2 ** 40 },
  ]) {
    for (const method of ['textDocument/inlineCompletion', 'textDocument/completion']) {
      const error = await errorOf(
        s.connection.sendRequest(method, { textDocument: { uri }, position, context: { triggerKind: 2 } }),
      );
      assert.equal(error?.code, -32602, `${method} ${JSON.stringify(position)}: ${JSON.stringify(error)}`);
    }
  }
  // Integers past the end are fine: they are clamped to the document's end.
  const result = await s.connection.sendRequest('textDocument/inlineCompletion', {
    textDocument: { uri },
    position: { line: 99, character: 99 },
    context: { triggerKind: 2 },
  });
  assert.ok(Array.isArray(result));
  assert.equal(JSON.stringify(result).includes('null'), false, JSON.stringify(result));
  assert.equal(await s.shutdown(), 0);
});

test("a relative modelPath resolves against the workspace folder, not the server's working directory", async () => {
  const workspace = join(root, 'workspace');
  mkdirSync(workspace);
  randomModel(2, undefined, join(workspace, 'models', 'mine'));
  const s = new LspSession({ env: ENV });
  sessions.push(s);
  await s.connection.sendRequest('initialize', {
    processId: process.pid,
    rootUri: pathToFileURL(workspace).href,
    capabilities: {},
    workspaceFolders: [{ uri: pathToFileURL(workspace).href, name: 'workspace' }],
    initializationOptions: { modelPath: 'models/mine' },
  });
  // The status goes once the client says it listens.
  await s.connection.sendNotification('initialized', {});
  const deadline = Date.now() + 10_000;
  while (!s.statuses.some((status) => status.model === join(workspace, 'models', 'mine')) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(
    s.statuses.some((status) => status.model === join(workspace, 'models', 'mine')),
    JSON.stringify(s.statuses),
  );
  assert.equal(await s.shutdown(), 0);
});

test('a completion at the end of a 100,000-character line, and in a 20 MB document, answers quickly', async (t) => {
  const s = start();
  await s.initialize();
  const line = 'abcdefghij'.repeat(10_000);
  await s.open('file:///notes/line.md', line);
  for (const ask of [
    () => s.inline('file:///notes/line.md', 0, line.length),
    () => s.completion('file:///notes/line.md', 0, line.length),
  ]) {
    const t0 = performance.now();
    await ask();
    const ms = performance.now() - t0;
    t.diagnostic(`${ms.toFixed(0)} ms at the end of a 100,000-character line`);
    assert.ok(ms < 1500, `${ms.toFixed(0)} ms at the end of a 100,000-character line`);
  }
  // The word cache reads a bounded window: on first use, and when the cursor jumps forward.
  const big = 'lorem ipsum dolor sit amet, consectetur adipiscing elit\n'.repeat(360_000);
  await s.open('file:///notes/big.md', big);
  const lines = 360_000;
  for (const [line, what] of [
    [lines, 'the end'],
    [0, 'the start'],
    [lines, 'the end again'],
  ] as const) {
    const t0 = performance.now();
    await s.inline('file:///notes/big.md', line, 0);
    const ms = performance.now() - t0;
    t.diagnostic(`${ms.toFixed(0)} ms at ${what} of a 20 MB document`);
    assert.ok(ms < 1500, `${ms.toFixed(0)} ms at ${what} of a 20 MB document`);
  }
  assert.equal(await s.shutdown(), 0);
});

test('a malformed frame is skipped: the server goes on answering instead of going deaf', async () => {
  const s = start();
  await s.initialize();
  await s.open('file:///notes/f.md', 'the quick');
  const stdin = s.process.stdin!;
  for (const garbage of [
    'Foo: bar\r\n\r\n{}',
    'Content-Length: many\r\n\r\n',
    'not a header at all',
    'Content-Length: 99999999999999\r\n\r\n',
    '   ',
  ]) {
    stdin.write(garbage);
    const answer = await Promise.race([
      s.inline('file:///notes/f.md', 0, 9).then(() => 'answered'),
      new Promise((r) => setTimeout(() => r('deaf'), 5000)),
    ]);
    assert.equal(answer, 'answered', `after ${JSON.stringify(garbage)}: ${s.stderr.slice(-300)}`);
  }
  assert.match(s.stderr, /malformed LSP input: a header without a valid Content-Length; skipped \d+ bytes/);
  assert.equal(await s.shutdown(), 0);
});
