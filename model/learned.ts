// What the server learns from notes saved in the editor, kept in the model directory so that every note learnt counts
// after a reload, a restart or a retrain, and in every server that serves the directory (the log: learned-log.ts).
//
// Each note, known by a hash of its path, has a learnt text: the note as it was last learnt. A save learns only where
// the note now differs from it (learned-diff.ts): the n-grams that end in a changed region, or in the few characters
// after one, are counted, with the characters before it as their context. Counts are only ever added, as in a trained
// n-gram: text deleted from a note, or replaced in it, stays learnt until a retrain on the note counts it afresh, or
// until the learnt text reaches LEARNED_MAX_CHARS and the log is compacted to what the notes hold now.
//
// The log holds text rather than vocabulary ids, so what was learnt outlives a retrain that changes the vocabulary.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { changedRegions, codePointsAfter, codePointsBefore } from './learned-diff';
import {
  appendToLog,
  LearnedFormatError,
  LearntRecord,
  LogPosition,
  LogRead,
  readLog,
  rewriteLog,
  setAsideLog,
  sweepTemporaries,
  withLogLock,
} from './learned-log';
import { NGRAM_MAX_ORDER, type NgramModel } from './ngram';
import { vocabularyHash } from './ngram-format';
import { withoutSecretLines } from './secrets';
import type { Vocabulary } from './vocab';

export { LEARNED_FILE, LearnedFormatError, LearnedLockBusyError } from './learned-log';

/** Learnt characters in the log at most: past this it is compacted, and past it even then nothing more is learnt. */
export const LEARNED_MAX_CHARS = 4_000_000;
/** One saved document larger than this is not learnt: it is not a note but a dump or a log. */
export const LEARNED_MAX_DOCUMENT_CHARS = 1_000_000;
/** Context kept on each side of a change: what the longest n-gram order needs. */
const CONTEXT_CHARS = NGRAM_MAX_ORDER - 1;
/** How long a save waits for another writer; appends hold the lock for moments. */
const LOCK_WAIT_MS = 2_000;
/** The trainer waits longer: giving up would leave notes it counted counted twice. */
const TRAINER_LOCK_WAIT_MS = 30_000;

export type LearnOutcome =
  | {
      /** Characters learnt: those of the changed regions. */
      learnt: number;
      /** Whether the log was rewritten, by this save or another program, so the n-gram must be rebuilt from disk. */
      reload: boolean;
      /** Said once something unusual happened to the log: a compaction, a damaged file set aside. */
      notices: string[];
    }
  | { skipped: string; reload: boolean; notices: string[] };

/** A note as last learnt, and the text of it that a retrain counted, which later saves are learnt against. */
interface NoteState {
  text: string;
  base?: string;
}

interface Piece {
  left: string;
  text: string;
  right: string;
}

/** A note's key: a hash of its real path (or of a URI that is not a file), so the trainer and the server agree on it. */
export function noteKey(pathOrUri: string): string {
  let name = pathOrUri;
  if (path.isAbsolute(pathOrUri) || !/^[a-z][a-z0-9+.-]*:/i.test(pathOrUri)) {
    try {
      name = fs.realpathSync(pathOrUri);
    } catch {
      name = path.resolve(pathOrUri);
    }
  }
  return crypto.createHash('sha256').update(name).digest('hex').slice(0, 32);
}

/** The text as the trainer reads a file: no byte-order mark, LF line ends. */
function normalised(text: string): string {
  return (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).replace(/\r\n?/g, '\n');
}

const codePointLength = (text: string) => {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xdc00 || unit > 0xdfff || i === 0) n++;
  }
  return n;
};

/** A save record of what changed from `before` to `after`, or undefined when nothing did. */
function saveRecord(note: string, before: string, after: string): Extract<LearntRecord, { kind: 'save' }> | undefined {
  const regions = changedRegions(before, after, CONTEXT_CHARS);
  if (regions.length === 0) return undefined;
  return {
    kind: 'save',
    note,
    edits: regions.map((region) => ({
      at: region.at,
      removed: region.removed,
      text: after.slice(region.from, region.to),
      left: after.slice(codePointsBefore(after, region.from, CONTEXT_CHARS), region.from),
      right: after.slice(region.to, codePointsAfter(after, region.to, CONTEXT_CHARS)),
    })),
  };
}

