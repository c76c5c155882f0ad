// The model host finds a model wherever and whenever training writes it, and the server survives a model.json that is
// not a file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../backends/select';
import { saveModel } from '../model/format';
import { ModelHost } from '../server/model-host';
import { LspSession } from '../tools/lsp-driver';
import { randomModel } from './support/random-model';

const root = mkdtempSync(join(tmpdir(), 'char-complete-host-'));
after(() => rmSync(root, { recursive: true, force: true }));

const model = (seed: number) => randomModel(seed);

/** Milliseconds until check() holds; fails after `ms`. */
async function within(ms: number, check: () => boolean, what: string): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > ms) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - started;
}

test('a model trained after the server started is loaded, even when its directory and parents did not exist; deleting and retraining is noticed too', async () => {
  await selectBackend('wasm');
  // As on a fresh machine: not even the data directory's parent exists yet.
  const data = join(root, 'share');
  const dir = join(data, 'char-complete', 'model');
  const host = new ModelHost(
    () => {},
    () => {},
  );
  try {
    host.use(dir);
    assert.equal(host.model, undefined);

    mkdirSync(join(data, 'char-complete'), { recursive: true });
    saveModel(dir, model(1));
    await within(3000, () => host.generation === 1, 'the first model');

    // Deleted and trained again: the watch on the old directory is dead.
    rmSync(data, { recursive: true, force: true });
    await new Promise((r) => setTimeout(r, 300));
    saveModel(dir, model(2));
    await within(3000, () => host.generation === 2, 'the model retrained into a recreated directory');

    // Replaced by a rename, as a sync tool or a script might do.
    const staged = join(root, 'staged');
    saveModel(staged, model(3));
    rmSync(dir, { recursive: true });
    renameSync(staged, dir);
    await within(3000, () => host.generation === 3, 'the model in a replaced directory');

    // An ordinary new save into the same directory.
    saveModel(dir, model(4));
    await within(3000, () => host.generation === 4, 'a new save');
  } finally {
    host.dispose();
  }
});

test('the real server answers initialize and stays up when model.json is a FIFO', async (t) => {
  const dir = join(root, 'fifo-model');
  mkdirSync(dir, { recursive: true });
  if (spawnSync('mkfifo', [join(dir, 'model.json')]).status !== 0) {
    t.skip('mkfifo unavailable');
    return;
  }
  const session = new LspSession({
    initializationOptions: { modelPath: dir },
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
  try {
    const answered = await Promise.race([
      session.initialize().then(() => true),
      new Promise((r) => setTimeout(() => r(false), 20_000)),
    ]);
    assert.equal(answered, true, `initialize unanswered: ${session.stderr}`);
    await session.open('file:///notes/a.md', 'the quick');
    assert.equal(await session.inline('file:///notes/a.md', 0, 9), undefined);
    assert.ok(
      session.messages.some((m) => /model\.json is not a regular file/.test(m.message)),
      JSON.stringify(session.messages),
    );
    assert.equal(await session.shutdown(), 0);
  } finally {
    if (session.process.exitCode === null) session.process.kill('SIGKILL');
  }
});
