// Reading notes from files and folders, the default corpus, and the validation split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Corpus, describeSkipped, loadCorpus } from '../training/corpus';
import { defaultCorpusPaths } from '../training/default-corpus';
import { splitCorpus } from '../training/split';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'char-complete-corpus-'));
}

function write(file: string, content: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

test('walks nested directories in sorted order and skips binary, hidden and vendored files', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(path.join(root, 'b.md'), 'bee\n');
  write(path.join(root, 'a.txt'), 'ay\n');
  write(path.join(root, 'notes', 'deep', 'c.org'), '* sea\n');
  write(path.join(root, 'notes', 'z.rst'), 'zed\n');
  write(path.join(root, 'notes', 'noext'), 'plain\n');
  write(path.join(root, '.hidden', 'secret.md'), 'hidden\n');
  write(path.join(root, '.dotfile'), 'dot\n');
  write(path.join(root, 'node_modules', 'pkg', 'readme.md'), 'vendored\n');
  write(path.join(root, 'dist', 'out.md'), 'built\n');
  // PNG signature followed by an IHDR chunk: contains NUL bytes, as real images do.
  write(
    path.join(root, 'image.png'),
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]),
  );
  write(path.join(root, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café" in Latin-1
  write(path.join(root, 'empty.md'), '');

  const corpus = loadCorpus([root]);
  assert.deepEqual(
    corpus.documents.map((d) => path.relative(root, d.path)),
    ['a.txt', 'b.md', path.join('notes', 'deep', 'c.org'), path.join('notes', 'noext'), path.join('notes', 'z.rst')],
  );
  assert.deepEqual(
    corpus.skipped.map((s) => [path.relative(root, s.path), s.reason]),
    [
      ['empty.md', 'empty'],
      ['image.png', 'binary'],
      ['latin1.txt', 'not UTF-8'],
    ],
  );
  assert.equal(
    corpus.chars,
    corpus.documents.reduce((n, d) => n + [...d.text].length, 0),
  );
  assert.equal(
    describeSkipped(corpus.skipped),
    'skipped 3 files: 1 binary (image.png), 1 not UTF-8 (latin1.txt), 1 empty (empty.md)',
  );
});

test('an explicitly named file is loaded even if hidden, and is not loaded twice', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const hidden = path.join(root, '.notes.md');
  const plain = path.join(root, 'plain.md');
  write(hidden, 'hidden but named\n');
  write(plain, 'plain\n');
  const corpus = loadCorpus([hidden, root, plain]);
  assert.deepEqual(
    corpus.documents.map((d) => d.path),
    [hidden, plain],
  );
});

test('symlinked directories are not followed, so a loop terminates', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(path.join(root, 'sub', 'a.md'), 'a\n');
  try {
    fs.symlinkSync(root, path.join(root, 'sub', 'loop'), 'dir');
  } catch {
    t.skip('symlinks not supported here');
    return;
  }
  const corpus = loadCorpus([root]);
  assert.deepEqual(
    corpus.documents.map((d) => path.relative(root, d.path)),
    [path.join('sub', 'a.md')],
  );
});

test('normalises CRLF and lone CR to LF and strips the BOM', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const file = path.join(root, 'windows.txt');
  write(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('one\r\ntwo\rthree\r\n\r\n你好\n', 'utf8')]));
  const corpus = loadCorpus([file]);
  assert.equal(corpus.documents.length, 1);
  assert.equal(corpus.documents[0].text, 'one\ntwo\nthree\n\n你好\n');
  assert.equal(corpus.chars, 18);
  assert.deepEqual(corpus.skipped, []);
  assert.equal(describeSkipped(corpus.skipped), undefined);
});

test('skips files over maxFileBytes', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(path.join(root, 'big.log'), 'x'.repeat(2000));
  write(path.join(root, 'small.md'), 'y'.repeat(100));
  const corpus = loadCorpus([root], { maxFileBytes: 1000 });
  assert.deepEqual(
    corpus.documents.map((d) => path.basename(d.path)),
    ['small.md'],
  );
  assert.deepEqual(corpus.skipped, [{ path: path.join(root, 'big.log'), reason: 'too large' }]);
  assert.equal(describeSkipped(corpus.skipped), 'skipped 1 file: 1 too large (big.log)');
  assert.equal(loadCorpus([root]).documents.length, 2, 'the default limit is far above 2000 bytes');
});

test('a missing path throws', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const missing = path.join(root, 'nope.md');
  assert.throws(() => loadCorpus([missing]), { message: `corpus: no such file or directory: ${missing}` });
});

test('describeSkipped lists at most three names per reason', () => {
  const skipped = [
    { path: 'x/a.png', reason: 'binary' as const },
    { path: 'x/b.pdf', reason: 'binary' as const },
    { path: 'c.zip', reason: 'binary' as const },
    { path: 'd.bin', reason: 'binary' as const },
    { path: 'big.log', reason: 'too large' as const },
  ];
  assert.equal(describeSkipped(skipped), 'skipped 5 files: 4 binary (a.png, b.pdf, c.zip, …), 1 too large (big.log)');
});

