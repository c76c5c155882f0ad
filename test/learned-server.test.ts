// Notes learnt from saves are never lost, through the real server over stdio: saves while a trainer writes checkpoints
// into the served directory, a save right before shutdown, two servers on one directory, a retrain that fails on a
// full disk, and a hundred saves of a note edited in the middle. Every unique word saved must complete afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LEARNED_FILE } from '../model/learned';
import { LspSession } from '../tools/lsp-driver';
import { save } from './support/save-note';
import { NO_REGULARISATION } from './support/tiny-training';

const TRAINER = join(__dirname, '..', 'train.js');
const LINE = 'the quick brown fox jumps over the lazy dog.\n';
const SMALL = ['--layers', '1', '--hidden', '32', '--embed', '16', '--seq', '32', '--batch', '8', '--lr', '0.01'];
const ENV = { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' };

let root: string;
let baseModel: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'char-learned-server-'));
  mkdirSync(join(root, 'corpus'));
  writeFileSync(join(root, 'corpus', 'fox.md'), LINE.repeat(300));
  baseModel = join(root, 'base-model');
  const run = spawnSync(
    process.execPath,
    [TRAINER, join(root, 'corpus'), '--out', baseModel, '--chars', '30000', ...SMALL, ...NO_REGULARISATION],
    { encoding: 'utf8', env: ENV },
  );
  assert.equal(run.status, 0, run.stderr);
});

const sessions: LspSession[] = [];
after(() => {
  for (const s of sessions) if (s.process.exitCode === null) s.process.kill();
  rmSync(root, { recursive: true, force: true });
});

/** A copy of the small trained model, for one test to write into. */
function modelCopy(name: string): string {
  const dir = join(root, name);
  cpSync(baseModel, dir, { recursive: true });
  return dir;
}

