// The n-gram's file in the model directory: one file, a JSON header then the node arrays.
//
// Same contract as model/format.ts: the trainer and the server may be different versions, so the
// loader checks everything before trusting it, allocates nothing a file's size does not justify,
// and quotes no file content in its messages (a damaged file may hold anything).
//
// Layout (little-endian): u32 header length H, H bytes of UTF-8 JSON, spaces up to a multiple of
// 8 bytes, then parent Int32[n], count Uint32[n], symbol Uint16[n], n = header.nodeCount. The
// header's sha256 covers its other fields as well as the arrays, since the loader trusts both.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomSuffix, readJsonHeader, removeStrayTemporaries, replaceAtomically } from './files';
import { NGRAM_MAX_ORDER, NGRAM_MAX_VOCAB, NgramModel, type NgramArrays } from './ngram';
import type { Vocabulary } from './vocab';

export const NGRAM_FORMAT = 'char-ngram';
// Version 1's checksum covered only the arrays, so an edited discount or count-of-counts loaded
// silently; such a file is refused with the remedy, since the trainer rebuilds the n-gram first.
export const NGRAM_FORMAT_VERSION = 2;
export const NGRAM_FILE = 'ngram.bin';
const GENERATED_BY = 'char-complete';
const MAX_HEADER_BYTES = 1 << 16;
// Far above what the node bound allows for notes; beyond it the file is not ours.
const MAX_FILE_BYTES = 2 ** 30;
const BYTES_PER_NODE = 10;
const BIG_ENDIAN = os.endianness() === 'BE';
const REBUILD = 'rebuild it with `npm run train`';

export class NgramFormatError extends Error {
  override name = 'NgramFormatError';
}

export function ngramFilePath(dir: string): string {
  return path.join(dir, NGRAM_FILE);
}

/** Identifies a vocabulary by its characters in order, since the ids are their positions. */
export function vocabularyHash(vocabulary: Vocabulary): string {
  return crypto.createHash('sha256').update(JSON.stringify(vocabulary.chars)).digest('hex');
}

interface Header {
  format: string;
  formatVersion: number;
  generatedBy: string;
  order: number;
  vocabSize: number;
  vocabularySha256: string;
  maxNodes: number;
  discountScale: number;
  nodeCount: number;
  countOfCounts: number[];
  pruned: number;
  prunes: number;
  refused: number;
  /** Of the other fields, in CHECKSUMMED_FIELDS order, then the arrays: see ngramChecksum. */
  sha256: string;
}

const CHECKSUMMED_FIELDS = [
  'format',
  'formatVersion',
  'generatedBy',
  'order',
  'vocabSize',
  'vocabularySha256',
  'maxNodes',
  'discountScale',
  'nodeCount',
  'countOfCounts',
  'pruned',
  'prunes',
  'refused',
] as const satisfies ReadonlyArray<Exclude<keyof Header, 'sha256'>>;

/**
 * The checksum a file with this header and payload must carry. The fields are hashed as a JSON
 * array in a fixed order rather than as the header's own bytes, so that the header's spelling
 * (key order, spacing) is free while every value the loader uses is covered.
 */
export function ngramChecksum(header: Omit<Header, 'sha256'>, payload: Uint8Array): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify(CHECKSUMMED_FIELDS.map((field) => header[field])))
    .update(payload)
    .digest('hex');
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function littleEndian(a: Int32Array | Uint32Array | Uint16Array): Buffer {
  const bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (!BIG_ENDIAN) return bytes;
  const copy = Buffer.from(bytes);
  return a.BYTES_PER_ELEMENT === 2 ? copy.swap16() : copy.swap32();
}

