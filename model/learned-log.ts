// The file of notes learnt from saves: an append-only log that several language servers and the trainer share. Each
// record is framed with its length and a checksum, so a reader tells a complete record from one still being written or
// left half-written by a writer that died; a lock file makes appends and rewrites one at a time.
//
// Layout: frames of u32 payload length (little-endian), the first 4 bytes of the payload's SHA-256, then the payload,
// UTF-8 JSON. The first frame is the header; its epoch changes whenever the log is rewritten rather than appended to,
// which tells a reader that what it already applied is no longer a prefix of the file.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isProcessAlive, randomSuffix, removeStrayTemporaries, replaceAtomically } from './files';

export const LEARNED_FILE = 'learned.bin';
export const LEARNED_LOCK_FILE = 'learned.lock';
const FORMAT = 'char-learned';
const FORMAT_VERSION = 2;
const FRAME_HEADER_BYTES = 8;
/** One record holds at most one note's changes, and a note is at most a few million characters. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;
const MAX_LOG_BYTES = 1024 * 1024 * 1024;
const MAX_HEADER_BYTES = 4096;
/** Past this age a lock is taken over whoever holds it: appends and rewrites hold it for moments. */
const LOCK_STALE_MS = 60_000;

/** One change to a note's learnt text: `removed` UTF-16 units at `at` replaced by `text`, with context around it. */
export interface LearntEdit {
  at: number;
  removed: number;
  text: string;
  /** Up to a few characters before and after the change, as the note then read: the n-gram's context. */
  left: string;
  right: string;
}

/**
 * - save: a note saved in the editor; its edits (in ascending order, against the note as last learnt) are learnt.
 * - base: the text of a note that a retrain counted in its n-gram; later saves are learnt against it.
 * - piece: text learnt with no note to attach it to (carried over from the first version of this file).
 */
export type LearntRecord =
  | { kind: 'save'; note: string; edits: LearntEdit[] }
  | { kind: 'base'; note: string; text: string }
  | { kind: 'piece'; left: string; text: string };

/** A file that is not a learnt-notes log, or is damaged before its first record; the message says which. */
export class LearnedFormatError extends Error {
  override name = 'LearnedFormatError';
}

/** The lock is held by another writer that did not let go in time. */
export class LearnedLockBusyError extends Error {
  override name = 'LearnedLockBusyError';
}

/** Where a reader stands in a log: its epoch and the end of the last record applied. */
export interface LogPosition {
  epoch: string;
  end: number;
}

export interface LogRead {
  position: LogPosition;
  /** The records after the position read from (all of them for a whole read), each with where it starts. */
  records: Array<{ record: LearntRecord; offset: number }>;
  /**
   * What follows the last complete record: nothing, a record being written or torn by a crash (it ends the file),
   * or damage with more bytes after it.
   */
  trailing: 'none' | 'torn' | 'damaged';
  /** Whether the log was rewritten since the position read from: what was applied from it must be rebuilt. */
  replaced: boolean;
  /** Damaged records passed over. */
  skipped: number;
}

/** The first version of this file, which a caller with the right vocabulary converts. */
export interface LegacyLog {
  legacy: Buffer;
}

const checksum = (payload: Uint8Array) => crypto.createHash('sha256').update(payload).digest().subarray(0, 4);

function frame(value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value), 'utf8');
  const bytes = Buffer.alloc(FRAME_HEADER_BYTES + payload.length);
  bytes.writeUInt32LE(payload.length, 0);
  checksum(payload).copy(bytes, 4);
  payload.copy(bytes, FRAME_HEADER_BYTES);
  return bytes;
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;

function isEdit(value: unknown): value is LearntEdit {
  const edit = value as LearntEdit;
  return (
    isCount(edit?.at) && isCount(edit.removed) && isString(edit.text) && isString(edit.left) && isString(edit.right)
  );
}

function asRecord(value: unknown): LearntRecord | undefined {
  const record = value as LearntRecord;
  switch (record?.kind) {
    case 'save':
      return isString(record.note) && Array.isArray(record.edits) && record.edits.every(isEdit) ? record : undefined;
    case 'base':
      return isString(record.note) && isString(record.text) ? record : undefined;
    case 'piece':
      return isString(record.left) && isString(record.text) ? record : undefined;
    default:
      return undefined;
  }
}

type Frame =
  | { payload: unknown; end: number }
  /** A whole frame whose content does not match its checksum, with more after it. */
  | { bad: number }
  | { trailing: 'torn' | 'damaged' }
  | undefined;

