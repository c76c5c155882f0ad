// The training notes as plain text beside the model, for the match model: the n-gram of the notes keeps contexts of at
// most its order, so only the text itself can follow a repeat (a licence, a template, a long command) to its end.
import * as path from 'node:path';
import { ModelFormatError, readRegularFile, replaceAtomically } from './files';
import { MatchModel } from './match-model';
import type { Vocabulary } from './vocab';
import { characterClasses } from './online-mixer';
import { WordModel } from './word-model';

export const NOTES_TEXT_FILE = 'notes.txt';
/** Larger than any notes a model is trained on in minutes; a bigger file is not this program's. */
const MAX_NOTES_TEXT_BYTES = 512 * 1024 * 1024;
/** The notes' match index: a few million positions, so more hash bits than a document's. */
const NOTES_HASH_BITS = 22;

/** An empty match model sized for notes. */
const notesMatchModel = (): MatchModel => new MatchModel(NOTES_HASH_BITS);
/** An empty word model sized for notes. */
const notesWordModel = (vocabulary: Vocabulary): WordModel => new WordModel(characterClasses(vocabulary), 16);

/** What reads the notes' text itself: the match model, which follows its repeats, and the word model. */
export interface NotesReaders {
  match: MatchModel;
  words: WordModel;
}

export const emptyNotesReaders = (vocabulary: Vocabulary): NotesReaders => ({
  match: notesMatchModel(),
  words: notesWordModel(vocabulary),
});

/** Writes the text the model was trained on, atomically, so a reader sees the old file or the new one. */
export function saveNotesText(dir: string, text: string): void {
  replaceAtomically(dir, `.${NOTES_TEXT_FILE}.tmp`, NOTES_TEXT_FILE, text);
}

/** The match and word models over the notes in `dir`, or undefined when the model has no notes text (trained before it was kept). */
export function loadNotesReaders(dir: string, vocabulary: Vocabulary): NotesReaders | undefined {
  const bytes = readRegularFile(
    path.join(dir, NOTES_TEXT_FILE),
    MAX_NOTES_TEXT_BYTES,
    (problem, remedy) => new ModelFormatError(`notes text in ${dir}: ${problem}${remedy ? `; ${remedy}` : ''}`),
  );
  if (!bytes) return undefined;
  const readers = emptyNotesReaders(vocabulary);
  readNotes(readers, vocabulary.encode(bytes.toString('utf8')));
  return readers;
}

/** Has the readers read `ids` as notes that follow those they read before. */
export function readNotes(readers: NotesReaders, ids: ArrayLike<number>): void {
  readers.match.append(ids);
  readers.words.append(ids);
}
