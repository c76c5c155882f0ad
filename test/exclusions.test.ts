// Which files are never read as notes (model/exclusions.ts): the default key and credential files, the user's globs,
// the editor's files.exclude and .gitignore files; the trainer's corpus leaving them out and saying so; and the
// settings that carry the globs to the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_EXCLUDES, Exclusions, ExcludeError, globProblem } from '../model/exclusions';
import { describeExclusions, loadCorpus } from '../training/corpus';
import { filesExcludeGlobs, parseSettings } from '../server/settings';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'char-complete-exclusions-'));
}

function write(file: string, content: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

test('the default exclusions keep out key and credential files at any depth, and nothing a note is called', () => {
  const exclusions = new Exclusions('/home/someone/notes', { readGitignore: null });
  const excluded: Array<[string, string]> = [
    ['.env', '**/.env*'],
    ['app/.env.production', '**/.env*'],
    ['certs/server.pem', '**/*.pem'],
    ['tls.KEY', '**/*.key'],
    ['id_rsa', '**/id_rsa*'],
    ['backup/id_ed25519.pub', '**/id_ed25519*'],
    ['store.p12', '**/*.p12'],
    ['.netrc', '**/.netrc'],
    ['.npmrc', '**/.npmrc'],
    ['credentials.txt', '**/credentials*'],
    ['secrets.yaml', '**/secrets.*'],
    ['vault.kdbx', '**/*.kdbx'],
    ['.aws/config', '**/.aws/**'],
    ['dotfiles/.ssh/known_hosts', '**/.ssh/**'],
  ];
  for (const [file, rule] of excluded) assert.equal(exclusions.pathRule(file), rule, file);
  for (const file of ['journal/2024-05-01.md', 'keys.md', 'passwords-policy.md', 'env.md', 'secret-santa.md'])
    assert.equal(exclusions.pathRule(file), undefined, file);
  // A key folder above the folder given still counts: training on ~/.ssh reads nothing.
  assert.equal(new Exclusions('/home/someone/.ssh', { readGitignore: null }).fileRule('known_hosts'), '**/.ssh/**');
  assert.ok(DEFAULT_EXCLUDES.length >= 20);
});

test('a glob without a slash matches a name at any depth; a leading slash anchors it at the folder', () => {
  const exclusions = new Exclusions('/notes', {
    globs: ['drafts', '/top.md', 'work/**/*.tmp', '*.LOG'],
    readGitignore: null,
  });
  assert.equal(exclusions.pathRule('drafts/a.md'), 'drafts');
  assert.equal(exclusions.pathRule('deep/drafts/b.md'), 'drafts');
  assert.equal(exclusions.folderRule('deep/drafts'), 'drafts');
  assert.equal(exclusions.pathRule('top.md'), '/top.md');
  assert.equal(exclusions.pathRule('deep/top.md'), undefined);
  assert.equal(exclusions.pathRule('work/a/b/c.tmp'), 'work/**/*.tmp');
  assert.equal(exclusions.pathRule('x/build.log'), '*.LOG', 'case is ignored');
  assert.equal(exclusions.pathRule('notes.md'), undefined);
});

test('.gitignore files apply to their folder and below, and a deeper one can take a rule back', () => {
  const root = tempDir();
  try {
    write(path.join(root, '.gitignore'), 'private/\n*.log\n# a comment\n');
    write(path.join(root, 'sub', '.gitignore'), '!keep.log\nlocal.md\n');
    const exclusions = new Exclusions(root);
    assert.equal(exclusions.pathRule('private/diary.md'), '.gitignore');
    assert.equal(exclusions.folderRule('private'), '.gitignore');
    assert.equal(exclusions.pathRule('x.log'), '.gitignore');
    assert.equal(exclusions.pathRule('sub/other.log'), '.gitignore');
    assert.equal(exclusions.pathRule('sub/keep.log'), undefined);
    assert.equal(exclusions.pathRule('sub/local.md'), '.gitignore');
    assert.equal(exclusions.pathRule('local.md'), undefined, 'a rule in sub/ says nothing about the root');
    assert.equal(exclusions.pathRule('notes.md'), undefined);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a bad glob is named with what is wrong, never matched', () => {
  assert.match(globProblem('')!, /empty/);
  assert.match(globProblem('../elsewhere/*')!, /"\.\."/);
  assert.match(globProblem(42)!, /string/);
  assert.equal(globProblem('**/*.md'), undefined);
  assert.throws(
    () => new Exclusions('/notes', { globs: ['ok/**', ' '] }),
    (error: Error) => {
      assert.ok(error instanceof ExcludeError);
      assert.equal(error.message, 'cannot exclude " ": a glob must not be empty');
      return true;
    },
  );
});

test('the corpus leaves out excluded files and folders and secret lines, and one line says how many and why', () => {
  const root = tempDir();
  try {
    write(path.join(root, 'notes.md'), 'ordinary notes\nAPI_KEY=Zq8canaryX7vLm2Pq\nmore notes\n');
    write(path.join(root, 'server.pem'), 'not a note\n');
    write(path.join(root, 'credentials.txt'), 'not a note\n');
    write(path.join(root, '.gitignore'), 'private/\nscratch.md\n');
    write(path.join(root, 'private', 'diary.md'), 'not trained on\n');
    write(path.join(root, 'scratch.md'), 'not trained on\n');
    write(path.join(root, 'drafts', 'draft.md'), 'not trained on\n');
    write(path.join(root, 'kept', 'page.md'), 'page\n');
    const corpus = loadCorpus([root], { excludeGlobs: ['drafts'] });
    assert.deepEqual(
      corpus.documents.map((d) => [path.relative(root, d.path), d.text]),
      [
        [path.join('kept', 'page.md'), 'page\n'],
        ['notes.md', 'ordinary notes\nmore notes\n'],
      ],
    );
    assert.deepEqual(
      corpus.excluded.map((e) => [path.relative(root, e.path), e.rule, e.folder]),
      [
        ['credentials.txt', '**/credentials*', false],
        ['drafts', 'drafts', true],
        ['private', '.gitignore', true],
        ['scratch.md', '.gitignore', false],
        ['server.pem', '**/*.pem', false],
      ],
    );
    assert.deepEqual(corpus.droppedLines, [{ path: path.join(root, 'notes.md'), line: 2 }]);
    assert.equal(
      describeExclusions(corpus.excluded, corpus.droppedLines),
      'excluded 3 files and 2 folders: 2 by .gitignore, 1 by **/credentials*, 1 by drafts, 1 by **/*.pem; dropped 1 line that looks like a secret (notes.md:2)',
    );
    // A file named on its own is judged by the globs and the defaults too.
    const named = loadCorpus([path.join(root, 'server.pem'), path.join(root, 'notes.md')]);
    assert.deepEqual(
      named.excluded.map((e) => e.rule),
      ['**/*.pem'],
    );
    assert.equal(named.documents.length, 1);
    assert.throws(() => loadCorpus([root], { excludeGlobs: ['../x'] }), ExcludeError);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('describeExclusions says nothing when nothing was left out, and counts lines in the plural', () => {
  assert.equal(describeExclusions([], []), undefined);
  const dropped = [1, 5, 9, 12].map((line) => ({ path: '/n/a.md', line }));
  assert.equal(describeExclusions([], dropped), 'dropped 4 lines that look like a secret (a.md:1, a.md:5, a.md:9, …)');
});

test('charComplete.exclude takes a list of globs; a bad one is left out with a warning, the rest apply', () => {
  assert.deepEqual(parseSettings({ exclude: ['drafts/', '*.log'] }), {
    settings: { ...parseSettings({}).settings, exclude: ['drafts/', '*.log'] },
    warnings: [],
  });
  const { settings, warnings } = parseSettings({ exclude: ['ok.md', '', 7] });
  assert.deepEqual(settings.exclude, ['ok.md']);
  assert.deepEqual(warnings, [
    'charComplete.exclude: "" is left out: a glob must not be empty',
    'charComplete.exclude: 7 is left out: a glob must be a string, not 7',
  ]);
  assert.match(parseSettings({ exclude: 'drafts' }).warnings[0], /must be a list of globs/);
});

test('files.exclude gives its globs that are set to true; conditional and switched-off ones are not exclusions', () => {
  assert.deepEqual(
    filesExcludeGlobs({ '**/.git': true, '**/*.js': { when: '$(basename).ts' }, '**/tmp': false, '': true }),
    ['**/.git'],
  );
  assert.deepEqual(filesExcludeGlobs(null), []);
  assert.deepEqual(filesExcludeGlobs(['**/x']), []);
});

test('a bad --exclude stops the trainer with one line naming the glob, and exit code 2', () => {
  const root = tempDir();
  try {
    write(path.join(root, 'notes.md'), 'a note\n');
    const run = spawnSync(
      process.execPath,
      [path.join(__dirname, '..', 'train.js'), root, '--out', path.join(root, 'model'), '--exclude', '../elsewhere'],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 2, run.stderr);
    assert.equal(
      run.stderr.split('\n')[0],
      'error: --exclude: cannot exclude "../elsewhere": a glob must not step out of the folder with "..": globs match paths inside the folder',
    );
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
