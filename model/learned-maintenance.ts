// Rewrites of the learnt-notes log on behalf of the trainer and of forgetting: where the log stood before a retrain,
// the rebase of notes a retrain now counts, the count of learnt characters, and dropping notes from it.
import {
  LearnedFormatError,
  LearntRecord,
  LogPosition,
  readLog,
  rewriteLog,
  setAsideLog,
  sweepTemporaries,
  withLogLock,
} from './learned-log';
import { applyRecord, LOCK_WAIT_MS, noteKey, NoteState, piecesChars, saveRecord } from './learned-records';

/** The trainer waits longer: giving up would leave notes it counted counted twice. */
const TRAINER_LOCK_WAIT_MS = 30_000;

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
