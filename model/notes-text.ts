// The training notes as plain text beside the model, for the match model: the n-gram of the notes keeps contexts of at
// most its order, so only the text itself can follow a repeat (a licence, a template, a long command) to its end. And
// the context-mixing model of the notes, which takes seconds a megabyte to learn, so the trainer saves what it learnt.
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { ContextMixingModel } from './context-mixing';
import {
  bytesOfArrays,
  fileSignature,
  fillArrays,
  ModelFormatError,
  randomSuffix,
  removeStrayTemporaries,
  readJsonHeader,
  readRegularFile,
  replaceAtomically,
  writeHeadedFile,
} from './files';
import { vocabularyHash } from './ngram-format';
import { MatchModel } from './match-model';
import type { Vocabulary } from './vocab';
import { characterShapes, WordModel, wordLetters } from './word-model';

export const NOTES_TEXT_FILE = 'notes.txt';
/** Larger than any notes a model is trained on in minutes; a bigger file is not this program's. */
const MAX_NOTES_TEXT_BYTES = 512 * 1024 * 1024;
/**
 * The notes' match indexes: a few million positions, so more hash bits than a document's. The long
 * repeats' is the larger: at a quarter of this size, collisions lost the last place of many a long
 * repeat in notes of a few million characters, and the short one, which a lookup falls back on,
 * misses few at this size (docs/measurements.md).
 */
const NOTES_HASH_BITS = 21;
const NOTES_LONG_HASH_BITS = 22;

/** An empty match model sized for notes. */
const notesMatchModel = (): MatchModel => new MatchModel(NOTES_HASH_BITS, NOTES_LONG_HASH_BITS);
/** An empty word model sized for notes. */
const notesWordModel = (vocabulary: Vocabulary): WordModel => new WordModel(wordLetters(vocabulary), 16);

/** What reads the notes' text itself: the match model, which follows its repeats, the word model, and the context mixing. */
export interface NotesReaders {
  match: MatchModel;
  words: WordModel;
  /** Absent for a model saved before the trainer learnt it, or whose file is unusable. */
  contexts?: ContextMixingModel;
}

export const emptyNotesReaders = (vocabulary: Vocabulary): NotesReaders => ({
  match: notesMatchModel(),
  words: notesWordModel(vocabulary),
});

/** Writes the text the model was trained on, atomically, so a reader sees the old file or the new one. */
export function saveNotesText(dir: string, text: string): void {
  replaceAtomically(dir, `.${NOTES_TEXT_FILE}.tmp-${randomSuffix()}`, NOTES_TEXT_FILE, text);
  removeStrayTemporaries(dir, `.${NOTES_TEXT_FILE}.tmp-`);
}

/** The notes text in `dir`, or undefined when the model has none (trained before it was kept). */
export function readNotesText(dir: string): string | undefined {
  const bytes = readRegularFile(
    path.join(dir, NOTES_TEXT_FILE),
    MAX_NOTES_TEXT_BYTES,
    (problem, remedy) => new ModelFormatError(`notes text in ${dir}: ${problem}${remedy ? `; ${remedy}` : ''}`),
  );
  return bytes?.toString('utf8');
}

function readNotesIds(dir: string, vocabulary: Vocabulary): Int32Array | undefined {
  const text = readNotesText(dir);
  return text === undefined ? undefined : vocabulary.encode(text);
}

/** The match and word models over the notes in `dir`, or undefined when the model has no notes text (trained before it was kept). */
export function loadNotesReaders(dir: string, vocabulary: Vocabulary): NotesReaders | undefined {
  const ids = readNotesIds(dir, vocabulary);
  if (!ids) return undefined;
  const readers = emptyNotesReaders(vocabulary);
  readNotes(readers, ids);
  return readers;
}

/**
 * Learns the context mixing of the notes text in `dir` afresh and saves it, as the trainer does:
 * for a model whose file is missing, damaged or of another format version. Returns the
 * characters learnt, or undefined where it did not save because the notes text was replaced or
 * `maySave` said no meanwhile (a trainer began writing the model: its own file must stand);
 * throws ModelFormatError where the model keeps no notes text.
 */
