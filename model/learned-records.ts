// The learnt notes as records replay them: each note's learnt text, what a save record changes in it, and the key a
// note is known by, shared by the server's LearnedNotes and the trainer's and forgetting's rewrites of the log.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { changedRegions, codePointsAfter, codePointsBefore } from './learned-diff';
import type { LearntRecord } from './learned-log';
import { NGRAM_MAX_ORDER } from './ngram';
import { codePointLength } from './vocab';

/** How long a save or a rewrite waits for another writer; appends hold the lock for moments. */
export const LOCK_WAIT_MS = 2_000;
/** Context kept on each side of a change: what the longest n-gram order needs. */
const CONTEXT_CHARS = NGRAM_MAX_ORDER - 1;

/** A note as last learnt, and the text of it that a retrain counted, which later saves are learnt against. */
export interface NoteState {
  text: string;
  base?: string;
}

export interface Piece {
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

/** A save record of what changed from `before` to `after`, or undefined when nothing did. */
export function saveRecord(
  note: string,
  before: string,
  after: string,
): Extract<LearntRecord, { kind: 'save' }> | undefined {
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
export function applyRecord(notes: Map<string, NoteState>, record: LearntRecord): Piece[] {
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

export const piecesChars = (pieces: Piece[]) => pieces.reduce((sum, piece) => sum + codePointLength(piece.text), 0);