export function saveNgram(dir: string, model: NgramModel, vocabulary: Vocabulary): void {
  if (vocabulary.size !== model.vocabSize) {
    throw new NgramFormatError(
      `cannot save n-gram to ${dir}: the vocabulary has ${vocabulary.size} entries but the model ${model.vocabSize}; this is a bug in the caller of saveNgram`,
    );
  }
  const a = model.toArrays();
  const payload = Buffer.concat([littleEndian(a.parent), littleEndian(a.count), littleEndian(a.symbol)]);
  const fields: Omit<Header, 'sha256'> = {
    format: NGRAM_FORMAT,
    formatVersion: NGRAM_FORMAT_VERSION,
    generatedBy: GENERATED_BY,
    order: a.order,
    vocabSize: a.vocabSize,
    vocabularySha256: vocabularyHash(vocabulary),
    maxNodes: a.maxNodes,
    discountScale: a.discountScale,
    nodeCount: a.nodeCount,
    countOfCounts: [...a.countOfCounts],
    pruned: a.pruned,
    prunes: a.prunes,
    refused: a.refused,
  };
  const header: Header = { ...fields, sha256: ngramChecksum(fields, payload) };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const start = align8(4 + json.length);
  const head = Buffer.alloc(start, 0x20);
  head.writeUInt32LE(json.length, 0);
  json.copy(head, 4);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${NGRAM_FILE}.tmp-${randomSuffix()}`;
  replaceAtomically(dir, tmp, NGRAM_FILE, Buffer.concat([head, payload]));
  removeStrayTemporaries(dir, `${NGRAM_FILE}.tmp-`);
}

function readFully(fd: number, bytes: Buffer, position: number): number {
  let read = 0;
  while (read < bytes.length) {
    const n = fs.readSync(fd, bytes, read, bytes.length - read, position + read);
    if (n === 0) break;
    read += n;
  }
  return read;
}

/**
 * Reads the header, then the payload only if the file's size is exactly what the header needs,
 * through one descriptor so that the size and the bytes are of the same file.
 */
function readNgramFile(
  dir: string,
  fail: (problem: string, remedy?: string) => NgramFormatError,
): { header: Header; payload: Buffer } | null {
  let fd: number;
  try {
    // Without blocking, as model/files.ts's readRegularFile opens model.json: a FIFO in its place
    // must be refused, not waited on.
    fd = fs.openSync(ngramFilePath(dir), fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new NgramFormatError(
      `cannot read the n-gram at ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the file permissions`,
    );
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw fail(`${NGRAM_FILE} is not a regular file`, `remove it and ${REBUILD}`);
    if (stat.size > MAX_FILE_BYTES)
      throw fail(`${NGRAM_FILE} is ${stat.size} bytes, over the limit of ${MAX_FILE_BYTES}`);
    const readAt = (offset: number, length: number) => {
      const bytes = Buffer.alloc(length);
      return bytes.subarray(0, readFully(fd, bytes, offset));
    };
    const { json, end } = readJsonHeader(readAt, stat.size, MAX_HEADER_BYTES, NGRAM_FILE, 'an n-gram', fail);
    const header = checkHeader(json, fail);
    const start = align8(end);
    const expected = start + header.nodeCount * BYTES_PER_NODE;
    if (stat.size !== expected)
      throw fail(
        `${NGRAM_FILE} is ${stat.size} bytes but its header needs ${expected} (${stat.size < expected ? 'truncated' : 'too long'})`,
      );
    const payload = Buffer.allocUnsafe(expected - start);
    if (readFully(fd, payload, start) < payload.length) throw fail(`${NGRAM_FILE} shrank while being read`);
    return { header, payload };
  } finally {
    fs.closeSync(fd);
  }
}

function isCount(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function checkHeader(json: unknown, fail: (problem: string, remedy?: string) => NgramFormatError): Header {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw fail('the header is not a JSON object');
  const h = json as Record<string, unknown>;
  if (h.format !== NGRAM_FORMAT) throw fail(`the header does not name the ${NGRAM_FORMAT} format`);
  if (!isCount(h.formatVersion) || h.formatVersion < 1) throw fail('formatVersion is not a positive integer');
  if (h.formatVersion > NGRAM_FORMAT_VERSION) {
    throw fail(
      `written by a newer version of ${GENERATED_BY} (format version ${h.formatVersion}; this one reads up to ${NGRAM_FORMAT_VERSION})`,
      `update ${GENERATED_BY} or ${REBUILD}`,
    );
  }
  if (h.formatVersion < NGRAM_FORMAT_VERSION)
    throw fail(
      `${NGRAM_FILE} has format version ${h.formatVersion}, written by an older version of ${GENERATED_BY} whose checksum left the header's counts unchecked`,
    );
  if (!isCount(h.order, NGRAM_MAX_ORDER) || h.order < 1)
    throw fail(`order is not an integer in [1, ${NGRAM_MAX_ORDER}]`);
  if (!isCount(h.vocabSize, NGRAM_MAX_VOCAB) || h.vocabSize < 2)
    throw fail(`vocabSize is not an integer in [2, ${NGRAM_MAX_VOCAB}]`);
  if (typeof h.vocabularySha256 !== 'string' || !/^[0-9a-f]{64}$/.test(h.vocabularySha256))
    throw fail('vocabularySha256 is not a SHA-256 in hex');
  if (typeof h.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(h.sha256)) throw fail('sha256 is not a SHA-256 in hex');
  if (!isCount(h.maxNodes, 0x7fffffff)) throw fail('maxNodes is not a node count');
  if (typeof h.discountScale !== 'number' || !(h.discountScale > 0 && h.discountScale <= 4))
    throw fail('discountScale is not a number in (0, 4]');
  if (!isCount(h.nodeCount, h.maxNodes) || h.nodeCount < 1) throw fail('nodeCount is not in [1, maxNodes]');
  for (const field of ['pruned', 'prunes', 'refused'] as const)
    if (!isCount(h[field])) throw fail(`${field} is not a count`);
  const coc = h.countOfCounts;
  if (!Array.isArray(coc) || coc.length !== (h.order + 1) * 5 || !coc.every((v) => isCount(v)))
    throw fail('countOfCounts is not a list of counts of the right length');
  return h as unknown as Header;
}

