// The model host finds a model wherever and whenever training writes it, and the server survives a model.json that is
// not a file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../backends/select';
import { saveModel } from '../model/format';
import { NgramModel } from '../model/ngram';
import { saveNgram } from '../model/ngram-format';
import {
  learnNotesContexts,
  loadNotesContexts,
  NOTES_CONTEXTS_FILE,
  NOTES_TEXT_FILE,
  rebuildNotesContexts,
  saveNotesContexts,
} from '../model/notes-text';
import { loadServedModel } from '../model/served';
import { ModelHost } from '../server/model-host';
import { acquireRelearnLock, acquireTrainingLock } from '../training/lock';
import { LspSession } from '../tools/lsp-driver';
import { randomModel } from './support/random-model';
import { makeContextsOneVersionOld } from './support/contexts-header';

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

/** Saves into `dir` a model with notes text whose context model is a file of the format version before this one. */
function modelWithOlderContexts(dir: string, seed: number) {
  const saved = model(seed);
  saveModel(dir, saved);
  saveNgram(dir, new NgramModel(saved.vocabulary.size), saved.vocabulary);
  writeFileSync(join(dir, NOTES_TEXT_FILE), 'the quick brown fox jumps over the lazy dog.\n'.repeat(40));
  saveNotesContexts(dir, learnNotesContexts(saved.vocabulary, saved.vocabulary.encode('older')), saved.vocabulary);
  makeContextsOneVersionOld(dir);
  assert.throws(() => loadNotesContexts(dir, saved.vocabulary), /format version/);
  return saved;
}

test('a model whose context model is of an older version learns it again from its notes in the background, then serves it; one without notes text does not', async () => {
  await selectBackend('wasm');
  const dir = join(root, 'older-contexts');
  const saved = modelWithOlderContexts(dir, 5);
  const file = join(dir, NOTES_CONTEXTS_FILE);
  // A trainer that begins writing the model meanwhile saves its own; what was learnt here is not saved over it.
  assert.equal(
    rebuildNotesContexts(dir, saved.vocabulary, () => false),
    undefined,
  );
  assert.throws(() => loadNotesContexts(dir, saved.vocabulary), /format version/, 'the older file is still there');

  const logs: string[] = [];
  const host = new ModelHost(
    (line) => logs.push(line),
    () => {},
  );
  try {
    host.use(dir);
    assert.equal(host.generation, 1);
    assert.equal(host.model!.mixture.notesReaders!.contexts, undefined, 'the older file is refused');
    assert.ok(host.model!.contextsRebuildable);
    assert.match(host.info!.description, /; learning its context model again from its notes, meanwhile without it$/);
    await within(
      60_000,
      () => host.model?.mixture.notesReaders?.contexts !== undefined,
      'the context model learnt again',
    );
    assert.equal(host.generation, 2, 'loaded once more, with the new file');
    assert.doesNotMatch(host.info!.description, /context model/);
    // The watcher may load the new file before the trainer's process has closed and its report been logged.
    await within(
      60_000,
      () => logs.some((line) => /^Learnt the context model of .* again from 1,800 chars/.test(line)),
      "the trainer's report in the log",
    );
    const rebuilt = loadNotesContexts(dir, saved.vocabulary)!;
    assert.ok(
      rebuilt.append(saved.vocabulary.encode(' the quick brown fox')) < 20 * Math.log(saved.vocabulary.size) * 0.5,
      'it learnt the notes',
    );
  } finally {
    host.dispose();
  }

  rmSync(join(dir, NOTES_TEXT_FILE));
  rmSync(file);
  const withoutText = loadServedModel(dir);
  withoutText.dispose();
  assert.equal(withoutText.contextsRebuildable, false, 'nothing to learn it from');
});

test('a context model that could not be learnt again is named in the status, and not tried again for the same model', async () => {
  await selectBackend('wasm');
  const dir = join(root, 'relearning-fails');
  modelWithOlderContexts(dir, 6);
  const logs: string[] = [];
  const host = new ModelHost(
    (line) => logs.push(line),
    () => {},
  );
  let release: (() => void) | undefined;
  try {
    host.use(dir);
    assert.match(host.info!.description, /learning its context model again/);
    // A training that begins meanwhile saves its own context model, so the one learnt here is not saved.
    release = acquireTrainingLock(dir);
    await within(
      60_000,
      () => /could not be learnt again \(the log says why\)$/.test(host.info!.description),
      'the failure in the status',
    );
    assert.ok(
      logs.some((line) => /^could not learn the context model of .* again: .*a training/.test(line)),
      logs.join('\n'),
    );
    release();
    release = undefined;
    host.reload();
    assert.match(host.info!.description, /could not be learnt again/, 'the same model.json is not tried again');
    assert.ok(!logs.some((line) => /^Learnt the context model/.test(line)), logs.join('\n'));
    assert.equal(host.model!.mixture.notesReaders!.contexts, undefined);
  } finally {
    release?.();
    host.dispose();
  }
});

test('a server that finds another process learning the context model loads its file, and learns it itself if that process ends without one', async () => {
  await selectBackend('wasm');
  const logs: string[] = [];
  const host = new ModelHost(
    (line) => logs.push(line),
    () => {},
  );
  // Each lock stands for another window's server, which began first.
  const dir = join(root, 'relearnt-elsewhere');
  const saved = modelWithOlderContexts(dir, 7);
  let release: (() => void) | undefined = acquireRelearnLock(dir);
  try {
    host.use(dir);
    assert.match(host.info!.description, /; learning its context model again from its notes, meanwhile without it$/);
    assert.ok(
      logs.some((line) =>
        /^Another process is learning the context model of .* again \(it holds contexts-relearn\.lock\)/.test(line),
      ),
      logs.join('\n'),
    );
    assert.equal(
      rebuildNotesContexts(dir, saved.vocabulary, () => true),
      1800,
      'the other process saves its file',
    );
    release();
    release = undefined;
    await within(5000, () => host.model?.mixture.notesReaders?.contexts !== undefined, "the other process's file");
    assert.doesNotMatch(host.info!.description, /context model/);

    // The other process ends without a file, as when its window closes.
    const abandoned = join(root, 'relearning-abandoned');
    modelWithOlderContexts(abandoned, 8);
    release = acquireRelearnLock(abandoned);
    host.use(abandoned);
    assert.match(host.info!.description, /learning its context model again/);
    release();
    release = undefined;
    await within(
      60_000,
      () => host.model?.mixture.notesReaders?.contexts !== undefined,
      'the context model learnt by this server',
    );
    assert.equal(logs.filter((line) => /^Learnt the context model of .* again/.test(line)).length, 1, logs.join('\n'));
  } finally {
    release?.();
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
