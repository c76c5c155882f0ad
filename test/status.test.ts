// The status bar's first status reaches a client that, like vscode-languageclient, registers its
// handlers for the server's own notifications only once initialize is answered.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import { StatusNotification, StatusParams } from '../protocol/messages';
import { SERVER_NODE_FLAGS } from '../protocol/server-process';
import { randomModel } from './support/random-model';

const root = mkdtempSync(join(tmpdir(), 'char-complete-status-'));
const modelDir = join(root, 'model');
randomModel(1, { embed: 4, hidden: 8, layers: 1 }, modelDir);
after(() => rmSync(root, { recursive: true, force: true }));

test('the status naming the loaded model arrives after initialized, with no completion asked for', async () => {
  const server = spawn(process.execPath, [...SERVER_NODE_FLAGS, join(__dirname, '..', 'server.js'), '--stdio'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
  const connection = createMessageConnection(
    new StreamMessageReader(server.stdout!),
    new StreamMessageWriter(server.stdin!),
  );
  try {
    // What arrives before initialize is answered has no handler yet in such a client, and is lost.
    const early: string[] = [];
    connection.onUnhandledNotification((message) => void early.push(message.method));
    connection.listen();
    await connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: {},
      initializationOptions: { modelPath: modelDir },
    });
    const statuses: StatusParams[] = [];
    const loaded = new Promise<StatusParams>((resolve) =>
      connection.onNotification(StatusNotification, (status) => {
        statuses.push(status);
        if (status.model === modelDir) resolve(status);
      }),
    );
    await connection.sendNotification('initialized', {});
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 10_000)));
    const status = await Promise.race([loaded, timeout]);
    clearTimeout(timer);
    assert.ok(status, `no status naming ${modelDir} within 10 s; got ${JSON.stringify(statuses)}`);
    assert.equal(status.latencyMs, null);
    assert.ok(!early.includes(StatusNotification.method), `a status was sent before initialize was answered`);
  } finally {
    connection.dispose();
    server.kill('SIGKILL');
  }
});
