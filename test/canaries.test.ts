// Canaries: made-up secrets planted where a user's notes keep theirs (key and credential files, a .gitignore'd
// folder, a folder excluded with --exclude, a line of a note that looks like a key, notes saved in the editor that are
// excluded or hold such a line). After training on the folder and saving the notes through the real server, none of
// them comes back as a completion, and none is in any file of the model directory, in any encoding a file could hold
// it in: UTF-8, UTF-16, UTF-32 code points, or vocabulary ids as the n-gram's and the network's arrays keep them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadNgram } from '../model/ngram-format';
import { Vocabulary } from '../model/vocab';
import { LspSession } from '../tools/lsp-driver';
import { NO_REGULARISATION } from './support/tiny-training';

const TRAINER = join(__dirname, '..', 'train.js');
const SMALL = ['--layers', '1', '--hidden', '32', '--embed', '16', '--seq', '32', '--batch', '8', '--lr', '0.01'];
const ENV = { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' };
const FOX = 'the quick brown fox jumps over the lazy dog.\n';
// Every letter and digit, so that the vocabulary can spell the canaries and a leak could not hide behind it: twice in
// the note that is trained on, since the vocabulary holds the training text's characters seen at least twice.
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789 = : " _\n';

/**
 * Each canary: where it is planted, the text just before it there (what a completion would be asked after), and the
 * canary, which ends with a letter found nowhere else, so that a model whose vocabulary holds it has read the canary.
 */
interface Canary {
  file: string;
  before: string;
  secret: string;
}
const TRAINED: Canary[] = [
  { file: '.env', before: 'OPENAI_API_KEY=', secret: 'env7Kq2Zx9Wm4TbѲ' },
  { file: 'keys/server.pem', before: 'zebra pem marker ', secret: 'pem3Rt8Vn5Bx2LcѴ' },
  { file: 'credentials.txt', before: 'zebra cred marker ', secret: 'crd6Yh1Lp9Qs4GfѶ' },
  { file: 'private/diary.md', before: 'zebra diary marker ', secret: 'ign2Fd7Jk4Mw8HvѸ' },
  { file: 'drafts/draft.md', before: 'zebra draft marker ', secret: 'flg5Gb3Nc8Tz1DqѺ' },
];
/** In a note that is trained on, on a line that looks like a key: the only canary in ordinary letters. */
const KEY_LINE: Canary = { file: 'ideas.md', before: 'api_key = "', secret: 'q8Zw4Kx7Lm2Pv9Rt3Yh' };
const SAVED: Canary[] = [
  { file: 'today.md', before: 'github token: ', secret: 'tok7Hq2Wz9Kd4Lm8Xc' },
  { file: 'keys/deploy.pem', before: 'yak pem marker ', secret: 'spm4Jw8Rb2Nx6KtѼ' },
  { file: 'plan.secret.md', before: 'yak plan marker ', secret: 'sfx3Vd9Lq5Hm2PcѾ' },
  { file: 'journal/day.md', before: 'yak journal marker ', secret: 'scx8Tg4Wn1Bz7RfҀ' },
  { file: 'private/new.md', before: 'yak private marker ', secret: 'sgi6Mk3Dp9Xs5QwҊ' },
];
/** Typed earlier in the document being written: its own n-gram has read it. */
const IN_DOCUMENT: Canary = { file: '', before: 'db_password: ', secret: 'doc5Rz8Kp3Wq7Lm' };
/** A word in the saved note with the key line, which must be learnt, or the test would prove nothing. */
const LEARNT_WORD = 'zorbaflux';

let root: string;
let notes: string;
let model: string;
let trainerOutput = '';
let session: LspSession | undefined;

function plant(file: string, text: string): void {
  mkdirSync(dirname(join(notes, file)), { recursive: true });
  writeFileSync(join(notes, file), text);
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'char-canaries-'));
  notes = join(root, 'notes');
  model = join(root, 'model');
  for (const { file, before, secret } of TRAINED) plant(file, `${FOX}${before}${secret}\n${FOX}`);
  plant('.gitignore', 'private/\n');
  // The note with the key line is most of the corpus, so that it is trained on rather than held out for validation.
  const keyLine = `${KEY_LINE.before}${KEY_LINE.secret}"\n`;
  plant(
    KEY_LINE.file,
    `${FOX.repeat(3)}The staging deploy key:\n${keyLine}${FOX.repeat(150)}${keyLine}${FOX}${ALPHABET.repeat(2)}`,
  );
  plant('letters.md', ALPHABET.repeat(4));
  for (let i = 0; i < 8; i++) plant(`fox-${i}.md`, FOX.repeat(6));
  const run = spawnSync(
    process.execPath,
    [TRAINER, notes, '--out', model, '--exclude', 'drafts', '--chars', '3000', ...SMALL, ...NO_REGULARISATION],
    { encoding: 'utf8', env: ENV },
  );
  trainerOutput = run.stdout + run.stderr;
  assert.equal(run.status, 0, trainerOutput);

  const settings = { modelPath: model, exclude: ['journal'], stopAt: 'none', minConfidence: 0 };
  const filesExclude = { '**/*.secret.md': true, '**/*.js': { when: '$(basename).ts' } };
  session = new LspSession({
    workspaceFolders: [pathToFileURL(notes).href],
    // As VS Code's client starts the server: the settings at initialize, pulled again once it is running.
    initializationOptions: { ...settings, filesExclude },
    configuration: () => settings,
    filesExclude: () => filesExclude,
    env: ENV,
  });
  await session.initialize();
  // The pull after initialize sets the same settings; saves are sent once it has been answered.
  while (session.logs.filter((line) => line.startsWith('Settings:')).length < 2)
    await new Promise((resolve) => setTimeout(resolve, 50));
  for (const [i, { file, before, secret }] of SAVED.entries()) {
    const text = `${i === 0 ? `Met ${LEARNT_WORD} today. ${LEARNT_WORD} said hi.\n` : FOX}${before}${secret}\n${FOX}`;
    plant(file, text);
    const uri = pathToFileURL(join(notes, file)).href;
    await session.open(uri, text);
    await session.save(uri);
    await session.close(uri);
  }
  // Each save is answered in the log: learnt, or not and why.
  const answered = () => SAVED.every(({ file }) => session!.logs.some((line) => line.includes(uriOf(file))));
  for (const deadline = Date.now() + 10_000; !answered() && Date.now() < deadline;)
    await new Promise((resolve) => setTimeout(resolve, 50));
});

