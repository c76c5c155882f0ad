// The real language server over stdio: completions, settings, cancellation, hot reload and status.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc/node';
import { COMPLETION_DEFAULTS } from '../completion/options';
import { CARRIED_MIXING_FILE } from '../model/carried-mixing';
import { LspSession, replayTypist } from '../tools/lsp-driver';
import { randomModel } from './support/random-model';
import { TINY_TRAINING_FLAGS } from './support/tiny-training';

const LINE = 'the quick brown fox jumps over the lazy dog.\n';
const URI = 'file:///notes/fox.md';
/** What the model completes after "the quick br": it knows the line by heart, so it is sure past the word's end. */
const AFTER_BR = LINE.slice('the quick br'.length, -1);
let root: string;
let modelDir: string;

before(() => {
  // A small model that has learnt one sentence by heart.
  root = mkdtempSync(join(tmpdir(), 'char-complete-server-'));
  writeFileSync(join(root, 'notes.md'), LINE.repeat(400));
  modelDir = join(root, 'model');
  const run = spawnSync(
    process.execPath,
    [join(__dirname, '..', 'train.js'), join(root, 'notes.md'), '--out', modelDir, ...TINY_TRAINING_FLAGS],
    { encoding: 'utf8', env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' } },
  );
  assert.equal(run.status, 0, run.stderr);
});

const sessions: LspSession[] = [];
after(async () => {
  for (const s of sessions) if (s.process.exitCode === null) s.process.kill();
  rmSync(root, { recursive: true, force: true });
});

function start(
  settings: Record<string, unknown> = {},
  withConfiguration = false,
  workspaceFolders?: string[],
): LspSession {
  let current = { modelPath: modelDir, ...settings };
  const session = new LspSession({
    workspaceFolders,
    initializationOptions: current,
    configuration: withConfiguration ? () => current : undefined,
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
  (session as unknown as { set: (s: Record<string, unknown>) => void }).set = (s) => (current = { ...current, ...s });
  sessions.push(session);
  return session;
}

const until = async (check: () => Promise<boolean> | boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
};

test('initialize, open, incremental change, inline and list completions', async () => {
  const s = start();
  const init = await s.initialize();
  assert.equal(init.capabilities.inlineCompletionProvider, true);
  assert.ok(init.capabilities.completionProvider);
  await s.open(URI, 'the quick');
  await s.change(URI, { start: { line: 0, character: 9 }, end: { line: 0, character: 9 } }, ' br');
  assert.equal(await s.inline(URI, 0, 12), AFTER_BR);
  const items = await s.completion(URI, 0, 12);
  assert.equal(items[0]?.label, 'br' + AFTER_BR, 'the word typed so far and its completion');
  assert.equal(items[0]?.textEdit?.newText, 'br' + AFTER_BR);
  assert.equal(await s.shutdown(), 0);
});

test('a configuration change takes effect: beam is deterministic, sampling differs, minConfidence filters', async () => {
  const s = start({}, true);
  await s.initialize();
  const text = LINE.repeat(3) + 'the ';
  await s.open(URI, text);
  const line = 3;
  const first = await s.inline(URI, line, 4);
  assert.equal(await s.inline(URI, line, 4), first, 'beam search repeats itself');
  const fits = LINE.slice(4, 4 + COMPLETION_DEFAULTS.maxChars);
  assert.ok(/\w$/.test(fits) && /\w/.test(LINE[4 + COMPLETION_DEFAULTS.maxChars]), 'maxChars falls inside a word');
  assert.equal(first, fits.replace(/\w+$/, ''), 'the words of the line that fit in maxChars');

  const setRaw = (s as unknown as { set: (x: Record<string, unknown>) => void }).set;
  // Each change is pulled by the server asynchronously; wait until it logs the new settings.
  const set = async (x: Record<string, unknown>) => {
    setRaw(x);
    const seen = s.logs.filter((l) => l.startsWith('Settings:')).length;
    await s.changeConfiguration();
    assert.ok(await until(() => s.logs.filter((l) => l.startsWith('Settings:')).length > seen), 'settings applied');
  };
  await set({ mode: 'sample', temperature: 2, topP: 1, stopAt: 'none', maxChars: 24, minConfidence: 0 });
  const samples = new Set<string | undefined>();
  for (let seed = 1; seed <= 4; seed++) {
    await set({ seed });
    samples.add(await s.inline(URI, line, 4));
  }
  assert.ok(
    s.logs.some((l) => l.includes('mode=sample') && l.includes('temperature=2')),
    'the server received the temperature',
  );
  assert.ok(samples.size > 1 || !samples.has(first), `sampling at temperature 2 gave ${[...samples].join(' | ')}`);

  await set({ mode: 'beam', minConfidence: 1, stopAt: 'word' });
  assert.equal(await s.inline(URI, line, 4), undefined, 'minConfidence 1 filters everything');
  await s.shutdown();
});

test('a newer request supersedes an older one, and $/cancelRequest is honoured', async () => {
  const s = start();
  await s.initialize();
  // Each request is a cold start (a long line read from scratch, with turns of the event loop between its steps), so
  // that the message sent right behind it (a newer request, a cancellation) is read while it runs, however quickly the
  // model steps and however loaded the machine is: the two need not reach the server in one read of its input.
  const long = 'lorem ipsum '.repeat(200) + 'the quick br';
  const superseded = 'file:///notes/superseded.md';
  await s.open(superseded, long);
  const older = s.inline(superseded, 0, long.length);
  const newer = s.inline(superseded, 0, long.length);
  assert.equal(await older, undefined, 'the superseded request returns nothing');
  assert.equal(await newer, AFTER_BR);

  const cancelledUri = 'file:///notes/cancelled.md';
  await s.open(cancelledUri, long);
  const source = new CancellationTokenSource();
  const cancelled = s.connection
    .sendRequest(
      'textDocument/inlineCompletion',
      {
        textDocument: { uri: cancelledUri },
        position: { line: 0, character: long.length },
        context: { triggerKind: 2 },
      },
      source.token,
    )
    .then(
      (items) => items,
      (error: { code?: number }) => error,
    );
  source.cancel();
  const outcome = (await cancelled) as unknown;
  const empty = Array.isArray(outcome) && outcome.length === 0;
  const cancelError = (outcome as { code?: number })?.code === -32800;
  assert.ok(empty || cancelError, `cancelled request gave ${JSON.stringify(outcome)}`);
  assert.ok(await s.inline(cancelledUri, 0, long.length), 'not cancelled, the same request completes');
  await s.shutdown();
});

// The status says there is no model; the client, not the server, tells the user, once per window and with buttons (a
// .vsix user has no npm to run).
test('without a model the server answers with nothing, says so in the status only, and hot-reloads a new model', async () => {
  const emptyDir = join(root, 'later-model');
  const s = start({ modelPath: emptyDir });
  await s.initialize();
  await s.open(URI, 'the quick br');
  assert.equal(await s.inline(URI, 0, 12), undefined);
  assert.ok(await until(() => s.statuses.length > 0 && s.statuses.at(-1)!.model === null));
  assert.equal(await s.inline(URI, 0, 12), undefined);
  assert.deepEqual(s.messages, [], 'no message from the server');

  // Publish a model the way the trainer does: shard first, then model.json by rename.
  mkdirSync(emptyDir, { recursive: true });
  for (const file of readdirSync(modelDir))
    if (file.endsWith('.bin')) cpSync(join(modelDir, file), join(emptyDir, file));
  cpSync(join(modelDir, 'model.json'), join(emptyDir, 'model.json.tmp'));
  renameSync(join(emptyDir, 'model.json.tmp'), join(emptyDir, 'model.json'));
  assert.ok(await until(async () => (await s.inline(URI, 0, 12)) === AFTER_BR), 'the new model is picked up');
  await s.shutdown();
});

test('malformed input never crashes the server', async () => {
  const s = start({ beamWidth: 'lots', temperature: -5, mode: 42, maxChars: 1e9, stopAt: null, modelPath: modelDir });
  await s.initialize();
  assert.ok(
    await until(() => s.messages.some((m) => /charComplete\.mode/.test(m.message))),
    'bad settings are reported',
  );
  assert.equal(await s.inline('file:///never/opened.md', 0, 0), undefined, 'unknown URI');
  await s.open(URI, 'the quick br');
  // maxChars, clamped to 256, leaves room for the line break that ends the line.
  const toLineEnd = `${AFTER_BR}\n`;
  assert.equal(await s.inline(URI, 999, 999), toLineEnd, 'a position past the end is clamped to the end');
  const bad = await s.connection.sendRequest('textDocument/inlineCompletion', { nonsense: true }).then(
    (r) => r,
    (e: Error) => e,
  );
  assert.ok(Array.isArray(bad) || bad instanceof Error);

  const surrogates = 'note \ud83d and \ude00 then the quick br';
  await s.open('file:///notes/odd.md', surrogates);
  assert.equal(await s.inline('file:///notes/odd.md', 0, surrogates.length), toLineEnd);

  const huge = 'x'.repeat(1024 * 1024) + ' the quick br';
  await s.open('file:///notes/huge.md', huge);
  const t0 = performance.now();
  assert.equal(await s.inline('file:///notes/huge.md', 0, huge.length), toLineEnd);
  assert.ok(performance.now() - t0 < 5000, 'a 1 MB line costs a bounded cold start');
  assert.equal(await s.inline(URI, 0, 12), toLineEnd, 'still serving');
  assert.equal(await s.shutdown(), 0);
});

test('a model directory without ngram.bin serves the mixture, and a word used earlier in the document completes although the model never saw it', async () => {
  // As a model from before the mixture: no n-gram of the notes, and no gate in model.json. Its
  // LSTM is untrained, so only the document can know the word; an LSTM sure of another
  // continuation would rightly keep it against a document that used the word only twice.
  const lstmOnly = join(root, 'lstm-only');
  randomModel(5, { embed: 8, hidden: 16, layers: 1 }, lstmOnly);
  const s = start({ modelPath: lstmOnly });
  await s.initialize();
  const fresh = 'the quick brown fox. the gl';
  await s.open('file:///notes/fresh.md', fresh);
  assert.doesNotMatch(
    (await s.inline('file:///notes/fresh.md', 0, fresh.length)) ?? '',
    /^imm/,
    'the model alone does not know the word',
  );
  const text = 'the glimmerwort grows. the glimmerwort fades. the gl';
  await s.open('file:///notes/words.md', text);
  // A word seen twice is far from certain, so the completion may stop where its odds fall.
  assert.match((await s.inline('file:///notes/words.md', 0, text.length)) ?? '', /^immer/);
  assert.ok(
    await until(() =>
      s.statuses.some((status) => /LSTM mixed with the document's n-gram/.test(status.description ?? '')),
    ),
    JSON.stringify(s.statuses),
  );
  await s.shutdown();
});

test('the typist replay accepts exact suggestions and saves keystrokes on text the model knows', async () => {
  const s = start();
  await s.initialize();
  await s.open(URI, '');
  const text = LINE.repeat(3);
  const result = await replayTypist(s, URI, '', text);
  assert.equal(result.chars, text.length);
  assert.ok(result.accepted > 0 && result.shown >= result.accepted, JSON.stringify(result));
  // Each accepted suggestion saves its length minus the one key that accepts it.
  assert.ok(result.keystrokes < text.length / 2, `${result.keystrokes} keystrokes for ${text.length} chars`);
  assert.equal(result.latenciesMs.length, result.keystrokes);
  await s.shutdown();
});

test("the status bar's latency is sent once the typist pauses, not ahead of every completion", async () => {
  const s = start();
  await s.initialize();
  await s.open(URI, '');
  assert.ok(await until(() => s.statuses.some((status) => status.model !== null)));
  const before = s.statuses.length;
  const started = Date.now();
  const result = await replayTypist(s, URI, '', 'Typed key by key: text this model never read, 0123456789.\n');
  const seconds = (Date.now() - started) / 1000;
  const during = s.statuses.length - before;
  assert.ok(result.latenciesMs.length >= 10, `${result.latenciesMs.length} requests`);
  assert.ok(
    during <= Math.ceil(seconds) + 1,
    `${during} statuses over ${result.latenciesMs.length} completions in ${seconds.toFixed(1)} s`,
  );
  assert.ok(
    await until(() => s.statuses.length > before && s.statuses.at(-1)!.latencyMs !== null, 3_000),
    'the latency arrives after the pause',
  );
  await s.shutdown();
});

test('a 1,000-keystroke replay does not grow memory', async () => {
  const s = start({ maxChars: 16 });
  await s.initialize();
  await s.open(URI, '');
  const text = LINE.repeat(30).slice(0, 1000);
  let line = 0;
  let character = 0;
  let rssAfterWarmup = 0;
  for (let i = 0; i < text.length; i++) {
    await s.change(URI, { start: { line, character }, end: { line, character } }, text[i]);
    if (text[i] === '\n') {
      line++;
      character = 0;
    } else {
      character++;
    }
    await s.inline(URI, line, character);
    if (i === 199) rssAfterWarmup = s.rss();
  }
  const growth = s.rss() - rssAfterWarmup;
  assert.ok(growth < 20 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MB over 800 keystrokes`);
  await s.shutdown();
});

test('the LSTM adapts to what is typed when the user pauses, and not without learnWhileTyping', async () => {
  for (const learnWhileTyping of [true, false]) {
    const s = start({ learnWhileTyping });
    await s.initialize();
    await s.open(URI, '');
    await replayTypist(s, URI, '', LINE.repeat(3));
    const adapting = () => s.logs.some((line) => line.startsWith(`Adapting the LSTM to ${URI}`));
    assert.equal(await until(adapting, learnWhileTyping ? 10_000 : 2_000), learnWhileTyping, s.logs.join('\n'));
    assert.match((await s.inline(URI, 3, 0)) ?? '', /^the/, 'and it still completes the line it knows');
    await s.shutdown();
  }
});

test('a document whose saves would not be learnt teaches nothing that is kept beside the model', async () => {
  const dir = join(root, 'kept-out-model');
  cpSync(modelDir, dir, { recursive: true });
  const file = join(dir, CARRIED_MIXING_FILE);
  const keptOut = [
    { settings: { exclude: ['private/**'] }, uri: 'file:///notes/private/diary.md' },
    { settings: {}, uri: 'file:///elsewhere/fox.md' },
    { settings: { learnFromSaves: false }, uri: URI },
  ];
  for (const { settings, uri } of keptOut) {
    const s = start({ modelPath: dir, ...settings }, false, ['file:///notes']);
    await s.initialize();
    await s.open(uri, '');
    await replayTypist(s, uri, '', LINE.repeat(2));
    await s.shutdown();
    assert.equal(existsSync(file), false, `${uri} with ${JSON.stringify(settings)} taught the kept mixing`);
  }
});

test('the mixing that typing taught is kept beside the model when the server ends, and the next server reads it', async () => {
  const dir = join(root, 'carry-model');
  cpSync(modelDir, dir, { recursive: true });
  const file = join(dir, CARRIED_MIXING_FILE);
  const s = start({ modelPath: dir }, false, ['file:///notes']);
  await s.initialize();
  await s.open(URI, '');
  await replayTypist(s, URI, '', LINE.repeat(2));
  const keptWhileTyping = existsSync(file) ? statSync(file).mtimeMs : 0;
  await replayTypist(s, URI, LINE.repeat(2), LINE.repeat(3));
  await s.shutdown();
  assert.ok(existsSync(file) && statSync(file).mtimeMs > keptWhileTyping, 'kept at the end, with what was typed since');

  const restarted = start({ modelPath: dir });
  await restarted.initialize();
  await restarted.open(URI, 'the quick br');
  assert.equal(await restarted.inline(URI, 0, 12), AFTER_BR);
  await restarted.shutdown();
  assert.doesNotMatch(restarted.logs.join('\n'), /carried|could not keep/);

  // A file that cannot be replaced (a directory in its place): said once in the log, and completions go on.
  rmSync(file);
  mkdirSync(join(file, 'in-the-way'), { recursive: true });
  const blocked = start({ modelPath: dir }, false, ['file:///notes']);
  await blocked.initialize();
  await blocked.open(URI, '');
  await replayTypist(blocked, URI, '', LINE.repeat(2));
  await blocked.open('file:///notes/other.md', 'the quick br');
  assert.equal(await blocked.inline('file:///notes/other.md', 0, 12), AFTER_BR);
  await blocked.shutdown();
  const failures = blocked.logs.filter((line) => line.startsWith('could not keep the mixing'));
  assert.equal(failures.length, 1, blocked.logs.join('\n'));
});

test('a note saved in a trusted workspace folder is learnt: its new word completes in another note, and after a restart', async () => {
  const learnDir = join(root, 'learn-model');
  cpSync(modelDir, learnDir, { recursive: true });
  const note = 'file:///notes/today.md';
  const other = 'file:///notes/tomorrow.md';
  const text = 'the quick brown fox met zorbulent. zorbulent jumps over the lazy dog.\n'.repeat(3);
  const suggestAfterZorb = async (s: LspSession) => {
    await s.open(other, 'the zorb');
    const suggestion = await s.inline(other, 0, 8);
    await s.close(other);
    return suggestion ?? '';
  };

  const untrusted = start({ modelPath: learnDir, workspaceTrusted: false }, false, ['file:///notes']);
  await untrusted.initialize();
  await untrusted.open(note, text);
  await untrusted.save(note);
  assert.doesNotMatch(await suggestAfterZorb(untrusted), /^ulent/, 'nothing is learnt in an untrusted workspace');
  await untrusted.shutdown();

  const s = start({ modelPath: learnDir }, false, ['file:///notes']);
  await s.initialize();
  assert.doesNotMatch(await suggestAfterZorb(s), /^ulent/, 'the model has never seen the word');
  await s.open(note, text);
  await s.save(note);
  assert.match(await suggestAfterZorb(s), /^ulent/);
  assert.ok(
    await until(() => readdirSync(learnDir).includes('learned.bin')),
    'what was learnt is kept in the model directory',
  );
  await s.shutdown();

  const restarted = start({ modelPath: learnDir });
  await restarted.initialize();
  assert.match(await suggestAfterZorb(restarted), /^ulent/, 'a name written today completes tomorrow');
  await restarted.shutdown();
});
