// What the server learns from notes saved in the editor: the text it added to the n-gram, kept in the model directory
// so that it counts after a restart.
//
// The file holds the vocabulary ids that were added (with the few ids of context before each
// piece), not raw counts: replaying them through NgramModel.add gives exactly the counts the
// server had, whatever the n-gram's internal layout, and retraining simply deletes the file,
// since the notes it came from are then part of the corpus.
//
// Layout (little-endian): u32 header length H, H bytes of UTF-8 JSON, spaces up to a multiple of
// 4 bytes, then Int32 ids, the pieces one after another.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { replaceAtomically } from './files';
import type { NgramModel } from './ngram';
import { vocabularyHash } from './ngram-format';
import type { Vocabulary } from './vocab';

export const LEARNED_FILE = 'learned.bin';
const LEARNED_FORMAT = 'char-learned';
const LEARNED_FORMAT_VERSION = 1;
/** All the text learnt, in characters: past this, saved notes are no longer learnt until the next training. */
export const LEARNED_MAX_CHARS = 4_000_000;
/** One saved document larger than this is not learnt: it is not a note but a dump or a log. */
export const LEARNED_MAX_DOCUMENT_CHARS = 1_000_000;
const MAX_HEADER_BYTES = 1 << 24;

export class LearnedFormatError extends Error {
  override name = 'LearnedFormatError';
}

interface Piece {
  /** Ids before `from` are context already counted. */
  from: number;
  length: number;
}

/** Per document (by a hash of its URI), how much of its text has been learnt and a hash of that text. */
interface DocumentMark {
  length: number;
  sha256: string;
}

interface Header {
  format: string;
  formatVersion: number;
  vocabularySha256: string;
  pieces: Piece[];
  documents: Record<string, DocumentMark>;
}

const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');

export type LearnOutcome = { learnt: number } | { skipped: string };

export class LearnedNotes {
  private constructor(
    private readonly vocabulary: Vocabulary,
    private pieces: Piece[],
    private ids: Int32Array[],
    private readonly documents: Map<string, DocumentMark>,
  ) {}

  static empty(vocabulary: Vocabulary): LearnedNotes {
    return new LearnedNotes(vocabulary, [], [], new Map());
  }