function folder(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function server(modelPath: string, folders: string[]): Promise<LspSession> {
  const session = new LspSession({
    workspaceFolders: folders.map((dir) => pathToFileURL(dir).href),
    initializationOptions: { modelPath },
    env: ENV,
  });
  sessions.push(session);
  await session.initialize();
  return session;
}

/** Made-up words of four syllables, as many as asked, drawn from seed. */
function madeUpWords(count: number, seed: number): string[] {
  const consonants = 'bdfgjkmnprstvz';
  const vowels = 'aeiou';
  let state = seed;
  const next = (n: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  return Array.from({ length: count }, () =>
    Array.from({ length: 4 }, () => consonants[next(consonants.length)] + vowels[next(vowels.length)]).join(''),
  );
}

/** Made-up words that no corpus holds, each told apart from the others by its first four letters. */
function uniqueWords(count: number, seed: number): string[] {
  const byPrefix = new Map<string, string>();
  for (let more = count; byPrefix.size < count; more *= 2)
    for (const word of madeUpWords(more, seed)) if (byPrefix.size < count) byPrefix.set(word.slice(0, 4), word);
  return [...byPrefix.values()];
}

const noteAbout = (word: string) => `Met ${word} today. ${word} said hi.\n`;

let probes = 0;
/** The words the server does not complete after their first four letters, in a note it has not learnt from. */
async function missing(session: LspSession, words: string[]): Promise<string[]> {
  const uri = `untitled:probe-${probes++}`;
  const notCompleted: string[] = [];
  for (const word of words) {
    const text = `Met ${word.slice(0, 4)}`;
    await session.open(uri, text);
    const suggestion = await session.inline(uri, 0, text.length);
    await session.close(uri);
    if (!suggestion?.startsWith(word.slice(4))) notCompleted.push(`${word} (got ${JSON.stringify(suggestion)})`);
  }
  return notCompleted;
}

async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('notes saved every half second while a trainer writes checkpoints into the served directory all stay learnt', async () => {
  const model = modelCopy('model-training');
  // The trainer reads the notes of one folder; notes in the other are learnt from saves alone.
  const trained = folder('training-notes');
  const elsewhere = folder('other-notes');
  // Twenty files, so that validation holds out whole ones and the notes are counted in the n-gram.
  for (let i = 0; i < 20; i++) writeFileSync(join(trained, `fox-${i}.md`), LINE.repeat(15));
  const s = await server(model, [trained, elsewhere]);
  const words = uniqueWords(46, 1);
  // Notes learnt before the retrain, which the trainer then reads.
  const saved = words.slice(0, 6);
  const texts = saved.map(noteAbout);
  for (const [i, text] of texts.entries()) await save(s, join(trained, `before-${i}.md`), text);
  const trainer = spawn(process.execPath, [TRAINER, trained, '--out', model, '--chars', '100000', ...SMALL], {
    env: ENV,
  });
  let output = '';
  trainer.stdout.on('data', (chunk) => (output += chunk));
  trainer.stderr.on('data', (chunk) => (output += chunk));
  const finished = new Promise<number | null>((resolve) => trainer.on('exit', resolve));
  let running = true;
  void finished.then(() => (running = false));
  while (running && saved.length < words.length) {
    const word = words[saved.length];
    if (saved.length % 2) await save(s, join(elsewhere, `note-${saved.length}.md`), noteAbout(word));
    else {
      // A note the trainer read, saved again with one more line.
      const i = saved.length % texts.length;
      texts[i] += noteAbout(word);
      await save(s, join(trained, `before-${i}.md`), texts[i]);
    }
    saved.push(word);
    await pause(500);
  }
  assert.equal(await finished, 0, output);
  assert.ok(saved.length >= 12, `only ${saved.length - 6} saves while the trainer ran:\n${output}`);
  assert.ok(
    s.logs.filter((line) => line.startsWith('Loaded model')).length >= 3,
    `the server reloaded the model as the trainer saved it:\n${s.logs.join('\n')}`,
  );
  // The trainer's last save is served once the watcher has seen it.
  await until(async () => (await missing(s, saved)).length === 0, 5000);
  assert.deepEqual(await missing(s, saved), [], 'the running server');
  await s.shutdown();

  const fresh = await server(model, []);
  assert.deepEqual(await missing(fresh, saved), [], 'a server started afterwards');
  await fresh.shutdown();
  assert.match(
    output,
    /Notes learnt from saves: [1-9]\d* now counted by this n-gram/,
    'the notes the trainer read are not counted twice',
  );
});

test('a note saved 200 ms before shutdown is kept', async () => {
  const model = modelCopy('model-shutdown');
  const notes = folder('shutdown-notes');
  const [word] = uniqueWords(1, 2);
  const s = await server(model, [notes]);
  await save(s, join(notes, 'last.md'), noteAbout(word));
  await pause(200);
  await s.shutdown();

  const fresh = await server(model, []);
  assert.deepEqual(await missing(fresh, [word]), []);
  await fresh.shutdown();
});

test('two servers on one model directory keep both windows’ notes and pick up each other’s', async () => {
  const model = modelCopy('model-two');
  const notes = folder('two-notes');
  const one = await server(model, [notes]);
  const two = await server(model, [notes]);
  const words = uniqueWords(6, 3);
  for (const [i, word] of words.entries()) {
    await save(i % 2 ? two : one, join(notes, `note-${i}.md`), noteAbout(word));
    await pause(100);
  }
  const ofOne = words.filter((_, i) => i % 2 === 0);
  const ofTwo = words.filter((_, i) => i % 2 === 1);
  await until(async () => (await missing(one, ofTwo)).length === 0, 5000);
  assert.deepEqual(await missing(one, ofTwo), [], 'the first learns the second’s');
  await until(async () => (await missing(two, ofOne)).length === 0, 5000);
  assert.deepEqual(await missing(two, ofOne), [], 'the second learns the first’s');
  await one.shutdown();
  await two.shutdown();

  const fresh = await server(model, []);
  assert.deepEqual(await missing(fresh, words), []);
  await fresh.shutdown();
});

test('a retrain that fails on a full disk leaves every learnt note in place', async (t) => {
  const disk = folder('small-disk');
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', disk], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    t.skip(`a tmpfs cannot be mounted here (${(mounted.stderr || mounted.error?.message || '').trim()}); run as root`);
    return;
  }
  t.after(() => spawnSync('umount', [disk]));
  const model = join(disk, 'model');
  cpSync(baseModel, model, { recursive: true });
  const notes = folder('full-disk-notes');
  const words = uniqueWords(3, 4);
  const s = await server(model, [notes]);
  for (const [i, word] of words.entries()) await save(s, join(notes, `note-${i}.md`), noteAbout(word));
  assert.ok(await until(() => existsSync(join(model, LEARNED_FILE)), 5000), 'the notes are on disk');
  await s.shutdown();
  const learnt = statSync(join(model, LEARNED_FILE)).size;

  // Varied text, so what the retrain writes (its n-gram, its context model) is larger than the space left.
  const bigCorpus = folder('big-corpus');
  const varied = madeUpWords(20_000, 5).join(' ');
  writeFileSync(join(bigCorpus, 'words.md'), varied);
  const retrain = spawnSync(process.execPath, [TRAINER, bigCorpus, '--out', model, '--chars', '20000', ...SMALL], {
    encoding: 'utf8',
    env: ENV,
  });
  assert.notEqual(retrain.status, 0, `the retrain was expected to run out of space:\n${retrain.stdout}`);
  assert.match(retrain.stderr, /space/, 'it failed for want of space');
  assert.equal(statSync(join(model, LEARNED_FILE)).size, learnt, 'the learnt notes are as they were');

  const fresh = await server(model, []);
  assert.deepEqual(await missing(fresh, words), []);
  await fresh.shutdown();
});

test('a hundred saves of a growing note edited in the middle keep the stored notes near the note’s size', async () => {
  const model = modelCopy('model-growing');
  const notes = folder('growing-notes');
  const file = join(notes, 'journal.md');
  const uri = pathToFileURL(file).href;
  const s = await server(model, [notes]);
  const lines = Array.from({ length: 40 }, (_, i) => `Day ${i}: the quick brown fox jumps over the lazy dog.\n`);
  await s.open(uri, lines.join(''));
  const words = uniqueWords(100, 6);
  for (const word of words) {
    // Each save adds a line in the middle of the note.
    const at = Math.floor(lines.length / 2);
    const line = noteAbout(word);
    await s.change(uri, { start: { line: at, character: 0 }, end: { line: at, character: 0 } }, line);
    lines.splice(at, 0, line);
    writeFileSync(file, lines.join(''));
    await s.save(uri);
  }
  assert.ok(await until(() => existsSync(join(model, LEARNED_FILE)), 5000), 'the notes are on disk');
  await s.shutdown();
  const noteBytes = Buffer.byteLength(lines.join(''));
  const storedBytes = statSync(join(model, LEARNED_FILE)).size;
  assert.ok(
    storedBytes < 4 * noteBytes,
    `${storedBytes} bytes stored for a note of ${noteBytes} saved ${words.length} times`,
  );
  assert.deepEqual(
    readdirSync(model).filter((name) => name.startsWith(`${LEARNED_FILE}.`)),
    [],
    'no temporary files left',
  );

  const fresh = await server(model, []);
  assert.deepEqual(await missing(fresh, words), []);
  await fresh.shutdown();
});