function column<T extends Int32Array | Uint32Array | Uint16Array>(
  bytes: Buffer,
  offset: number,
  make: (n: number) => T,
  n: number,
): T {
  const out = make(n);
  const view = new Uint8Array(out.buffer);
  // Copied: the file buffer need not be aligned for the element type.
  view.set(bytes.subarray(offset, offset + view.length));
  if (BIG_ENDIAN) {
    const b = Buffer.from(out.buffer);
    if (out.BYTES_PER_ELEMENT === 2) b.swap16();
    else b.swap32();
  }
  return out;
}

/**
 * The n-gram saved in `dir` for `vocabulary`, or null when the directory has none. Throws
 * NgramFormatError when the file is damaged, from a newer version, or built for another vocabulary.
 */
export function loadNgram(dir: string, vocabulary: Vocabulary): NgramModel | null {
  const fail = (problem: string, remedy = REBUILD) =>
    new NgramFormatError(`invalid n-gram at ${dir}: ${problem}; ${remedy}`);
  const file = readNgramFile(dir, fail);
  if (file === null) return null;
  const { header, payload } = file;
  const n = header.nodeCount;
  if (ngramChecksum(header, payload) !== header.sha256)
    throw fail(`${NGRAM_FILE} is corrupt: its header or counts do not match their checksum`);
  if (header.vocabSize !== vocabulary.size || header.vocabularySha256 !== vocabularyHash(vocabulary)) {
    throw new NgramFormatError(
      `n-gram at ${dir} was built for a different vocabulary (${header.vocabSize} characters) than the model's (${vocabulary.size}); ${REBUILD} so that both come from the same notes`,
    );
  }
  const arrays: NgramArrays = {
    order: header.order,
    vocabSize: header.vocabSize,
    maxNodes: header.maxNodes,
    discountScale: header.discountScale,
    nodeCount: n,
    parent: column(payload, 0, (k) => new Int32Array(k), n),
    count: column(payload, 4 * n, (k) => new Uint32Array(k), n),
    symbol: column(payload, 8 * n, (k) => new Uint16Array(k), n),
    countOfCounts: Float64Array.from(header.countOfCounts),
    pruned: header.pruned,
    prunes: header.prunes,
    refused: header.refused,
  };
  try {
    return NgramModel.fromArrays(arrays, true);
  } catch (err) {
    if (err instanceof RangeError)
      throw fail(`its node table is inconsistent (${err.message.replace(/^ngram: /, '')})`);
    throw err;
  }
}
