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
import { type NotesReaders, readNotes } from './notes-text';
import type { NgramModel } from './ngram';
import { applyRecord, LOCK_WAIT_MS, NoteState, Piece, piecesChars, saveRecord } from './learned-records';
import { vocabularyHash } from './ngram-format';
import { withoutSecretLines } from './secrets';
import { asNotesText, codePointLength, type Vocabulary } from './vocab';

export { LEARNED_FILE, LearnedFormatError, LearnedLockBusyError } from './learned-log';
export { noteKey } from './learned-records';
export {
  foldLearnedNotes,
  forgetLearnedNotes,
  learnedChars,
  learnedNotesMark,
  rebaseLearnedNotes,
} from './learned-maintenance';

/** Learnt characters in the log at most: past this it is compacted, and past it even then nothing more is learnt. */
export const LEARNED_MAX_CHARS = 4_000_000;
/** One saved document larger than this is not learnt: it is not a note but a dump or a log. */
export const LEARNED_MAX_DOCUMENT_CHARS = 1_000_000;

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

export class LearnedNotes {
  private readonly notes = new Map<string, NoteState>();
  private learntChars = 0;
  /** How far into the log this object has applied; undefined before it has seen one. */
  private position: LogPosition | undefined;
  private ngram: NgramModel | undefined;
  private readers: NotesReaders | undefined;
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

  /**
   * What dir learnt, as load() reads it; when the file there is not a learnt-notes log, nothing learnt and why, so
   * that the model is served without it.
   */
  static loadOrEmpty(dir: string, vocabulary: Vocabulary): { learned: LearnedNotes; unreadable?: string } {
    try {
      return { learned: LearnedNotes.load(dir, vocabulary) };
    } catch (error) {
      if (!(error instanceof LearnedFormatError)) throw error;
      return { learned: LearnedNotes.empty(dir, vocabulary), unreadable: error.message };
    }
  }

  /** Characters learnt, as the log holds them. */
  get chars(): number {
    return this.learntChars;
  }

  /** Whether `text` occurs in a note as it was last learnt. */
  holds(text: string): boolean {
    const wanted = asNotesText(text);
    for (const note of this.notes.values()) if (note.text.includes(wanted)) return true;
    return false;
  }

  /** What happened to the log that the user should hear of, once; emptied by reading. */
  takeNotices(): string[] {
    const notices = this.notices;
    this.notices = [];
    return notices;
  }

  /**
   * Counts what was loaded in the n-gram, which then also counts every note learnt or read later;
   * and appends it to the models that read the notes' text, when there are, so that repeats of it are followed.
   */
  replayInto(ngram: NgramModel, readers?: NotesReaders): void {
    this.ngram = ngram;
    this.readers = readers;
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
    const text = withoutSecretLines(asNotesText(savedText)).text;
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
      if (this.readers) readNotes(this.readers, ids);
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