/** Applies a record to the notes' learnt texts; returns the text it counts. */
function applyRecord(notes: Map<string, NoteState>, record: LearntRecord): Piece[] {
  if (record.kind === 'piece') return [{ left: record.left, text: record.text, right: '' }];
  if (record.kind === 'base') {
    notes.set(record.note, { text: record.text, base: record.text });
    return [];
  }
  const state = notes.get(record.note) ?? { text: '' };
  let text = state.text;
  let fits = true;
  // Edits are in ascending order against the text before the save: applied from the last, offsets stay valid.
  for (let i = record.edits.length - 1; i >= 0; i--) {
    const edit = record.edits[i];
    if (edit.at + edit.removed > text.length) fits = false;
    else text = text.slice(0, edit.at) + edit.text + text.slice(edit.at + edit.removed);
  }
  // A save that does not fit what came before it (a log put together by hand) still counts; the next save of the
  // note is then learnt whole.
  if (fits) notes.set(record.note, { text, base: state.base });
  else notes.delete(record.note);
  return record.edits;
}

const piecesChars = (pieces: Piece[]) => pieces.reduce((sum, piece) => sum + codePointLength(piece.text), 0);

export class LearnedNotes {
  private readonly notes = new Map<string, NoteState>();
  private learntChars = 0;
  /** How far into the log this object has applied; undefined before it has seen one. */
  private position: LogPosition | undefined;
  private ngram: NgramModel | undefined;
  /** Pieces read by load() that the n-gram has yet to count. */
  private unreplayed: Piece[] = [];
  private notices: string[] = [];

  private constructor(
    private readonly dir: string,
    private readonly vocabulary: Vocabulary,
  ) {}

  /** Nothing learnt yet in dir: the first save starts the log. */
  static empty(dir: string, vocabulary: Vocabulary): LearnedNotes {
    return new LearnedNotes(dir, vocabulary);
  }

  /** What was learnt in dir. Throws LearnedFormatError when the file there is not a learnt-notes log. */
  static load(dir: string, vocabulary: Vocabulary): LearnedNotes {
    const learned = new LearnedNotes(dir, vocabulary);
    let read = readLog(dir);
    if (read && 'legacy' in read) {
      try {
        read = withLogLock(dir, LOCK_WAIT_MS, () => learned.readUnderLock());
      } catch (error) {
        // Converted by the first save instead; until then what it holds is not counted.
        learned.notices.push(`the notes learnt in ${dir} are not counted yet: ${(error as Error).message}`);
        read = null;
      }
    }
    if (read) {
      for (const { record } of read.records) learned.unreplayed.push(...learned.apply(record));
      learned.position = read.position;
      learned.noteSkipped(read);
    }
    return learned;
  }

  /** Characters learnt, as the log holds them. */
  get chars(): number {
    return this.learntChars;
  }

  /** What happened to the log that the user should hear of, once; emptied by reading. */
  takeNotices(): string[] {
    const notices = this.notices;
    this.notices = [];
    return notices;
  }

  /** Counts what was loaded in the n-gram, which then also counts every note learnt or read later. */
  replayInto(ngram: NgramModel): void {
    this.ngram = ngram;
    this.count(this.unreplayed);
    this.unreplayed = [];
  }

  /**
   * Learns a saved note (key from noteKey) and appends what it learnt to the log, durably, before returning. Throws
   * when it cannot be written (a full disk, a lock another program keeps): nothing was learnt then, and the same call
   * can be made again later.
   */
  learn(note: string, savedText: string): LearnOutcome {
    // A line that looks like a secret is never learnt, as the trainer never reads one.
    const text = withoutSecretLines(normalised(savedText)).text;
    const length = codePointLength(text);
    if (length > LEARNED_MAX_DOCUMENT_CHARS)
      return {
        skipped: `it has ${length.toLocaleString('en-US')} characters, over the limit of ${LEARNED_MAX_DOCUMENT_CHARS.toLocaleString('en-US')} for one note`,
        reload: false,
        notices: this.takeNotices(),
      };
    const outcome = withLogLock(this.dir, LOCK_WAIT_MS, () => {
      sweepTemporaries(this.dir);
      let read = this.readUnderLock();
      const reload = read.replaced;
      this.catchUpWith(read);
      const state = this.notes.get(note);
      const record = saveRecord(note, state?.text ?? '', text);
      if (!record) return { learnt: 0, reload };
      const fresh = piecesChars(record.edits);
      if (this.learntChars + fresh > LEARNED_MAX_CHARS) {
        read = this.compact();
        if (this.learntChars + fresh > LEARNED_MAX_CHARS)
          return {
            skipped: `the notes learnt since training hold ${this.learntChars.toLocaleString('en-US')} characters even with what was deleted from them left out, and at most ${LEARNED_MAX_CHARS.toLocaleString('en-US')} are kept; retrain on your notes to learn more`,
            reload: true,
          };
      }
      this.position = appendToLog(this.dir, read.position, [record]);
      this.count(this.apply(record));
      return { learnt: fresh, reload: reload || read.replaced };
    });
    return { ...outcome, notices: this.takeNotices() };
  }

