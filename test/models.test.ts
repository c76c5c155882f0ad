// Several models side by side, through the trainer's command line: --name puts a model in <data dir>/models/NAME and
// leaves every other model's files as they were, --list describes each, a bad --name is exit 2, and --forget trains a
// model that never read a path and drops what was learnt from saves of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../model/format';
import { LearnedNotes, learnedChars, noteKey } from '../model/learned';
import { deleteModel, listModels, modelDirForName, modelsRoot } from '../model/models';
import { loadNgram } from '../model/ngram-format';
import type { ModelList } from '../protocol/messages';
import { modelNameFor, modelNameProblem } from '../protocol/model-names';
import { loadCorpus } from '../training/corpus';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { splitCorpus } from '../training/split';

const TRAINER = join(__dirname, '..', 'train.js');
const SMALL = ['--chars', '3000', '--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '16', '--batch', '4'];
const FOX = 'the quick brown fox jumps over the lazy dog.\n';
/** Found in one note only, longer than the n-gram's order, so that its n-grams come from that note alone. */
const UNIQUE = 'quorblefaxitude';

let root: string;
let env: NodeJS.ProcessEnv;
/** The work note that holds UNIQUE: one the trainer's split keeps for training, which depends on the temporary path. */
let uniqueNote: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'char-models-'));
  env = { ...process.env, XDG_DATA_HOME: join(root, 'data'), CHAR_COMPLETE_WASM_THREADS: '1' };
  delete env.CHAR_COMPLETE_MODEL_DIR;
  for (const [name, files] of Object.entries({
    journal: { 'monday.md': FOX.repeat(40), 'tuesday.md': 'a journal of days and nights.\n'.repeat(40) },
    work: Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [
        `note${i}.md`,
        i === 4 ? `The ${UNIQUE} of it all. ${UNIQUE} again.\n`.repeat(20) : `work item ${i}: ${FOX}`.repeat(20),
      ]),
    ),
  })) {
    mkdirSync(join(root, name));
    for (const [file, text] of Object.entries(files)) writeFileSync(join(root, name, file), text);
  }
  // The split holds out files by a hash of their paths, and the root is random: move the unique note's text to the
  // first note that the split trains on.
  const work = join(root, 'work');
  const uniqueText = readFileSync(join(work, 'note4.md'), 'utf8');
  const plainText = readFileSync(join(work, 'note0.md'), 'utf8');
  for (let i = 0; i < 10; i++) {
    uniqueNote = join(work, `note${i}.md`);
    writeFileSync(join(work, 'note4.md'), plainText);
    writeFileSync(uniqueNote, uniqueText);
    if (!splitCorpus(loadCorpus([work]), TRAIN_DEFAULTS.validationFraction).validation.includes(UNIQUE)) break;
    writeFileSync(uniqueNote, plainText);
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

function trainer(...args: string[]) {
  return spawnSync(process.execPath, [TRAINER, ...args], { encoding: 'utf8', env });
}

/** Every file below dir by its path, with a hash of its bytes. */
function hashes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.set(full, createHash('sha256').update(readFileSync(full)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

test('a bad --name, or --name with --out, is exit 2 with a message that says what a name may be', () => {
  for (const [args, expected] of [
    [['--name', '../escape'], /--name: "\.\.\/escape" is not a model name: use letters, digits/],
    [['--name', 'con'], /Windows reserves it/],
    [['--name', 'a', '--out', join(root, 'x')], /give --name or --out, not both/],
  ] as const) {
    const run = trainer(join(root, 'journal'), ...SMALL, ...args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, expected);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.equal(modelNameProblem('journal-2024.v2'), undefined);
  assert.equal(modelNameFor('My Notes (old)'), 'My-Notes-old');
  assert.equal(modelNameFor('..'), 'notes');
});

test('training workspace B with --name b leaves model A’s files byte-identical', () => {
  const a = trainer(join(root, 'journal'), '--name', 'a', ...SMALL);
  assert.equal(a.status, 0, a.stderr);
  const dirA = join(root, 'data', 'char-complete', 'models', 'a');
  assert.equal(modelDirForName('a', env), dirA);
  const before = hashes(dirA);
  assert.ok(before.size >= 3, 'model A has its files');
  const b = trainer(join(root, 'work'), '--name', 'b', ...SMALL);
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(hashes(dirA), before);
  assert.ok(statSync(join(modelsRoot(env), 'b', 'model.json')).isFile());
});

test('--list and listModels give each model’s sources, date, size, validation and learnt characters', () => {
  const dirB = modelDirForName('b', env);
  const saved = loadModel(dirB);
  const learnt = 'Notes learnt from a save.\n';
  LearnedNotes.load(dirB, saved.vocabulary).learn(noteKey(join(root, 'work', 'new.md')), learnt);
  const run = trainer('--list', '--json');
  assert.equal(run.status, 0, run.stderr);
  const listed = JSON.parse(run.stdout) as ModelList;
  assert.deepEqual(
    listed.models.map((m) => m.name),
    ['a', 'b'],
  );
  const b = listed.models[1];
  assert.deepEqual(b.sources, ['work']);
  assert.equal(b.corpusChars, saved.metadata.corpus.chars);
  assert.ok(Math.abs(Date.parse(b.savedAt) - statSync(join(dirB, 'model.json')).mtimeMs) < 1000);
  const bytes = [...hashes(dirB).keys()].reduce((sum, file) => sum + statSync(file).size, 0);
  assert.equal(b.sizeBytes, bytes);
  assert.equal(b.validationBpc, saved.metadata.validation?.bpc ?? null);
  assert.equal(b.learntChars, learnt.length);
  assert.equal(b.inUse, false);
  assert.equal(listModels(dirB, env).models.find((m) => m.name === 'b')?.inUse, true);
  const text = trainer('--list');
  assert.match(text.stdout, /^b +\d{4}-\d\d-\d\d \d\d:\d\d .* 26 chars learnt +from work/m);
});

test('--forget trains a model that never read the path and drops the notes learnt from it', () => {
  const forgotten = uniqueNote;
  const withIt = trainer(join(root, 'work'), '--name', 'forget', ...SMALL);
  assert.equal(withIt.status, 0, withIt.stderr);
  const dir = modelDirForName('forget', env);
  const vocabulary = loadModel(dir).vocabulary;
  const unique = () => loadNgram(dir, vocabulary)!.countedShare(vocabulary.encode(UNIQUE));
  assert.equal(unique(), 1, 'the n-gram counts the unique word before');
  LearnedNotes.load(dir, vocabulary).learn(noteKey(forgotten), `More ${UNIQUE} said on a save.\n`);
  LearnedNotes.load(dir, vocabulary).learn(noteKey(join(root, 'elsewhere.md')), 'a note from outside the corpus.\n');
  const kept = learnedChars(dir);

  const without = trainer(join(root, 'work'), '--name', 'forget', '--forget', forgotten, ...SMALL);
  assert.equal(without.status, 0, without.stderr);
  assert.match(
    without.stdout,
    /Forgetting .*note\d\.md: never read; 1 note learnt from saves of it \(\d+ characters\)/,
  );
  const after = loadModel(dir).vocabulary;
  assert.equal(loadNgram(dir, after)!.countedShare(after.encode(UNIQUE)), 0, 'no n-gram of the unique word is left');
  assert.ok(learnedChars(dir) < kept && learnedChars(dir) > 0, 'the other note stays learnt');

  const resumed = trainer(join(root, 'work'), '--name', 'forget', '--forget', forgotten, '--resume', ...SMALL);
  assert.equal(resumed.status, 2);
  assert.match(resumed.stderr, /leave out --resume/);
});

test('a model is deleted whole, and never the one in use', () => {
  const dir = modelDirForName('a', env);
  assert.throws(() => deleteModel('a', dir, env), /is the model in use/);
  assert.throws(() => deleteModel('missing', dir, env), /there is no model called "missing"/);
  assert.equal(deleteModel('a', modelDirForName('b', env), env), dir);
  assert.deepEqual(readdirSync(modelsRoot(env)).sort(), ['b', 'forget']);
});
