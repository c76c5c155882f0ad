// Costing nothing when idle, through the real server: it exits by itself after an idle period (shortened here), saying
// so first, and requests and document activity keep it alive; and it answers only for charComplete.languages as they
// are now, so a change of the list needs no restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LspSession } from '../tools/lsp-driver';
import { IdleExitNotification, IdleExitParams } from '../protocol/messages';
import { randomModel } from './support/random-model';
import { tempModelDir } from './support/temp-dirs';

const IDLE_MS = 1500;
const URI = 'file:///notes/today.md';

test('an idle server says so and exits cleanly; activity keeps it alive', async () => {
  const session = new LspSession({
    initializationOptions: { modelPath: tempModelDir('char-complete-idle') },
    env: { ...process.env, CHAR_COMPLETE_IDLE_EXIT_MS: String(IDLE_MS) },
  });
  const farewells: IdleExitParams[] = [];
  session.connection.onNotification(IdleExitNotification, (params) => void farewells.push(params));
  const exited = new Promise<number | null>((resolve) => session.process.once('exit', (code) => resolve(code)));
  let exitedAt = 0;
  void exited.then(() => (exitedAt = Date.now()));
  await session.initialize();
  await session.open(URI, '# Today\n');
  // Edits and requests spaced below the idle period, for twice as long as it: the server must still be there.
  const busyUntil = Date.now() + 2 * IDLE_MS;
  let line = 1;
  while (Date.now() < busyUntil) {
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS / 3));
    if (line % 2) await session.change(URI, { start: { line, character: 0 }, end: { line, character: 0 } }, 'a\n');
    else await session.inline(URI, line, 0);
    line++;
  }
  assert.equal(exitedAt, 0, 'the server exited while in use');
  const lastActivity = Date.now();
  const code = await exited;
  assert.equal(code, 0, `exit code ${code}; stderr: ${session.stderr}`);
  assert.ok(exitedAt - lastActivity >= IDLE_MS - 100, `exited ${exitedAt - lastActivity} ms after the last activity`);
  assert.deepEqual(farewells, [{ idleMs: IDLE_MS }]);
  assert.ok(
    session.logs.some((l) => /^Idle for 1\.5 s: exiting/.test(l)),
    `no idle line in the log: ${session.logs.join('\n')}`,
  );
  session.connection.dispose();
});

test('a change of charComplete.languages applies to the running server', async () => {
  const modelPath = tempModelDir('char-complete-languages');
  randomModel(7, undefined, modelPath);
  let settings: Record<string, unknown> = { modelPath, minConfidence: 0, languages: ['markdown'] };
  const session = new LspSession({
    initializationOptions: settings,
    configuration: () => settings,
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
  await session.initialize();
  const pid = session.process.pid;
  await session.open('file:///notes/a.md', 'the ');
  await session.open('file:///code/a.ts', 'the ', 'typescript');
  assert.notEqual(await session.inline('file:///notes/a.md', 0, 4), undefined, 'markdown is served');
  assert.equal(await session.inline('file:///code/a.ts', 0, 4), undefined, 'typescript is not in the list');
  settings = { ...settings, languages: ['markdown', 'typescript'] };
  await session.changeConfiguration();
  let served: string | undefined;
  for (let tries = 0; tries < 50 && served === undefined; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    served = await session.inline('file:///code/a.ts', 0, 4);
  }
  assert.notEqual(served, undefined, 'typescript is served once added');
  assert.equal(session.process.pid, pid);
  assert.equal(session.process.exitCode, null, 'the same server answers');
  assert.equal(await session.shutdown(), 0);
});
