// Notes learnt from saves, in process: what a save learns (the changed regions), the log that keeps it (appends that
// survive a crash mid-write, several writers, a damaged or old file, the cap) and what a retrain does with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  LearnedFormatError,
  LearnedNotes,
  LEARNED_FILE,
  LEARNED_MAX_CHARS,
  LEARNED_MAX_DOCUMENT_CHARS,
  learnedNotesMark,
  noteKey,
  rebaseLearnedNotes,
} from '../model/learned';
import { changedRegions } from '../model/learned-diff';
import { LEARNED_LOCK_FILE, readLog } from '../model/learned-log';
import { NgramModel } from '../model/ngram';
import { vocabularyHash } from '../model/ngram-format';
import { Vocabulary } from '../model/vocab';
import { tempModelDir } from './support/temp-dirs';

const vocabulary = Vocabulary.fromText('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,\n😀', 100);
const NOTE = noteKey('/notes/a.md');

function freshDir(): string {
  const dir = tempModelDir('char-learned');
  mkdirSync(dir);
  return dir;
}

function baseNgram(): NgramModel {
  const ngram = new NgramModel(vocabulary.size);
  ngram.add(vocabulary.encode('plain old notes.\n'));
  return ngram;
}

/** Notes learnt in dir, counted on top of the base n-gram. */
function loaded(dir: string): { learned: LearnedNotes; ngram: NgramModel } {
  const ngram = baseNgram();
  const learned = LearnedNotes.load(dir, vocabulary);
  learned.replayInto(ngram);
  return { learned, ngram };
}

function probability(ngram: NgramModel, context: string, next: string): number {
  const out = new Float32Array(vocabulary.size);
  ngram.distribution(vocabulary.encode(context), out);
  return out[vocabulary.id(next)];
}

function assertSameDistributions(a: NgramModel, b: NgramModel, contexts: string[]): void {
  const x = new Float32Array(vocabulary.size);
  const y = new Float32Array(vocabulary.size);
  for (const context of contexts) {
    a.distribution(vocabulary.encode(context), x);
    b.distribution(vocabulary.encode(context), y);
    assert.deepEqual(Array.from(y), Array.from(x), `same probabilities after "${context}"`);
  }
}

const learnt = (outcome: ReturnType<LearnedNotes['learn']>) => {
  assert.ok('learnt' in outcome, `learnt, not skipped: ${JSON.stringify(outcome)}`);
  return outcome.learnt;
};