export function rebuildNotesContexts(
  dir: string,
  vocabulary: Vocabulary,
  maySave: () => boolean = () => true,
): number | undefined {
  const textFile = path.join(dir, NOTES_TEXT_FILE);
  const before = fileSignature(textFile);
  const ids = readNotesIds(dir, vocabulary);
  if (!ids)
    throw new ModelFormatError(`${dir} keeps no ${NOTES_TEXT_FILE} to learn the context model from; ${RETRAIN}`);
  const contexts = learnNotesContexts(vocabulary, ids);
  if (fileSignature(textFile) !== before || !maySave()) return undefined;
  saveNotesContexts(dir, contexts, vocabulary);
  return ids.length;
}

/** Has the readers read `ids` as notes that follow those they read before. */
export function readNotes(readers: NotesReaders, ids: ArrayLike<number>): void {
  readers.match.append(ids);
  readers.words.append(ids);
  readers.contexts?.append(ids);
}

export const NOTES_CONTEXTS_FILE = 'contexts.bin';
const CONTEXTS_FORMAT = 'char-contexts';
// Version 2 added the mixer's weights selected by the character before, and the map by the two before; 3 gave the first
// group of an id's bits short slots of its own; 4 made the words' contexts ignore case (word-model.ts, wordLetters); 5
// added the line's column as a context; 6 the shape of the characters before (characterShapes); 7 the shapes of the
// runs before (shapeRuns); 8 the shapes of the runs the line began with (lineStartRuns); 9 selected the mixer's weight
// sets by the two characters before, the last runs' shapes and the word being typed; 10 gave each slot a second check
// byte, so that a context seldom reads another's histories, and added orders 12 and 20; 11 put eight slots in a bucket.
// An earlier file's contexts are hashed otherwise, so it is refused, and the language server learns it again from the
// notes kept beside the model.
const CONTEXTS_FORMAT_VERSION = 11;
/**
 * The table's size follows the notes (64 bytes per character), within these bounds: 256 KB to 64 MB. A table
 * the notes overfill forgets contexts they teach, which costs what is served too (docs/measurements.md, twenty-ninth
 * session), so memory is spent here up to where the notes' other structures need it.
 */
const MIN_TABLE_BITS = 12;
const MAX_TABLE_BITS = 20;
/**
 * Notes of more characters than this get an 8 MB table: their other served structures (the n-gram, the match and
 * word models) take the room, and the server's memory bound is measured with 10 MB of notes.
 */
const LARGE_NOTES_CHARS = 6e6;
const LARGE_NOTES_TABLE_BITS = 17;
const MAX_CONTEXTS_HEADER_BYTES = 4096;
const RETRAIN = 'retrain with `npm run train` to rebuild it (`--resume` keeps what the LSTM has learnt)';
/** Where the notes text is kept beside the model, the context model is learnt again from it without retraining. */
const RELEARN = `the language server learns it again from ${NOTES_TEXT_FILE} by itself (\`npm run train -- --rebuild-contexts --out DIR\` does the same), or ${RETRAIN}`;

interface ContextsHeader {
  format: string;
  formatVersion: number;
  vocabSize: number;
  vocabularySha256: string;
  tableBits: number;
  /** Of the payload. */
  sha256: string;
}

const sha256Hex = (bytes: Uint8Array) => crypto.createHash('sha256').update(bytes).digest('hex');

/** The table (64 × 2^bits bytes) that the context model of notes of `chars` characters gets. */
export const contextsTableBits = (chars: number): number =>
  chars > LARGE_NOTES_CHARS
    ? LARGE_NOTES_TABLE_BITS
    : Math.max(MIN_TABLE_BITS, Math.min(MAX_TABLE_BITS, Math.ceil(Math.log2(Math.max(1, chars)))));

/** The context-mixing model of `ids`, the notes' text, with a table sized for them (or of 64 × 2^tableBits bytes). */
export function learnNotesContexts(
  vocabulary: Vocabulary,
  ids: ArrayLike<number>,
  tableBits = contextsTableBits(ids.length),
): ContextMixingModel {
  const contexts = new ContextMixingModel(
    vocabulary.size,
    wordLetters(vocabulary),
    characterShapes(vocabulary),
    tableBits,
  );
  contexts.append(ids);
  return contexts;
}

