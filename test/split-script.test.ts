// npm run split: the files it writes are the trainer's own split (splitCorpus on loadCorpus), byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOCUMENT_SEPARATOR, loadCorpus } from '../training/corpus';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { splitCorpus } from '../training/split';

const SPLITTER = join(__dirname, '..', 'split.js');

test('writes the validation text splitCorpus holds out, and the rest as training text', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'char-split-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const notes = join(root, 'notes');
  const out = join(root, 'out');
  mkdirSync(notes);
  for (let i = 0; i < 12; i++) {
    writeFileSync(join(notes, `note${i}.md`), `Note ${i}: ${`the ${i} fox, 狐狸 🦊.\n`.repeat(5 + i)}`);
  }

  const run = spawnSync(process.execPath, [SPLITTER, notes, '--out', out], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const expected = splitCorpus(loadCorpus([notes]), TRAIN_DEFAULTS.validationFraction);
  assert.match(expected.how, /files held out/);
  assert.ok(expected.validation.length > 0 && expected.train.length > 0);
  assert.equal(readFileSync(join(out, 'test.txt'), 'utf8'), expected.validation);
  assert.equal(readFileSync(join(out, 'train.txt'), 'utf8'), expected.train);
  // Each file held out, in the order test.txt joins them, which reading the folder keeps.
  const heldOut = loadCorpus([join(out, 'test')]).documents.map((d) => d.text);
  assert.ok(heldOut.length > 0);
  assert.deepEqual(
    heldOut,
    expected.heldOut.map((d) => d.text),
  );
  assert.equal(heldOut.join(DOCUMENT_SEPARATOR), expected.validation);
  assert.match(run.stdout, new RegExp(`Validation: ${expected.how.replace(/[()%]/g, '\\$&')}`));

  // The trainer reads its paths resolved, and the files held out follow their paths: given relative to where it
  // runs, the split is still the trainer's.
  const relative = spawnSync(process.execPath, [SPLITTER, 'notes', '--out', 'relative'], {
    encoding: 'utf8',
    cwd: root,
  });
  assert.equal(relative.status, 0, relative.stderr);
  assert.equal(readFileSync(join(root, 'relative', 'test.txt'), 'utf8'), expected.validation);

  const missing = spawnSync(process.execPath, [SPLITTER, notes], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /usage: npm run split/);
});