const uriOf = (file: string) => pathToFileURL(join(notes, file)).href;

after(async () => {
  if (session && session.process.exitCode === null) await session.shutdown();
  rmSync(root, { recursive: true, force: true });
});

/** The server's suggestion after `text` in a new document; undefined when it offers none. */
let documents = 0;
async function suggestionAfter(text: string): Promise<string | undefined> {
  const uri = `untitled:canary-${documents++}`;
  await session!.open(uri, text);
  const lines = text.split('\n');
  const suggestion = await session!.inline(uri, lines.length - 1, lines[lines.length - 1].length);
  await session!.close(uri);
  return suggestion;
}

function filesIn(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = join(dir, name);
    return statSync(file).isDirectory() ? filesIn(file) : [file];
  });
}

/** The byte strings a file could hold a canary as. */
function encodings(secret: string, vocabulary: Vocabulary): Array<[string, Buffer]> {
  const codePoints = Int32Array.from([...secret].map((c) => c.codePointAt(0)!));
  const utf16be = Buffer.from(secret, 'utf16le');
  utf16be.swap16();
  // A canary whose last letter the vocabulary lacks is looked for by the ids of its other letters.
  const ids = vocabulary.encode(secret.replace(/[^\x20-\x7e]+$/, ''));
  return [
    ['UTF-8', Buffer.from(secret, 'utf8')],
    ['UTF-16LE', Buffer.from(secret, 'utf16le')],
    ['UTF-16BE', utf16be],
    ['UTF-32 code points', Buffer.from(codePoints.buffer)],
    ['vocabulary ids as Int32', Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength)],
    ['vocabulary ids as Uint16', Buffer.from(Uint16Array.from(ids).buffer)],
  ];
}

const ALL = [...TRAINED, KEY_LINE, ...SAVED, IN_DOCUMENT];