  /** The notes learnt in `dir` for this vocabulary; empty when there are none. Throws LearnedFormatError when the file is damaged or for another vocabulary. */
  static load(dir: string, vocabulary: Vocabulary): LearnedNotes {
    const file = path.join(dir, LEARNED_FILE);
    const fail = (problem: string) =>
      new LearnedFormatError(
        `ignoring the notes learnt in ${dir}: ${problem}; they will be learnt again as you save them, or retrain`,
      );
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return LearnedNotes.empty(vocabulary);
      throw fail(`${LEARNED_FILE} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!stat.isFile()) throw fail(`${LEARNED_FILE} is not a regular file`);
    if (stat.size > 4 + MAX_HEADER_BYTES + 4 * (LEARNED_MAX_CHARS + 64 * 1024))
      throw fail(`${LEARNED_FILE} is larger than learnt notes can be`);
    const bytes = fs.readFileSync(file);
    if (bytes.length < 4) throw fail(`${LEARNED_FILE} is truncated`);
    const headerBytes = bytes.readUInt32LE(0);
    if (headerBytes > MAX_HEADER_BYTES || 4 + headerBytes > bytes.length)
      throw fail(`${LEARNED_FILE} is truncated or not ours`);
    let header: Header;
    try {
      header = JSON.parse(bytes.toString('utf8', 4, 4 + headerBytes)) as Header;
    } catch {
      throw fail(`${LEARNED_FILE} has no readable header`);
    }
    if (header?.format !== LEARNED_FORMAT) throw fail(`${LEARNED_FILE} is not a ${LEARNED_FORMAT} file`);
    if (header.formatVersion !== LEARNED_FORMAT_VERSION)
      throw fail(
        `${LEARNED_FILE} has format version ${JSON.stringify(header.formatVersion)}; this program reads ${LEARNED_FORMAT_VERSION}`,
      );
    if (header.vocabularySha256 !== vocabularyHash(vocabulary))
      throw fail(`${LEARNED_FILE} was learnt for another vocabulary`);
    if (!Array.isArray(header.pieces) || typeof header.documents !== 'object' || header.documents === null)
      throw fail(`${LEARNED_FILE} has a malformed header`);
    const start = Math.ceil((4 + headerBytes) / 4) * 4;
    const total = (bytes.length - start) / 4;
    let sum = 0;
    for (const piece of header.pieces) {
      if (
        !Number.isInteger(piece?.from) ||
        !Number.isInteger(piece?.length) ||
        piece.from < 0 ||
        piece.length < piece.from
      )
        throw fail(`${LEARNED_FILE} has a malformed piece`);
      sum += piece.length;
    }
    if (!Number.isInteger(total) || sum !== total)
      throw fail(`${LEARNED_FILE} holds ${total} ids but its header describes ${sum}`);
    const all = new Int32Array(total);
    for (let i = 0; i < total; i++) {
      const id = bytes.readInt32LE(start + 4 * i);
      if (id < 0 || id >= vocabulary.size) throw fail(`${LEARNED_FILE} holds an id outside the vocabulary`);
      all[i] = id;
    }
    const ids: Int32Array[] = [];
    let offset = 0;
    for (const piece of header.pieces) {
      ids.push(all.subarray(offset, offset + piece.length));
      offset += piece.length;
    }
    const documents = new Map<string, DocumentMark>();
    for (const [key, mark] of Object.entries(header.documents)) {
      if (Number.isInteger(mark?.length) && typeof mark?.sha256 === 'string') documents.set(key, mark);
    }
    return new LearnedNotes(vocabulary, header.pieces, ids, documents);
  }

  /** Characters learnt so far. */
  get chars(): number {
    return this.pieces.reduce((sum, piece) => sum + piece.length - piece.from, 0);
  }

  /** Adds every piece learnt to the n-gram, as it was when they were learnt. */
  replayInto(ngram: NgramModel): void {
    this.pieces.forEach((piece, i) => ngram.add(this.ids[i], piece.from));
  }

  /**
   * Learns what is new in a saved document: only what was appended since it was last learnt when
   * the text before is unchanged (the usual way notes grow), otherwise all of it again.
   */
  learn(documentKey: string, text: string, ngram: NgramModel): LearnOutcome {
    const points = [...text];
    if (points.length > LEARNED_MAX_DOCUMENT_CHARS)
      return {
        skipped: `it has ${points.length.toLocaleString('en-US')} characters, over the limit of ${LEARNED_MAX_DOCUMENT_CHARS.toLocaleString('en-US')} for one note`,
      };
    const key = sha256(documentKey);
    const mark = this.documents.get(key);
    let from = 0;
    if (mark && mark.length <= points.length && sha256(points.slice(0, mark.length).join('')) === mark.sha256)
      from = mark.length;
    const fresh = points.length - from;
    if (fresh === 0) return { learnt: 0 };
    if (this.chars + fresh > LEARNED_MAX_CHARS)
      return {
        skipped: `the notes learnt since training reached ${LEARNED_MAX_CHARS.toLocaleString('en-US')} characters; retrain to learn more`,
      };
    const contextStart = Math.max(0, from - (ngram.order - 1));
    const ids = this.vocabulary.encode(points.slice(contextStart).join(''));
    const piece = { from: from - contextStart, length: ids.length };
    ngram.add(ids, piece.from);
    this.pieces.push(piece);
    this.ids.push(ids);
    this.documents.set(key, { length: points.length, sha256: sha256(text) });
    return { learnt: fresh };
  }

  /** Writes the file atomically, so a failed save leaves the previous one intact. */
  save(dir: string): void {
    const header: Header = {
      format: LEARNED_FORMAT,
      formatVersion: LEARNED_FORMAT_VERSION,
      vocabularySha256: vocabularyHash(this.vocabulary),
      pieces: this.pieces,
      documents: Object.fromEntries(this.documents),
    };
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const start = Math.ceil((4 + json.length) / 4) * 4;
    const total = this.pieces.reduce((sum, piece) => sum + piece.length, 0);
    const bytes = Buffer.alloc(start + 4 * total, 0x20);
    bytes.writeUInt32LE(json.length, 0);
    json.copy(bytes, 4);
    let offset = start;
    for (const ids of this.ids) {
      for (const id of ids) {
        bytes.writeInt32LE(id, offset);
        offset += 4;
      }
    }
    replaceAtomically(
      dir,
      `${LEARNED_FILE}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`,
      LEARNED_FILE,
      bytes,
    );
  }
}

/** Retraining rebuilds the n-gram from the notes themselves, so what was learnt from them is dropped. */
export function forgetLearned(dir: string): void {
  fs.rmSync(path.join(dir, LEARNED_FILE), { force: true });
}