  /**
   * Reads what other programs appended to the log since and counts it. 'replaced' when the log was rewritten (a
   * retrain, a compaction) or removed: the n-gram must then be rebuilt from disk.
   */
  catchUp(): { applied: number } | 'replaced' {
    let read: ReturnType<typeof readLog>;
    try {
      read = readLog(this.dir, this.position);
    } catch {
      // A damaged log is set aside by the next save; until then what was read stays counted.
      return { applied: 0 };
    }
    if (!read) return this.position ? 'replaced' : { applied: 0 };
    if ('legacy' in read) return { applied: 0 };
    if (read.replaced) return 'replaced';
    this.catchUpWith(read);
    return { applied: read.records.length };
  }

  private noteSkipped(read: LogRead): void {
    if (read.skipped > 0)
      this.notices.push(
        `${read.skipped} of the saves learnt in ${this.dir} ${read.skipped === 1 ? 'was' : 'were'} damaged on disk and ${read.skipped === 1 ? 'is' : 'are'} left out; the notes are learnt again as you save them`,
      );
  }

  private catchUpWith(read: LogRead): void {
    this.noteSkipped(read);
    if (read.replaced) {
      // The n-gram is rebuilt by a reload; the learnt texts must be right for this save already.
      this.notes.clear();
      this.learntChars = 0;
      for (const { record } of read.records) this.apply(record);
    } else {
      for (const { record } of read.records) this.count(this.apply(record));
    }
    this.position = read.position;
  }

  private apply(record: LearntRecord): Piece[] {
    const pieces = applyRecord(this.notes, record);
    this.learntChars += piecesChars(pieces);
    return pieces;
  }

  private count(pieces: Piece[]): void {
    const ngram = this.ngram;
    if (!ngram) return;
    const context = ngram.order - 1;
    for (const piece of pieces) {
      const left = this.vocabulary.encode(piece.left);
      const kept = left.subarray(Math.max(0, left.length - context));
      const text = this.vocabulary.encode(piece.text);
      const right = this.vocabulary.encode(piece.right).subarray(0, context);
      if (text.length + right.length === 0) continue;
      const ids = new Int32Array(kept.length + text.length + right.length);
      ids.set(kept);
      ids.set(text, kept.length);
      ids.set(right, kept.length + text.length);
      ngram.add(ids, kept.length);
    }
  }

  /**
   * Under the lock: the log as it is now, from this object's position on, made fit to append to: created when
   * missing, converted from the first version, and a damaged one set aside with its intact records carried over.
   */
  private readUnderLock(): LogRead {
    let read: ReturnType<typeof readLog>;
    try {
      read = readLog(this.dir, this.position);
    } catch (error) {
      if (!(error instanceof LearnedFormatError)) throw error;
      const aside = setAsideLog(this.dir);
      this.notices.push(`${error.message}; it was renamed ${aside} and learning starts a new one`);
      read = null;
    }
    if (read && 'legacy' in read) return this.convertLegacy(read.legacy);
    if (!read) return this.started([]);
    if (read.trailing !== 'damaged') return read;
    const whole = readLog(this.dir) as LogRead;
    const aside = setAsideLog(this.dir);
    this.notices.push(
      `the notes learnt in ${this.dir} were damaged after their ${whole.records.length} first saves; those are kept, and the damaged file was renamed ${aside}`,
    );
    return this.started(whole.records.map(({ record }) => record));
  }

  /** A new log of these records, read as one whose every record this object has yet to apply. */
  private started(records: LearntRecord[]): LogRead {
    const replaced = this.position !== undefined;
    const position = rewriteLog(this.dir, records);
    return {
      position,
      records: records.map((record) => ({ record, offset: 0 })),
      trailing: 'none',
      replaced,
      skipped: 0,
    };
  }