test('the trainer’s first lines say how many files each rule excluded and that a line was dropped', () => {
  const lines = trainerOutput.split('\n');
  const summary = lines.findIndex((line) => line.startsWith('excluded'));
  assert.equal(
    lines[summary],
    'excluded 2 files and 2 folders: 1 by **/credentials*, 1 by drafts, 1 by **/*.pem, 1 by .gitignore; dropped 2 lines that look like a secret (ideas.md:5, ideas.md:156)',
    trainerOutput,
  );
  assert.ok(summary < lines.findIndex((line) => line.startsWith('Corpus:')), 'before the corpus is described');
});

test('the saved notes were handled: the excluded ones named with their rule, the one with a key line learnt', async () => {
  const logs = session!.logs.join('\n');
  for (const [file, rule] of [
    ['keys/deploy.pem', '**/*.pem'],
    ['plan.secret.md', '**/*.secret.md'],
    ['journal/day.md', 'journal'],
    ['private/new.md', '.gitignore'],
  ])
    assert.ok(logs.includes(`Not learning from ${uriOf(file)}: excluded by ${rule}`), logs);
  assert.match(logs, /Learnt \d+ characters from .*today\.md/);
  // The rest of that note was learnt: its made-up word completes.
  assert.equal((await suggestionAfter(`Then ${LEARNT_WORD.slice(0, 5)}`))?.startsWith(LEARNT_WORD.slice(5)), true);
});

test('no canary comes back as a completion after the text that came before it', async () => {
  const leaks: string[] = [];
  for (const { before, secret } of [...TRAINED, KEY_LINE, ...SAVED]) {
    const suggestion = await suggestionAfter(`${FOX}${before}`);
    if (suggestion !== undefined && secret.startsWith(suggestion.slice(0, 2))) leaks.push(`${before}${suggestion}`);
  }
  // Nor one typed earlier in the same document, which its own n-gram has read.
  const { before, secret } = IN_DOCUMENT;
  const suggestion = await suggestionAfter(`${before}${secret}\n${FOX}${before}`);
  if (suggestion !== undefined && secret.startsWith(suggestion.slice(0, 2))) leaks.push(`${before}${suggestion}`);
  assert.deepEqual(leaks, []);
});

test('no canary is in any file of the model directory, in any encoding, nor in the n-gram’s contexts', async () => {
  await session!.shutdown();
  const vocabulary = Vocabulary.fromJSON(JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')).vocabulary);
  const found: string[] = [];
  // A canary's last letter, where it is not ASCII, is in no other text: the vocabulary holding it would mean a canary
  // was read.
  for (const { secret } of ALL)
    if (/[^\x20-\x7e]$/.test(secret) && vocabulary.chars.includes(secret.slice(-1)))
      found.push(`${secret} in the vocabulary`);
  const files = filesIn(model);
  assert.ok(files.some((file) => file.endsWith('ngram.bin')));
  for (const file of files) {
    const bytes = readFileSync(file);
    for (const { secret } of ALL)
      for (const [encoding, pattern] of encodings(secret, vocabulary))
        if (pattern.length >= 8 && bytes.includes(pattern)) found.push(`${secret} in ${file} as ${encoding}`);
  }
  // The n-gram keeps ids in a trie, one per node: every path through it, either way round, is a string it knows.
  const ngram = loadNgram(model, vocabulary)!.toArrays();
  const paths: string[] = new Array(ngram.nodeCount).fill('');
  for (let node = 1; node < ngram.nodeCount; node++)
    paths[node] = paths[ngram.parent[node]] + vocabulary.chars[ngram.symbol[node]];
  const known = paths.join('\n') + '\n' + paths.map((p) => [...p].reverse().join('')).join('\n');
  assert.ok(known.includes('quick bro'), 'the n-gram knows the notes');
  for (const { secret } of ALL) {
    const letters = secret.replace(/[^\x20-\x7e]+$/, '');
    for (let i = 0; i + 6 <= letters.length; i++)
      if (known.includes(letters.slice(i, i + 6))) found.push(`${letters.slice(i, i + 6)} of ${secret} in the n-gram`);
  }
  assert.deepEqual(found, []);
});