/**
 * Writes the context-mixing model, atomically: a little-endian u32 header length, the JSON header,
 * then its arrays in learnt() order, as this host lays them out (hosts are little-endian).
 */
export function saveNotesContexts(dir: string, contexts: ContextMixingModel, vocabulary: Vocabulary): void {
  const payload = bytesOfArrays(contexts.learnt());
  const header: ContextsHeader = {
    format: CONTEXTS_FORMAT,
    formatVersion: CONTEXTS_FORMAT_VERSION,
    vocabSize: vocabulary.size,
    vocabularySha256: vocabularyHash(vocabulary),
    tableBits: contexts.tableBits,
    sha256: sha256Hex(payload),
  };
  writeHeadedFile(dir, NOTES_CONTEXTS_FILE, header, payload);
}

/**
 * The context-mixing model saved in `dir`, or undefined where there is none. Throws
 * ModelFormatError where the file is damaged, from another version, or for another vocabulary.
 */
export function loadNotesContexts(dir: string, vocabulary: Vocabulary): ContextMixingModel | undefined {
  const fail = (problem: string, remedy = RELEARN) =>
    new ModelFormatError(`the context model in ${dir}: ${problem}; ${remedy}`);
  // The table at its largest, and room for the weights and maps of any vocabulary.
  const maxBytes = 4 + MAX_CONTEXTS_HEADER_BYTES + ContextMixingModel.tableBytes(MAX_TABLE_BITS) + (64 << 20);
  const bytes = readRegularFile(path.join(dir, NOTES_CONTEXTS_FILE), maxBytes, fail);
  if (!bytes) return undefined;
  if (os.endianness() !== 'LE') throw fail('it is laid out little-endian and this host is not', 'serve without it');
  const { json, end } = readJsonHeader(
    (offset, length) => bytes.subarray(offset, offset + length),
    bytes.length,
    MAX_CONTEXTS_HEADER_BYTES,
    NOTES_CONTEXTS_FILE,
    'a context model',
    fail,
  );
  const header = json as Partial<ContextsHeader> | null;
  if (header?.format !== CONTEXTS_FORMAT) throw fail(`${NOTES_CONTEXTS_FILE} is not a context model`);
  if (header.formatVersion !== CONTEXTS_FORMAT_VERSION)
    throw fail(
      `${NOTES_CONTEXTS_FILE} has format version ${String(header.formatVersion)}; this version reads ${CONTEXTS_FORMAT_VERSION}`,
    );
  if (header.vocabSize !== vocabulary.size || header.vocabularySha256 !== vocabularyHash(vocabulary))
    throw fail(`${NOTES_CONTEXTS_FILE} was learnt for another vocabulary than the model's`);
  const tableBits = header.tableBits;
  if (
    typeof tableBits !== 'number' ||
    !Number.isInteger(tableBits) ||
    tableBits < MIN_TABLE_BITS ||
    tableBits > MAX_TABLE_BITS
  )
    throw fail(`${NOTES_CONTEXTS_FILE} has no valid table size`);
  const payload = bytes.subarray(end);
  if (sha256Hex(payload) !== header.sha256)
    throw fail(`${NOTES_CONTEXTS_FILE} is corrupt: its contents do not match their checksum`);
  // The table, most of the file, is used where it lies; the rest is copied, as it need not be aligned for its floats.
  const tableBytes = ContextMixingModel.tableBytes(tableBits);
  if (payload.length < tableBytes) throw fail(`${NOTES_CONTEXTS_FILE} is shorter than its table`);
  const contexts = new ContextMixingModel(
    vocabulary.size,
    wordLetters(vocabulary),
    characterShapes(vocabulary),
    tableBits,
    payload.subarray(0, tableBytes),
  );
  const [, ...arrays] = contexts.learnt();
  const expected = tableBytes + arrays.reduce((sum, a) => sum + a.byteLength, 0);
  if (payload.length !== expected)
    throw fail(`${NOTES_CONTEXTS_FILE} holds ${payload.length} bytes where its header needs ${expected}`);
  fillArrays(arrays, payload.subarray(tableBytes));
  contexts.loaded();
  return contexts;
}