/** The frame at offset in bytes (which hold the file from `base` on), or why there is none; undefined at the end. */
function frameAt(bytes: Buffer, base: number, offset: number, fileSize: number): Frame {
  const at = offset - base;
  if (at === bytes.length) return undefined;
  if (at + FRAME_HEADER_BYTES > bytes.length) return { trailing: 'torn' };
  const length = bytes.readUInt32LE(at);
  if (length > MAX_RECORD_BYTES) return { trailing: offset + FRAME_HEADER_BYTES >= fileSize ? 'torn' : 'damaged' };
  const end = offset + FRAME_HEADER_BYTES + length;
  if (end > fileSize) return { trailing: 'torn' };
  const payload = bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
  // A bad last frame is a write in progress or cut short; a bad frame with more after it is damage.
  const bad = end === fileSize ? ({ trailing: 'torn' } as const) : { bad: end };
  if (!checksum(payload).equals(bytes.subarray(at + 4, at + FRAME_HEADER_BYTES))) return bad;
  try {
    return { payload: JSON.parse(payload.toString('utf8')), end };
  } catch {
    return bad;
  }
}

function readFrom(fd: number, start: number, size: number): Buffer {
  const bytes = Buffer.alloc(size - start);
  let length = 0;
  for (let n; length < bytes.length && (n = fs.readSync(fd, bytes, length, bytes.length - length, start + length)) > 0;)
    length += n;
  return bytes.subarray(0, length);
}

function formatError(dir: string, problem: string): LearnedFormatError {
  return new LearnedFormatError(`the notes learnt in ${dir} cannot be read: ${problem}`);
}

/**
 * Reads the log in dir: what follows `since` when the log has only been appended to since, else the whole of it. Null
 * when there is no log; a LegacyLog for a file of the first version. Throws LearnedFormatError when the file is not a
 * log at all.
 */
export function readLog(dir: string, since?: LogPosition): LogRead | LegacyLog | null {
  const file = path.join(dir, LEARNED_FILE);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw formatError(dir, `${LEARNED_FILE} cannot be opened (${(error as Error).message})`);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw formatError(dir, `${LEARNED_FILE} is not a regular file`);
    if (stat.size > MAX_LOG_BYTES) throw formatError(dir, `${LEARNED_FILE} is larger than learnt notes can be`);
    const size = stat.size;
    // The header is read every time: its epoch, not the inode (which the filesystem reuses), tells a rewrite apart.
    const first = frameAt(readFrom(fd, 0, Math.min(size, FRAME_HEADER_BYTES + MAX_HEADER_BYTES)), 0, 0, size);
    const header = first && 'payload' in first ? (first.payload as Record<string, unknown> | null) : undefined;
    if (header?.format !== FORMAT || !isString(header.epoch)) {
      const bytes = readFrom(fd, 0, size);
      if (isLegacy(bytes)) return { legacy: bytes };
      throw formatError(dir, `${LEARNED_FILE} is not a ${FORMAT} file`);
    }
    if (header.formatVersion !== FORMAT_VERSION)
      throw formatError(
        dir,
        `${LEARNED_FILE} has format version ${JSON.stringify(header.formatVersion)}; this program reads ${FORMAT_VERSION}`,
      );
    const replaced = since !== undefined && (since.epoch !== header.epoch || since.end > size);
    const start = since && !replaced ? since.end : (first as { end: number }).end;
    return parseFrames(readFrom(fd, start, size), start, size, { epoch: header.epoch, end: start }, replaced);
  } finally {
    fs.closeSync(fd);
  }
}

function parseFrames(bytes: Buffer, base: number, size: number, position: LogPosition, replaced: boolean): LogRead {
  const read: LogRead = { position, records: [], trailing: 'none', replaced, skipped: 0 };
  for (;;) {
    const found = frameAt(bytes, base, position.end, size);
    if (!found) return read;
    if ('trailing' in found) return { ...read, trailing: found.trailing };
    // A damaged record (or one of a kind from a later version) is passed over when a good one follows it, which shows
    // that its length, and so where the next one starts, can be trusted.
    const record = 'payload' in found ? asRecord(found.payload) : undefined;
    const end = 'payload' in found ? found.end : found.bad;
    if (record) read.records.push({ record, offset: position.end });
    else {
      const next = end < size ? frameAt(bytes, base, end, size) : undefined;
      if (end < size && !(next && 'payload' in next)) return { ...read, trailing: 'damaged' };
      read.skipped++;
    }
    position.end = end;
  }
}