function corpusOf(docs: { path: string; text: string }[]): Corpus {
  return {
    documents: docs,
    skipped: [],
    excluded: [],
    droppedLines: [],
    chars: docs.reduce((n, d) => n + [...d.text].length, 0),
  };
}

test('splitCorpus on one file holds out exactly the last 10% by code points', () => {
  // Same length as tinyshakespeare.txt, with astral characters so UTF-16 and code point
  // offsets differ.
  const n = 1_115_394;
  const unit = 'To be, or not 🎭 to be:\n';
  const units = [...unit];
  const cps: string[] = new Array(n);
  for (let i = 0; i < n; i++) cps[i] = units[i % units.length];
  const text = cps.join('');
  assert.notEqual(text.length, n);
  const split = splitCorpus(corpusOf([{ path: 'tinyshakespeare.txt', text }]), 0.1);
  const cut = Math.floor(n * 0.9);
  assert.equal(cut, 1_003_854);
  assert.equal(split.train, cps.slice(0, cut).join(''));
  assert.equal(split.validation, cps.slice(cut).join(''));
  assert.equal([...split.validation].length, n - cut);
  assert.equal(split.train + split.validation, text);
  assert.equal(split.how, 'last 10% of tinyshakespeare.txt');
});

test('splitCorpus on several files holds out whole files and keeps one for training', () => {
  const docs = Array.from({ length: 40 }, (_, i) => ({ path: `notes/n${i}.md`, text: `note ${i} `.repeat(20 + i) }));
  const corpus = corpusOf(docs);
  const split = splitCorpus(corpus, 0.1);
  const trainParts = split.train.split('\n\n');
  const validationParts = split.validation.split('\n\n');
  assert.ok(validationParts.length >= 1 && trainParts.length >= 1);
  assert.equal(trainParts.length + validationParts.length, docs.length);
  const texts = new Set(docs.map((d) => d.text));
  for (const part of [...trainParts, ...validationParts]) assert.ok(texts.has(part), 'each part is a whole document');
  for (const part of validationParts) assert.ok(!trainParts.includes(part), 'no document is in both sets');
  const held = validationParts.reduce((n, p) => n + p.length, 0);
  assert.ok(held >= 0.1 * corpus.chars, 'validation holds at least the requested fraction');
  assert.ok(held <= 0.5 * corpus.chars);
  assert.match(split.how, new RegExp(`^${validationParts.length} of 40 files held out`));
  assert.deepEqual(splitCorpus(corpus, 0.1), split, 'the split is deterministic');
  // Order of documents in the corpus must not change which files are held out.
  const reversed = splitCorpus(corpusOf([...docs].reverse()), 0.1);
  assert.deepEqual(new Set(reversed.validation.split('\n\n')), new Set(validationParts));

  // With two equal files and a large fraction, one must stay in training.
  const two = splitCorpus(
    corpusOf([
      { path: 'a.md', text: 'aaaa' },
      { path: 'b.md', text: 'bbbb' },
    ]),
    0.5,
  );
  assert.deepEqual([two.train, two.validation].sort(), ['aaaa', 'bbbb']);
});

test('splitCorpus falls back to tail-splitting when no whole file fits', () => {
  // Every file is more than half of the corpus on its own... impossible with several files, so
  // use one dominant file plus a tiny one: holding out the big one exceeds 50%, the small one
  // alone is below the requested 10%.
  const big = 'x'.repeat(1000);
  const small = 'y'.repeat(10);
  const split = splitCorpus(
    corpusOf([
      { path: 'big.md', text: big },
      { path: 'small.md', text: small },
    ]),
    0.1,
  );
  assert.equal(split.train, `${'x'.repeat(900)}\n\n${'y'.repeat(9)}`);
  assert.equal(split.validation, `${'x'.repeat(100)}\n\ny`);
  assert.match(split.how, /^last 10% of each of 2 files/);
  assert.throws(() => splitCorpus(corpusOf([]), 0.1), /^Error: corpus: /);
  assert.throws(() => splitCorpus(corpusOf([{ path: 'a', text: 'abc' }]), 1), /^Error: corpus: /);
});

test("defaultCorpusPaths lists README and every source folder of the project, the engine's included, but not tests", (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(path.join(root, 'README.md'), '# readme\n');
  write(path.join(root, 'model', 'vocab.ts'), 'export {};\n');
  write(path.join(root, 'model', 'notes.md'), 'notes\n');
  write(path.join(root, 'model', 'data.json'), '{}\n');
  write(path.join(root, 'server', 'sub', 'server.ts'), 'export {};\n');
  for (const engine of [
    'training/train.ts',
    'completion/session.ts',
    'backends/assembly/layer.ts',
    'protocol/messages.ts',
  ])
    write(path.join(root, ...engine.split('/')), 'export {};\n');
  write(path.join(root, 'test', 'x.test.ts'), 'export {};\n');
  write(path.join(root, 'node_modules', 'm', 'index.ts'), 'export {};\n');
  assert.deepEqual(
    defaultCorpusPaths(root).map((p) => path.relative(root, p)),
    [
      'README.md',
      path.join('model', 'notes.md'),
      path.join('model', 'vocab.ts'),
      path.join('training', 'train.ts'),
      path.join('completion', 'session.ts'),
      path.join('backends', 'assembly', 'layer.ts'),
      path.join('protocol', 'messages.ts'),
      path.join('server', 'sub', 'server.ts'),
    ],
  );
  const corpus = loadCorpus(defaultCorpusPaths(root));
  assert.equal(corpus.documents.length, 8);
});