  /** The first version held vocabulary ids with their context, and no note's text: its pieces carry over as text. */
  private convertLegacy(bytes: Buffer): LogRead {
    const pieces = legacyPieces(bytes, this.vocabulary);
    if (!pieces) {
      const aside = setAsideLog(this.dir);
      this.notices.push(
        `the notes learnt in ${this.dir} were learnt for another vocabulary and cannot be counted; the file was renamed ${aside}`,
      );
      return this.started([]);
    }
    return this.started(pieces.map((piece) => ({ kind: 'piece', left: piece.left, text: piece.text })));
  }

  /**
   * Under the lock: the log rewritten as what each note holds now, so text deleted from notes (and what the first
   * version of the file held, which belongs to no note) no longer counts.
   */
  private compact(): LogRead {
    const records: LearntRecord[] = [];
    for (const [note, state] of this.notes) {
      if (state.base !== undefined) records.push({ kind: 'base', note, text: state.base });
      const save = saveRecord(note, state.base ?? '', state.text);
      if (save) records.push(save);
    }
    const before = this.learntChars;
    const position = rewriteLog(this.dir, records);
    this.notes.clear();
    this.learntChars = 0;
    for (const record of records) this.apply(record);
    this.position = position;
    this.notices.push(
      `The notes learnt since training reached ${before.toLocaleString('en-US')} characters, near the limit of ${LEARNED_MAX_CHARS.toLocaleString('en-US')}: they were compacted to ${this.learntChars.toLocaleString('en-US')} by forgetting text since deleted from them. Retrain on your notes to fold them into the model.`,
    );
    return { position, records: [], trailing: 'none', replaced: true, skipped: 0 };
  }
}

/** The pieces of a file of the first version, as text; undefined when it was learnt for another vocabulary. */
function legacyPieces(bytes: Buffer, vocabulary: Vocabulary): Piece[] | undefined {
  const headerBytes = bytes.readUInt32LE(0);
  let header: { vocabularySha256?: unknown; pieces?: Array<{ from: number; length: number }> };
  try {
    header = JSON.parse(bytes.toString('utf8', 4, 4 + headerBytes));
  } catch {
    return undefined;
  }
  if (header.vocabularySha256 !== vocabularyHash(vocabulary) || !Array.isArray(header.pieces)) return undefined;
  const start = Math.ceil((4 + headerBytes) / 4) * 4;
  const pieces: Piece[] = [];
  let offset = start;
  for (const { from, length } of header.pieces) {
    if (!Number.isInteger(from) || !Number.isInteger(length) || from < 0 || from > length) return undefined;
    if (offset + 4 * length > bytes.length) return undefined;
    const ids = new Int32Array(length);
    for (let i = 0; i < length; i++) ids[i] = bytes.readInt32LE(offset + 4 * i);
    offset += 4 * length;
    if (ids.some((id) => id < 0 || id >= vocabulary.size)) return undefined;
    pieces.push({
      left: vocabulary.decode(ids.subarray(0, from)),
      text: vocabulary.decode(ids.subarray(from)),
      right: '',
    });
  }
  return pieces;
}

/** Where the learnt notes stand: the trainer takes this before it reads its corpus, so later records are notes saved since. */
export function learnedNotesMark(dir: string): LogPosition | undefined {
  try {
    const read = readLog(dir);
    return read && 'position' in read ? read.position : undefined;
  } catch {
    return undefined;
  }
}

/**
 * After a retrain has saved its n-gram: each learnt note that the n-gram now counts (a document of the corpus for
 * which countedInModel holds) is rebased on the text the trainer read, so it is not counted twice; what was learnt
 * of it after `mark` (saved while the trainer ran) is learnt again against that text, and every other note stays as
 * it was. Returns a line for the trainer's output, or undefined when no learnt note was in the corpus.
 */