function isLegacy(bytes: Buffer): boolean {
  if (bytes.length < 5 || bytes[4] !== 0x7b) return false;
  const length = bytes.readUInt32LE(0);
  try {
    return (JSON.parse(bytes.toString('utf8', 4, 4 + length)) as { format?: unknown }).format === FORMAT;
  } catch {
    return false;
  }
}

/** Under the lock: a new log of these records in place of the old one (or none), written atomically; its position. */
export function rewriteLog(dir: string, records: LearntRecord[]): LogPosition {
  const epoch = crypto.randomBytes(8).toString('hex');
  const frames = [
    frame({ format: FORMAT, formatVersion: FORMAT_VERSION, epoch, createdAt: new Date().toISOString() }),
    ...records.map(frame),
  ];
  fs.mkdirSync(dir, { recursive: true });
  const bytes = Buffer.concat(frames);
  replaceAtomically(dir, `${LEARNED_FILE}.tmp-${randomSuffix()}`, LEARNED_FILE, bytes);
  return { epoch, end: bytes.length };
}

/**
 * Under the lock, with `position` the end of the log's last complete record as just read: appends the records,
 * durably, after cutting off a record that a writer which died left half-written. Returns the new position.
 */
export function appendToLog(dir: string, position: LogPosition, records: LearntRecord[]): LogPosition {
  const file = path.join(dir, LEARNED_FILE);
  const fd = fs.openSync(file, 'r+');
  try {
    if (fs.fstatSync(fd).size !== position.end) fs.ftruncateSync(fd, position.end);
    const bytes = Buffer.concat(records.map(frame));
    let written = 0;
    while (written < bytes.length)
      written += fs.writeSync(fd, bytes, written, bytes.length - written, position.end + written);
    fs.fsyncSync(fd);
    return { ...position, end: position.end + bytes.length };
  } catch (error) {
    // A record written in part (a full disk) is cut off again, so the log still ends on a record.
    try {
      fs.ftruncateSync(fd, position.end);
    } catch {
      // The next writer cuts it off instead: a torn last record is ignored by every reader.
    }
    throw error;
  } finally {
    fs.closeSync(fd);
  }
}

/** Under the lock: keeps a damaged log aside, named so, for whoever wants to look at it; returns its new name. */
export function setAsideLog(dir: string): string {
  const name = `${LEARNED_FILE}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  fs.renameSync(path.join(dir, LEARNED_FILE), path.join(dir, name));
  return name;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number) => Atomics.wait(sleeper, 0, 0, ms);

/** Whether a lock file was left by a process that is gone (or, whoever holds it, for far longer than anyone needs). */
function isStale(lock: string, content: string): boolean {
  const stat = fs.statSync(lock, { throwIfNoEntry: false });
  if (!stat) return false;
  if (Date.now() - stat.mtimeMs > LOCK_STALE_MS) return true;
  try {
    const owner = JSON.parse(content) as { pid?: unknown; host?: unknown };
    return owner.host === os.hostname() && Number.isInteger(owner.pid) && !isProcessAlive(owner.pid as number);
  } catch {
    // Empty or half-written: its writer is between creating and filling it.
    return false;
  }
}

/**
 * Runs fn holding the log's lock in dir (which must exist), waiting up to waitMs for another holder; throws
 * LearnedLockBusyError when it is not let go in time. A lock left by a process that has died is taken over.
 */
export function withLogLock<T>(dir: string, waitMs: number, fn: () => T): T {
  const lock = path.join(dir, LEARNED_LOCK_FILE);
  const deadline = Date.now() + waitMs;
  const me = JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString() });
  for (;;) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(lock, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (fd !== undefined) {
      try {
        fs.writeSync(fd, me);
      } finally {
        fs.closeSync(fd);
      }
      try {
        return fn();
      } finally {
        // Only our own: after a takeover by someone who judged ours stale, theirs stays.
        if (readOrEmpty(lock) === me) fs.rmSync(lock, { force: true });
      }
    }
    const content = readOrEmpty(lock);
    // Removed only if it still holds what was judged stale, so a lock just taken by another waiter is left alone.
    if (isStale(lock, content) && readOrEmpty(lock) === content) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw new LearnedLockBusyError(
        `another program holds ${LEARNED_LOCK_FILE} in ${dir} (${content || 'no owner written yet'}); if none is running, delete that file`,
      );
    }
    sleep(5);
  }
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Under the lock: removes temporary files of the log that writers which died (kill -9, a crash) left behind. Writers
 * make temporaries only while holding the lock, so no live writer's is removed.
 */
export function sweepTemporaries(dir: string): void {
  removeStrayTemporaries(dir, `${LEARNED_FILE}.tmp-`);
}