test('the model directory is never read as notes: the one being written, and any other model directory', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(path.join(root, 'a.md'), 'a note\n');
  // The trainer's --out inside the notes, before its first save.
  write(path.join(root, 'out', 'partial.bin'), 'x');
  // An earlier run's model elsewhere in the notes.
  write(path.join(root, 'old-model', 'model.json'), '{"format": "char-lstm"}');
  write(path.join(root, 'old-model', 'weights.0123456789ab.bin'), 'x');
  const corpus = loadCorpus([root], { exclude: [path.join(root, 'out')] });
  assert.deepEqual(
    corpus.documents.map((d) => path.basename(d.path)),
    ['a.md'],
  );
  assert.equal(describeSkipped(corpus.skipped), 'skipped 2 items: 2 model directory (old-model, out)');
});

test('a symlinked file is read only if it points inside the folder given, and then once', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  write(path.join(root, 'secret.txt'), 'private\n');
  write(path.join(root, 'notes', 'a.md'), 'a note\n');
  try {
    fs.symlinkSync(path.join(root, 'secret.txt'), path.join(root, 'notes', 'outside.txt'));
    fs.symlinkSync(path.join(root, 'notes', 'a.md'), path.join(root, 'notes', 'same.md'));
  } catch {
    t.skip('symlinks not supported here');
    return;
  }
  const corpus = loadCorpus([path.join(root, 'notes')]);
  assert.deepEqual(
    corpus.documents.map((d) => path.basename(d.path)),
    ['a.md'],
  );
  assert.equal(describeSkipped(corpus.skipped), 'skipped 1 file: 1 link out of the folder (outside.txt)');
});

test('a corpus over the size cap stops with an error naming the cap, before reading the rest', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const name of ['a.md', 'b.md', 'c.md']) write(path.join(root, name), 'x'.repeat(40));
  assert.equal(loadCorpus([root], { maxChars: 200 }).documents.length, 3);
  assert.throws(() => loadCorpus([root], { maxChars: 100 }), {
    message: `corpus: more than 100 characters, the most one training run can hold in memory (reached at ${path.join(root, 'c.md')}); train on a part of your notes, for example one subfolder`,
  });
});

test('a note or folder whose name is not UTF-8 is read under its real name and shown with \\xNN escapes', (t) => {
  const root = tempDir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  // Names in Latin-1, as an old archive or a Windows share may leave them: bytes that are not UTF-8.
  const named = (dir: string, latin1: string) =>
    Buffer.concat([Buffer.from(dir + path.sep), Buffer.from(latin1, 'latin1')]);
  const note = named(root, 'caf\xe9.md');
  const folder = named(root, 'd\xff');
  try {
    fs.writeFileSync(note, 'notes from the café\n');
    fs.mkdirSync(folder);
  } catch (error) {
    // macOS and Windows store names as Unicode and refuse such bytes, so the case cannot arise there.
    t.skip(`this filesystem refuses names that are not UTF-8 (${(error as NodeJS.ErrnoException).code})`);
    return;
  }
  fs.writeFileSync(Buffer.concat([folder, Buffer.from(path.sep + 'inner.md')]), 'inside\n');
  write(path.join(root, 'plain.md'), 'plain\n');
  const sub = path.join(root, 'sub');
  fs.mkdirSync(sub);
  fs.writeFileSync(named(sub, 'n\xf6te.md'), 'a note in sub\n');
  // Two links named in Latin-1: one to a note in its folder, one out of it.
  fs.symlinkSync(named(sub, 'n\xf6te.md'), named(sub, 'l\xefnk.md'));
  fs.symlinkSync(note, named(sub, 'out\xe9.md'));

  const whole = loadCorpus([root]);
  assert.deepEqual(
    whole.documents.map((d) => [path.relative(root, d.path), d.text]),
    [
      ['caf\\xe9.md', 'notes from the café\n'],
      [path.join('d\\xff', 'inner.md'), 'inside\n'],
      ['plain.md', 'plain\n'],
      [path.join('sub', 'l\\xefnk.md'), 'a note in sub\n'],
    ],
    'every note read once, under its real name, whatever its name',
  );
  assert.deepEqual(whole.skipped, []);

  const part = loadCorpus([sub]);
  assert.deepEqual(
    part.documents.map((d) => path.relative(root, d.path)),
    [path.join('sub', 'l\\xefnk.md')],
  );
  assert.deepEqual(
    part.skipped.map((s) => [path.relative(root, s.path), s.reason]),
    [[path.join('sub', 'out\\xe9.md'), 'link out of the folder']],
  );
  assert.equal(describeSkipped(part.skipped), 'skipped 1 file: 1 link out of the folder (out\\xe9.md)');
});