export function rebaseLearnedNotes(
  dir: string,
  mark: LogPosition | undefined,
  corpus: Array<{ path: string; text: string }>,
  countedInModel: (text: string) => boolean,
): string | undefined {
  return withLogLock(dir, TRAINER_LOCK_WAIT_MS, () => {
    sweepTemporaries(dir);
    const read = readLog(dir);
    // A log of the first version is converted by the server, which has its vocabulary.
    if (!read || 'legacy' in read) return undefined;
    const savedAfterMark = new Set<string>();
    const notes = new Map<string, NoteState>();
    for (const { record, offset } of read.records) {
      applyRecord(notes, record);
      const afterMark = !mark || mark.epoch !== read.position.epoch || offset >= mark.end;
      if (record.kind === 'save' && afterMark) savedAfterMark.add(record.note);
    }
    const corpusTexts = new Map(corpus.map((document) => [noteKey(document.path), document.text]));
    const rebased = new Map<string, string>();
    for (const note of notes.keys()) {
      const text = corpusTexts.get(note);
      if (text !== undefined && countedInModel(text)) rebased.set(note, text);
    }
    if (rebased.size === 0) return undefined;
    const records: LearntRecord[] = [];
    const done = new Set<string>();
    for (const { record } of read.records) {
      if (record.kind === 'piece' || !rebased.has(record.note)) records.push(record);
      else if (!done.has(record.note)) {
        done.add(record.note);
        const base = rebased.get(record.note)!;
        records.push({ kind: 'base', note: record.note, text: base });
        const since = savedAfterMark.has(record.note) && saveRecord(record.note, base, notes.get(record.note)!.text);
        if (since) records.push(since);
      }
    }
    rewriteLog(dir, records);
    const kept = notes.size - rebased.size;
    const savedWhileTraining = [...rebased.keys()].filter((note) => savedAfterMark.has(note)).length;
    return `Notes learnt from saves: ${rebased.size} now counted by this n-gram (${savedWhileTraining} saved while it trained, whose changes stay learnt); ${kept} more, outside what it counted, stay learnt`;
  });
}

/**
 * rebaseLearnedNotes for the trainer, which must not fail for it: a note is counted by the new n-gram when its whole
 * text is in the text the n-gram was built from. Returns a line for the trainer's output, or undefined.
 */
export function foldLearnedNotes(
  dir: string,
  mark: LogPosition | undefined,
  corpus: Array<{ path: string; text: string }>,
  trainingText: () => string,
): string | undefined {
  let text: string | undefined;
  try {
    return rebaseLearnedNotes(dir, mark, corpus, (note) => (text ??= trainingText()).includes(note));
  } catch (error) {
    return `The notes learnt from saves were kept as they were, some now counted twice (${(error as Error).message})`;
  }
}

/** Characters learnt from saves in dir, as a server would count them; 0 without a log or for one of the first version. */
export function learnedChars(dir: string): number {
  let read: ReturnType<typeof readLog>;
  try {
    read = readLog(dir);
  } catch {
    return 0;
  }
  if (!read || 'legacy' in read) return 0;
  const notes = new Map<string, NoteState>();
  return read.records.reduce((sum, { record }) => sum + piecesChars(applyRecord(notes, record)), 0);
}

/**
 * Drops what was learnt from saves of the given notes (keys from noteKey), or of every note, from the log, which is
 * rewritten without them under the lock: servers on the directory then rebuild their n-gram without that text. A note
 * the trainer counted stays in ngram.bin; only a retrain without it forgets it there.
 */
export function forgetLearnedNotes(dir: string, which: 'all' | ReadonlySet<string>): { notes: number; chars: number } {
  return withLogLock(dir, LOCK_WAIT_MS, () => {
    sweepTemporaries(dir);
    let read: ReturnType<typeof readLog>;
    try {
      read = readLog(dir);
    } catch (error) {
      if (!(error instanceof LearnedFormatError) || which !== 'all') throw error;
      // A damaged log holds nothing anyone could still want forgotten one note at a time.
      setAsideLog(dir);
      return { notes: 0, chars: 0 };
    }
    if (!read) return { notes: 0, chars: 0 };
    if ('legacy' in read) {
      if (which !== 'all') return { notes: 0, chars: 0 };
      rewriteLog(dir, []);
      return { notes: 0, chars: Math.floor(read.legacy.length / 4) };
    }
    const forgotten = (record: LearntRecord) => which === 'all' || (record.kind !== 'piece' && which.has(record.note));
    const dropped = new Map<string, NoteState>();
    const notes = new Set<string>();
    let chars = 0;
    const kept: LearntRecord[] = [];
    for (const { record } of read.records) {
      if (!forgotten(record)) kept.push(record);
      else {
        if (record.kind !== 'piece') notes.add(record.note);
        chars += piecesChars(applyRecord(dropped, record));
      }
    }
    if (kept.length < read.records.length) rewriteLog(dir, kept);
    return { notes: notes.size, chars };
  });
}
