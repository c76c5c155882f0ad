// Forgetting through the real server over stdio: "Forget this file" drops what was learnt from saves of one note, so
// its unique word stops completing while another note's still does, in this server and in a fresh one on the same
// model; "Forget learned notes" drops them all. The server serves a model chosen by name (charComplete.model).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { learnedChars } from '../model/learned';
import { DeleteModelRequest, ForgetFileRequest, ForgetLearnedRequest, ListModelsRequest } from '../protocol/messages';
import { LspSession } from '../tools/lsp-driver';
import { save } from './support/save-note';
import { NO_REGULARISATION } from './support/tiny-training';

const TRAINER = join(__dirname, '..', 'train.js');
const SMALL = ['--layers', '1', '--hidden', '32', '--embed', '16', '--seq', '32', '--batch', '8', '--lr', '0.01'];
const LINE = 'the quick brown fox jumps over the lazy dog.\n';
const FORGOTTEN = 'zenakovirum';
const KEPT = 'pomidesavul';

let root: string;
let notes: string;
let model: string;
let env: NodeJS.ProcessEnv;
const sessions: LspSession[] = [];

before(() => {
  root = mkdtempSync(join(tmpdir(), 'char-forget-'));
  env = { ...process.env, XDG_DATA_HOME: join(root, 'data'), CHAR_COMPLETE_WASM_THREADS: '1' };
  delete env.CHAR_COMPLETE_MODEL_DIR;
  notes = join(root, 'notes');
  mkdirSync(join(root, 'corpus'));
  mkdirSync(notes);
  writeFileSync(join(root, 'corpus', 'fox.md'), LINE.repeat(300));
  const run = spawnSync(
    process.execPath,
    [TRAINER, join(root, 'corpus'), '--name', 'mine', '--chars', '30000', ...SMALL, ...NO_REGULARISATION],
    { encoding: 'utf8', env },
  );
  assert.equal(run.status, 0, run.stderr);
  model = join(root, 'data', 'char-complete', 'models', 'mine');
});

after(() => {
  for (const s of sessions) if (s.process.exitCode === null) s.process.kill();
  rmSync(root, { recursive: true, force: true });
});

async function server(): Promise<LspSession> {
  const session = new LspSession({
    workspaceFolders: [pathToFileURL(notes).href],
    initializationOptions: { model: 'mine' },
    env,
  });
  sessions.push(session);
  await session.initialize();
  return session;
}

let probes = 0;
/** Whether the server completes the word after its first four letters, in a note it has not learnt from. */
async function completes(session: LspSession, word: string): Promise<boolean> {
  const uri = `untitled:probe-${probes++}`;
  const text = `Met ${word.slice(0, 4)}`;
  await session.open(uri, text);
  const suggestion = await session.inline(uri, 0, text.length);
  await session.close(uri);
  return suggestion?.startsWith(word.slice(4)) === true;
}

test('Forget this file: its unique word stops completing, another note’s still does, and a fresh server agrees', async () => {
  const session = await server();
  const listed = await session.connection.sendRequest(ListModelsRequest);
  assert.deepEqual(
    listed.models.map((m) => [m.name, m.inUse]),
    [['mine', true]],
  );
  const forgotten = join(notes, 'forgotten.md');
  await save(session, forgotten, `Met ${FORGOTTEN} today. ${FORGOTTEN} said hi.\n`);
  await save(session, join(notes, 'kept.md'), `Met ${KEPT} today. ${KEPT} said hi.\n`);
  assert.ok(await completes(session, FORGOTTEN), 'learnt before it is forgotten');
  assert.ok(await completes(session, KEPT));

  const result = await session.connection.sendRequest(ForgetFileRequest, { uri: pathToFileURL(forgotten).href });
  assert.equal(result.model, model);
  assert.equal(result.notes, 1);
  assert.ok(result.chars > FORGOTTEN.length, `forgot ${result.chars} characters`);
  assert.ok(result.trainedShare !== null && result.trainedShare < 0.5, 'the trained n-gram never read it');
  assert.equal(await completes(session, FORGOTTEN), false, 'forgotten in this server');
  assert.ok(await completes(session, KEPT), 'the other note stays learnt');

  const fresh = await server();
  assert.equal(await completes(fresh, FORGOTTEN), false, 'forgotten in a fresh server');
  assert.ok(await completes(fresh, KEPT));
  await fresh.shutdown();

  const all = await session.connection.sendRequest(ForgetLearnedRequest);
  assert.equal(all.notes, 1);
  assert.equal(all.trainedShare, null);
  assert.equal(learnedChars(model), 0);
  assert.equal(await completes(session, KEPT), false, 'every learnt note forgotten');

  await assert.rejects(session.connection.sendRequest(DeleteModelRequest, { name: 'mine' }), /is the model in use/);
  await assert.rejects(session.connection.sendRequest(ForgetFileRequest, { uri: 42 } as never), /needs the uri/);
  await session.shutdown();
});
