// The files of a model directory, which a trainer writes while a server may be reading them: each
// is replaced atomically, so a reader sees the old file or the new one, never half of one; each is
// read with a bound and through one descriptor, so a damaged or hostile file is refused rather than
// trusted; and float32 weights go in shards named by their content. Shared by the model, the notes'
// n-gram, the learned notes and the optimizer state.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A file in a model directory is missing, damaged or not what it claims; the message says which and what to do. */
export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

export const RETRAIN_REMEDY = 'retrain with `npm run train`';

/**
 * A file could not be written because its filesystem (or the user's quota there) is full. The
 * file it was to replace is left as it was, since every write goes to a temporary name first.
 */
export class DiskFullError extends Error {
  override name = 'DiskFullError';
  constructor(
    readonly file: string,
    readonly bytesNeeded: number,
    readonly bytesFree: number | undefined,
    quota: boolean,
  ) {
    const free = bytesFree === undefined ? '' : `, ${formatBytes(bytesFree)} free`;
    super(
      `cannot write ${file}: ${quota ? 'the disk quota is exceeded' : 'no space left on the device'} (it needs ${formatBytes(bytesNeeded)}${free}); any earlier version of it is intact. Free some space or write to another disk.`,
    );
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const [value, unit] =
    bytes < 1024 ** 2
      ? [bytes / 1024, 'KiB']
      : bytes < 1024 ** 3
        ? [bytes / 1024 ** 2, 'MiB']
        : [bytes / 1024 ** 3, 'GiB'];
  return `${value.toFixed(1)} ${unit}`;
}

/** The error a failed write of file (bytes long) should raise: a DiskFullError when the disk or quota is full. */
export function diskFullOr(error: unknown, file: string, bytes: number): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return error;
  let free: number | undefined;
  try {
    const stats = fs.statfsSync(path.dirname(file));
    free = stats.bavail * stats.bsize;
  } catch {
    // The space left is a courtesy in the message; the error stands without it.
  }
  return new DiskFullError(file, bytes, free, code === 'EDQUOT');
}

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

const BIG_ENDIAN = os.endianness() === 'BE';

export function encodeWeights(shapes: Array<[string, number[]]>, weights: Map<string, Float32Array>): Buffer {
  const total = shapes.reduce((sum, [, shape]) => sum + elementCount(shape), 0);
  const bytes = Buffer.alloc(total * 4);
  let offset = 0;
  for (const [name] of shapes) {
    const w = weights.get(name)!;
    bytes.set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength), offset);
    offset += w.byteLength;
  }
  // The file is little-endian whatever the host is, as tfjs expects.
  if (BIG_ENDIAN) bytes.swap32();
  return bytes;
}