/** A pid that is certainly not running: a child that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid;

test('changed regions: an edit in the middle is that edit, distant edits stay apart, near ones merge, pairs stay whole', () => {
  const long = Array.from({ length: 200 }, (_, i) => `line ${i} of a long note about nothing much.\n`).join('');
  assert.deepEqual(changedRegions(long, long, 15), []);
  const appended = long + 'one more line.\n';
  assert.deepEqual(changedRegions(long, appended, 15), [
    { at: long.length, removed: 0, from: long.length, to: appended.length },
  ]);
  const middle = long.indexOf('line 100 ');
  const edited = long.slice(0, middle) + 'NEW ' + long.slice(middle);
  assert.deepEqual(changedRegions(long, edited, 15), [{ at: middle, removed: 0, from: middle, to: middle + 4 }]);

  // A word replaced near the top and a line appended: two regions, neither spanning the note.
  const top = long.indexOf('long');
  const both = long.slice(0, top) + 'short' + long.slice(top + 4) + 'the end.\n';
  const regions = changedRegions(long, both, 15);
  assert.equal(regions.length, 2);
  assert.equal(both.slice(regions[0].from, regions[0].to), 'short');
  assert.equal(both.slice(regions[1].from, regions[1].to), 'the end.\n');

  const close = changedRegions('aaaa bbbb cccc dddd', 'aaaa XXXX cccc YYYY', 15);
  assert.deepEqual(close, [{ at: 5, removed: 14, from: 5, to: 19 }], 'regions closer than the context merge');

  const deleted = changedRegions(long, long.slice(0, middle) + long.slice(middle + 10), 15);
  assert.deepEqual(deleted, [{ at: middle, removed: 10, from: middle, to: middle }]);

  // 😀 and 😃 share their high surrogate: the region still starts at the pair.
  const emoji = changedRegions('say 😀 now', 'say 😃 now', 15);
  assert.deepEqual(emoji, [{ at: 4, removed: 2, from: 4, to: 6 }]);

  const rewritten = Array.from({ length: 3000 }, (_, i) => `other ${i}\n`).join('');
  // Both end in a newline, which is left out of the one region.
  assert.deepEqual(changedRegions(long, rewritten, 15), [
    { at: 0, removed: long.length - 1, from: 0, to: rewritten.length - 1 },
  ]);
});

test('a save is learnt, written at once, and counts the same after a load; only what changed is learnt again', () => {
  const dir = freshDir();
  const { learned, ngram } = loaded(dir);
  const before = probability(ngram, 'Quorv', 'e');
  assert.equal(learnt(learned.learn(NOTE, 'Met Quorvex today. Quorvex said hi.\n')), 36);
  assert.ok(probability(ngram, 'Quorv', 'e') > before + 0.3, 'learning moves the n-gram');
  assert.ok(statSync(join(dir, LEARNED_FILE)).size > 36, 'on disk before learn returns');
  assert.equal(
    learnt(learned.learn(NOTE, 'Met Quorvex today. Quorvex said hi.\nMore.\n')),
    6,
    'only the appended text',
  );
  assert.equal(learnt(learned.learn(NOTE, 'Met Quorvex today. Quorvex said hi.\nMore.\n')), 0);
  // "today" became "yesterday": "to" is replaced by "yester".
  assert.equal(learnt(learned.learn(NOTE, 'Met Quorvex yesterday. Quorvex said hi.\nMore.\n')), 6, 'only the edit');
  assert.equal(learnt(learned.learn(NOTE, 'Met Quorvex. Quorvex said hi.\nMore.\n')), 0, 'a deletion adds no text');
  // Windows line ends and a byte-order mark are what the trainer reads: not a change.
  assert.equal(learnt(learned.learn(NOTE, '\ufeffMet Quorvex. Quorvex said hi.\r\nMore.\r\n')), 0);

  const again = loaded(dir);
  assertSameDistributions(ngram, again.ngram, ['Quorv', 'Met Quorvex y', 'More', 'xx', '']);
  assert.equal(again.learned.chars, learned.chars);
  assert.equal(
    learnt(again.learned.learn(NOTE, 'Met Quorvex. Quorvex said hi.\nMore.\n')),
    0,
    'the learnt text is kept',
  );

  const huge = 'x'.repeat(LEARNED_MAX_DOCUMENT_CHARS + 1);
  assert.match(
    (learned.learn(noteKey('/notes/huge.md'), huge) as { skipped: string }).skipped,
    /over the limit/,
    'a huge document is not learnt',
  );
});

test('two writers on one directory: both notes are kept, and each picks up the other’s', () => {
  const dir = freshDir();
  const one = loaded(dir);
  const two = loaded(dir);
  learnt(one.learned.learn(noteKey('/notes/one.md'), 'Zyxtrel was here.\n'));
  learnt(two.learned.learn(noteKey('/notes/two.md'), 'Vormung was there.\n'));
  learnt(one.learned.learn(noteKey('/notes/one.md'), 'Zyxtrel was here.\nAnd Zyxtrel left.\n'));
  // Each caught up with the other before it wrote; the second has yet to read the first's last save.
  assert.deepEqual(one.learned.catchUp(), { applied: 0 });
  assert.deepEqual(two.learned.catchUp(), { applied: 1 });
  assert.ok(probability(one.ngram, 'Vormu', 'n') > 0.5);
  assert.ok(probability(two.ngram, 'Zyxtr', 'e') > 0.5);
  const fresh = loaded(dir);
  assertSameDistributions(one.ngram, fresh.ngram, ['Zyxtr', 'Vormu', 'And Z', ' was ']);
  assertSameDistributions(two.ngram, fresh.ngram, ['Zyxtr', 'Vormu', 'And Z', ' was ']);
});

test('a record cut short by a crash is ignored and then cut off; a temporary file or lock left by a dead writer is removed', () => {
  const dir = freshDir();
  const { learned, ngram } = loaded(dir);
  learnt(learned.learn(NOTE, 'Glimmerquist is a word.\n'));
  const intact = statSync(join(dir, LEARNED_FILE)).size;
  // The start of a frame whose payload never arrived.
  appendFileSync(join(dir, LEARNED_FILE), Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 123, 34]));
  const dead = deadPid();
  const leftover = join(dir, `${LEARNED_FILE}.tmp-${dead}-0123456789ab`);
  writeFileSync(leftover, 'half a log');
  const old = join(dir, `${LEARNED_FILE}.tmp-1-abcdef`);
  writeFileSync(old, 'an old one');
  utimesSync(old, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
  writeFileSync(join(dir, LEARNED_LOCK_FILE), JSON.stringify({ pid: dead, host: hostname(), started: '' }));
  const reader = loaded(dir);
  assertSameDistributions(ngram, reader.ngram, ['Glimm', 'a wo']);

  learnt(learned.learn(noteKey('/notes/b.md'), 'Brastifold too.\n'));
  assert.ok(statSync(join(dir, LEARNED_FILE)).size > intact);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.startsWith(`${LEARNED_FILE}.tmp-`) || name === LEARNED_LOCK_FILE),
    [],
    'temporaries and the lock of dead writers are gone',
  );
  assert.deepEqual(reader.learned.catchUp(), { applied: 1 }, 'the torn record was cut off, not read');
  assertSameDistributions(ngram, reader.ngram, ['Glimm', 'Brast', 'a wo']);
  assertSameDistributions(ngram, loaded(dir).ngram, ['Glimm', 'Brast', 'a wo']);
});

test('a damaged record is passed over, a log damaged past that is set aside, a file that is no log is refused and set aside', () => {
  const dir = freshDir();
  const { learned } = loaded(dir);
  learnt(learned.learn(noteKey('/notes/a.md'), 'Quillibrant one.\n'));
  learnt(learned.learn(noteKey('/notes/b.md'), 'Snorvelty two.\n'));
  const bytes = readFileSync(join(dir, LEARNED_FILE));
  const first = bytes.indexOf('Quillibrant');
  const damaged = Buffer.from(bytes);
  damaged[first] ^= 0x20;
  writeFileSync(join(dir, LEARNED_FILE), damaged);
  const passedOver = LearnedNotes.load(dir, vocabulary);
  passedOver.replayInto(baseNgram());
  assert.equal(passedOver.chars, 'Snorvelty two.\n'.length, 'the record after the damaged one still counts');
  assert.match(passedOver.takeNotices().join(), /1 of the saves .* damaged/);

  // A damaged length: where the next record starts is lost.
  const frameStart = bytes.lastIndexOf(Buffer.from('{"kind"'), first) - 8;
  damaged.writeUInt32LE(0xfffffff0, frameStart);
  writeFileSync(join(dir, LEARNED_FILE), damaged);
  const reader = loaded(dir);
  assert.equal(reader.learned.chars, 0);
  const outcome = reader.learned.learn(noteKey('/notes/c.md'), 'Trombulate three.\n');
  assert.ok('learnt' in outcome && outcome.notices.some((notice) => /damaged file was renamed/.test(notice)));
  assert.equal(readdirSync(dir).filter((name) => name.startsWith(`${LEARNED_FILE}.damaged-`)).length, 1);
  assert.ok(probability(loaded(dir).ngram, 'Tromb', 'u') > 0.5, 'learning goes on');

  writeFileSync(join(dir, LEARNED_FILE), 'not a learnt-notes file');
  assert.throws(() => LearnedNotes.load(dir, vocabulary), LearnedFormatError);
  const empty = LearnedNotes.empty(dir, vocabulary);
  const fresh = empty.learn(NOTE, 'Wibblethorp four.\n');
  assert.ok('learnt' in fresh && fresh.notices.some((notice) => /renamed/.test(notice)), JSON.stringify(fresh));
  assert.ok(probability(loaded(dir).ngram, 'Wibbl', 'e') > 0.5);
});

test('the first version of the file is carried over as text', () => {
  const dir = freshDir();
  const ids = vocabulary.encode('Met Plorvane today.\n');
  const header = Buffer.from(
    JSON.stringify({
      format: 'char-learned',
      formatVersion: 1,
      vocabularySha256: vocabularyHash(vocabulary),
      pieces: [{ from: 0, length: ids.length }],
      documents: {},
    }),
  );
  const start = Math.ceil((4 + header.length) / 4) * 4;
  const bytes = Buffer.alloc(start + 4 * ids.length, 0x20);
  bytes.writeUInt32LE(header.length, 0);
  header.copy(bytes, 4);
  ids.forEach((id, i) => bytes.writeInt32LE(id, start + 4 * i));
  writeFileSync(join(dir, LEARNED_FILE), bytes);
  const { ngram } = loaded(dir);
  const expected = baseNgram();
  expected.add(ids);
  assertSameDistributions(expected, ngram, ['Plorv', 'Met ', '']);
  // Byte 4 held the first version's header; in the current format it is a checksum's, which can be any byte.
  const rewritten = readLog(dir);
  assert.ok(rewritten && !('legacy' in rewritten), 'rewritten in the current format');
  assertSameDistributions(expected, loaded(dir).ngram, ['Plorv', 'Met ', '']);
});

test('at the cap the log is compacted to what the notes hold now, and learning goes on', () => {
  const dir = freshDir();
  const learned = LearnedNotes.empty(dir, vocabulary);
  const line = (i: number, word: string) => `${word} ${i} goes on and on about things.\n`;
  const note = (word: string) => Array.from({ length: 20_000 }, (_, i) => line(i, word)).join('');
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];
  let notices: string[] = [];
  let rewritten = false;
  for (const word of words) {
    const outcome = learned.learn(NOTE, note(word));
    assert.ok('learnt' in outcome, JSON.stringify(outcome));
    notices = notices.concat(outcome.notices);
    rewritten ||= outcome.reload;
    assert.ok(learned.chars <= LEARNED_MAX_CHARS);
  }
  assert.ok(rewritten, 'the server is told to rebuild its n-gram');
  assert.ok(notices.length > 0 && notices.every((notice) => /compacted/.test(notice)), notices.join('\n'));
  const last = note('hotel').length;
  assert.ok(learned.chars < 3 * last, `${learned.chars} characters learnt for a note of ${last}`);
  assert.equal(learnt(LearnedNotes.load(dir, vocabulary).learn(NOTE, note('hotel'))), 0);
});

test('a retrain rebases the notes it counted, keeps those saved while it trained and those from elsewhere', () => {
  const dir = freshDir();
  const notes = join(dir, '..', 'notes');
  mkdirSync(notes);
  const inCorpus = join(notes, 'in.md');
  const savedLater = join(notes, 'later.md');
  const elsewhere = '/elsewhere/out.md';
  const { learned } = loaded(dir);
  learnt(learned.learn(noteKey(inCorpus), 'Frobisher counted.\n'));
  learnt(learned.learn(noteKey(savedLater), 'Grumwald first.\n'));
  learnt(learned.learn(noteKey(elsewhere), 'Hexapod elsewhere.\n'));
  const mark = learnedNotesMark(dir);
  // Saved after the trainer read its corpus.
  learnt(learned.learn(noteKey(savedLater), 'Grumwald first.\nJoltrane after.\n'));
  const corpus = [
    { path: inCorpus, text: 'Frobisher counted.\n' },
    { path: savedLater, text: 'Grumwald first.\n' },
  ];
  const trainingText = corpus.map((document) => document.text).join('\n\n');
  const said = rebaseLearnedNotes(dir, mark, corpus, (text) => trainingText.includes(text));
  assert.match(said ?? '', /2 now counted .*1 saved while it trained.*1 more, outside what it counted, stay learnt/);

  // The retrained n-gram counts the corpus; the log adds only what it lacks.
  const retrained = new NgramModel(vocabulary.size);
  retrained.add(vocabulary.encode(trainingText));
  const served = LearnedNotes.load(dir, vocabulary);
  served.replayInto(retrained);
  assert.ok(probability(retrained, 'Joltr', 'a') > 0.5, 'saved while training: still learnt');
  assert.ok(probability(retrained, 'Hexap', 'o') > 0.5, 'from outside the corpus: still learnt');
  assert.equal(
    served.chars,
    'Joltrane after.\n'.length + 'Hexapod elsewhere.\n'.length,
    'what the corpus holds is not counted twice',
  );
  assert.equal(learnt(served.learn(noteKey(inCorpus), 'Frobisher counted.\n')), 0, 'the counted text is the base');
});