export function randomSuffix(): string {
  return `${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
}

/** A temporary file this old was left by a writer that died, wherever it ran: saves take moments. */
const TEMPORARY_STALE_MS = 10 * 60_000;

/**
 * Removes dir's files named `prefix` + randomSuffix() whose writer no longer runs on this machine, or that are old:
 * left by a save that was killed before its rename.
 */
export function removeStrayTemporaries(dir: string, prefix: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((name) => name.startsWith(prefix));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    const file = path.join(dir, name);
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    if (!stat || (Number.isInteger(pid) && isProcessAlive(pid) && Date.now() - stat.mtimeMs <= TEMPORARY_STALE_MS))
      continue;
    // The file just saved is in place, so a stray that cannot be removed (no permission, a directory of that name) is
    // left for a later save rather than reported as this save's failure.
    try {
      fs.rmSync(file, { force: true });
    } catch {
      continue;
    }
  }
}

function writeDurably(file: string, data: Uint8Array | string): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes to a temporary name and renames, so the destination is either absent or complete. */
export function replaceAtomically(dir: string, tmpName: string, finalName: string, data: Uint8Array | string): void {
  const tmp = path.join(dir, tmpName);
  try {
    writeDurably(tmp, data);
    fs.renameSync(tmp, path.join(dir, finalName));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw diskFullOr(err, path.join(dir, finalName), Buffer.byteLength(data));
  }
  syncDirectory(dir);
}

/**
 * Writes `name` in `dir` atomically as a little-endian u32 length, that many bytes of `header` as
 * JSON (what readJsonHeader reads), then `payload`. Each writer has a temporary of its own: a write
 * opens it exclusively and a failed one removes it, so with a shared name two processes saving at
 * once (a trainer and a language server, two windows' servers) would both fail.
 */
export function writeHeadedFile(dir: string, name: string, header: object, payload: Uint8Array): void {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length, 0);
  replaceAtomically(dir, `.${name}.tmp-${randomSuffix()}`, name, Buffer.concat([length, json, payload]));
  removeStrayTemporaries(dir, `.${name}.tmp-`);
}

/** The bytes of `arrays` one after another, as this host lays them out: a payload for writeHeadedFile. */
export function bytesOfArrays(arrays: ArrayBufferView[]): Buffer {
  return Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
}

/**
 * Fills `arrays` from `bytes`, as bytesOfArrays() laid them out, copying, since a file's bytes need
 * not be aligned for its floats; returns how many bytes that took.
 */
export function fillArrays(arrays: ArrayBufferView[], bytes: Uint8Array): number {
  let offset = 0;
  for (const array of arrays) {
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(
      bytes.subarray(offset, offset + array.byteLength),
    );
    offset += array.byteLength;
  }
  return offset;
}

// Makes the renames themselves durable, not only the files' contents.
function syncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch (err) {
    // Windows cannot open a directory for syncing; NTFS journals renames anyway.
    if (process.platform === 'win32') return;
    throw err;
  }
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    // Some filesystems (and Windows) refuse fsync on a directory; there is nothing more to do.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/** The first 12 hex digits of the SHA-256 of bytes: the part of a shard's name that names its content. */
export function contentHash(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 12);
}

/**
 * Step 1 of a save: stores the weight bytes under a name derived from their content, so that the
 * shard the current model.json references is never overwritten with different bytes. Returns the
 * file name (relative to dir).
 */
export function writeShard(dir: string, bytes: Uint8Array, prefix = 'weights'): string {
  fs.mkdirSync(dir, { recursive: true });
  const name = `${prefix}.${contentHash(bytes)}.bin`;
  const file = path.join(dir, name);
  const existing = fs.statSync(file, { throwIfNoEntry: false });
  // Same name should mean same content, but a file someone damaged in place must not be kept.
  if (existing?.isFile() && existing.size === bytes.length && contentHash(fs.readFileSync(file)) === contentHash(bytes))
    return name;
  replaceAtomically(dir, `${prefix}.bin.tmp-${randomSuffix()}`, name, bytes);
  return name;
}

/**
 * The whole of a regular file of at most maxBytes, or null when it does not exist. Opened without
 * blocking and checked through the open descriptor, so a FIFO or a device (a link to /dev/zero)
 * is refused rather than read forever, and nothing can be swapped in between check and read.
 */
export function readRegularFile(
  file: string,
  maxBytes: number,
  fail: (problem: string, remedy?: string) => ModelFormatError,
): Buffer | null {
  const name = path.basename(file);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fail(`cannot read ${name} (${(err as Error).message})`, 'check the file permissions');
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile())
      throw fail(`${name} is not a regular file`, `replace it with the file the trainer writes, or ${RETRAIN_REMEDY}`);
    if (stat.size > maxBytes)
      throw fail(`${name} is ${stat.size} bytes, more than the ${maxBytes} a model file can be`);
    // One byte more than allowed is read, so a file that grew after fstat is noticed.
    const buffer = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let length = 0;
    for (let n; length < buffer.length && (n = fs.readSync(fd, buffer, length, buffer.length - length, null)) > 0;)
      length += n;
    if (length > maxBytes) throw fail(`${name} grew past ${maxBytes} bytes while being read`);
    return buffer.subarray(0, length);
  } catch (err) {
    if (err instanceof ModelFormatError) throw err;
    throw fail(`cannot read ${name} (${(err as Error).message})`, 'check the file permissions');
  } finally {
    fs.closeSync(fd);
  }
}

// The name writeShard gives a shard: its content hash, which readers check.
const HASHED_SHARD = /^[a-z]+\.([0-9a-f]{12})\.bin$/;

/**
 * The JSON header that opens the model's binary files (the n-gram, the context model): a
 * little-endian u32 length, then that many bytes of JSON. `read(offset, length)` gives the file's
 * bytes there, fewer past its end; `fileSize` and `maxHeaderBytes` bound the length. Returns the
 * parsed header and the offset where it ends. `what` names the format for a message that the file
 * may not be one ("an n-gram").
 */
export function readJsonHeader<E extends Error>(
  read: (offset: number, length: number) => Buffer,
  fileSize: number,
  maxHeaderBytes: number,
  fileName: string,
  what: string,
  fail: (problem: string) => E,
): { json: unknown; end: number } {
  const length = read(0, 4);
  if (length.length < 4) throw fail(`${fileName} is truncated`);
  const headerBytes = length.readUInt32LE(0);
  if (headerBytes > maxHeaderBytes || 4 + headerBytes > fileSize)
    throw fail(`${fileName} has a header length beyond the file or the limit, so it is truncated or not ${what}`);
  const text = read(4, headerBytes);
  if (text.length < headerBytes) throw fail(`${fileName} shrank while being read`);
  try {
    return { json: JSON.parse(text.toString('utf8')), end: 4 + headerBytes };
  } catch {
    // The parser's message would quote the file.
    throw fail(`${fileName} does not start with a JSON header`);
  }
}

/**
 * The bytes of a shard of exactly expectedBytes whose content matches the hash in its name, or
 * null when it does not exist, so the caller can tell a concurrent save from damage.
 */
export function readShard(
  dir: string,
  shard: string,
  expectedBytes: number,
  fail: (problem: string, remedy?: string) => ModelFormatError,
): Buffer | null {
  const file = path.join(dir, shard);
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat) return null;
  if (!stat.isFile()) throw fail(`weight file ${shard} is not a regular file`);
  // Checked before reading, so a wrong file is rejected without allocating its size.
  if (stat.size !== expectedBytes) {
    throw fail(
      `weight file ${shard} is ${stat.size} bytes but the manifest needs ${expectedBytes} (${stat.size < expectedBytes ? 'truncated' : 'too long'})`,
    );
  }
  const bytes = readRegularFile(file, expectedBytes, fail);
  if (!bytes) return null;
  if (bytes.length !== expectedBytes) {
    throw fail(`weight file ${shard} changed size while being read`, 'try again once the trainer has finished saving');
  }
  return bytes;
}

/** Undefined when the shard's content matches the hash in its name (or its name carries none), else the problem. */
export function shardHashProblem(shard: string, bytes: Uint8Array): string | undefined {
  const named = HASHED_SHARD.exec(shard)?.[1];
  if (named === undefined || contentHash(bytes) === named) return undefined;
  return `weight file ${shard} does not match the content hash in its name (damaged or modified after saving)`;
}

/** Little-endian float32 values in the order of shapes, each checked to be finite. */
export function decodeFloats(
  bytes: Buffer,
  shapes: Array<[string, number[]]>,
  fail: (problem: string) => Error,
): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  let offset = 0;
  for (const [name, shape] of shapes) {
    // A copy per weight: the file buffer need not be 4-byte aligned, and callers may keep one
    // weight without pinning the whole file.
    const values = new Float32Array(elementCount(shape));
    const view = new Uint8Array(values.buffer);
    view.set(bytes.subarray(offset, offset + view.length));
    if (BIG_ENDIAN) Buffer.from(values.buffer).swap32();
    offset += view.length;
    const bad = firstNonFinite(values);
    if (bad >= 0) throw fail(`weight "${name}" has a non-finite value (${values[bad]}) at index ${bad}`);
    weights.set(name, values);
  }
  return weights;
}

/** Whether a process of this machine runs: a lock or temporary file whose writer is gone was left behind. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Changes whenever the file is replaced (saves rename a new file into place) or written; '' for
 * anything that cannot be looked at: absent, below a file, or not permitted.
 */
export function fileSignature(file: string): string {
  try {
    const stat = fs.statSync(file);
    return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  } catch {
    return '';
  }
}
