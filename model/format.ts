// The model directory: written by the trainer, loaded by the language server. It is a contract
// between two programs that may be different versions, so everything read is checked, and the
// layout is TensorFlow.js's weights format so that tfjs tooling can open the weights directly.
//
// Deliberately free of tfjs tensors (Float32Array only), so that saving and loading never depend
// on which backend is active or has been initialised.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parameterShapes, type NetworkConfig } from './architecture';
import { Vocabulary } from './vocab';

export const MODEL_FORMAT = 'char-lstm';
export const FORMAT_VERSION = 1;
const GENERATED_BY = 'char-complete';
const MODEL_FILE = 'model.json';

export interface SavedModel {
  config: NetworkConfig;
  vocabulary: Vocabulary;
  /** Names and shapes as parameterShapes(config); flat row-major values. */
  weights: Map<string, Float32Array>;
  metadata: ModelMetadata;
}

/** JSON-serialisable; extra keys are kept as they are. */
export interface ModelMetadata {
  /** ISO time. */
  createdAt: string;
  hyperparameters: Record<string, number | string | boolean>;
  corpus: { sources: string[]; chars: number; trainChars: number; validationChars: number; split: string };
  validation: { nats: number; bpc: number } | null;
  trainedChars: number;
  steps: number;
  seconds: number;
  backend: string;
  [key: string]: unknown;
}

export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

/** The file whose replacement marks a new model: what a file watcher should watch. */
export function modelFilePath(dir: string): string {
  return path.join(dir, MODEL_FILE);
}

const RETRAIN = 'retrain with `npm run train`';

// Beyond these a model.json is corrupt or hostile rather than big, and trusting it would mean
// allocating gigabytes before noticing the weight file does not match.
const LIMITS: Record<keyof NetworkConfig, number> = { vocabSize: 65536, embed: 8192, hidden: 8192, layers: 16 };

function invalid(dir: string, problem: string, remedy = RETRAIN): ModelFormatError {
  return new ModelFormatError(`invalid model at ${dir}: ${problem}; ${remedy}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkConfig(value: unknown, fail: (problem: string) => ModelFormatError): NetworkConfig {
  if (!isObject(value)) throw fail('modelTopology.config must be an object');
  const config = {} as NetworkConfig;
  for (const key of Object.keys(LIMITS) as Array<keyof NetworkConfig>) {
    const n = value[key];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
      throw fail(`config.${key} must be a positive integer, got ${JSON.stringify(n)}`);
    }
    if (n > LIMITS[key]) throw fail(`config.${key} = ${n} exceeds the limit of ${LIMITS[key]}`);
    config[key] = n;
  }
  return config;
}

function checkMetadata(value: unknown, fail: (problem: string) => ModelFormatError): ModelMetadata {
  if (!isObject(value)) throw fail('metadata must be an object');
  // JSON turns NaN and Infinity into null, so a non-finite number would not survive a round trip.
  const finite = (v: unknown, field: string): void => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw fail(`metadata.${field} must be a finite number, got ${JSON.stringify(v)}`);
  };
  const str = (v: unknown, field: string): void => {
    if (typeof v !== 'string') throw fail(`metadata.${field} must be a string`);
  };
  str(value.createdAt, 'createdAt');
  if (Number.isNaN(Date.parse(value.createdAt as string)))
    throw fail(`metadata.createdAt is not an ISO time: ${JSON.stringify(value.createdAt)}`);
  if (!isObject(value.hyperparameters)) throw fail('metadata.hyperparameters must be an object');
  for (const [key, v] of Object.entries(value.hyperparameters)) {
    if (typeof v === 'number') finite(v, `hyperparameters.${key}`);
    else if (typeof v !== 'string' && typeof v !== 'boolean')
      throw fail(`metadata.hyperparameters.${key} must be a number, string or boolean`);
  }
  const corpus = value.corpus;
  if (!isObject(corpus)) throw fail('metadata.corpus must be an object');
  if (!Array.isArray(corpus.sources) || !corpus.sources.every((s) => typeof s === 'string'))
    throw fail('metadata.corpus.sources must be an array of strings');
  for (const field of ['chars', 'trainChars', 'validationChars'] as const) finite(corpus[field], `corpus.${field}`);
  str(corpus.split, 'corpus.split');
  if (value.validation !== null) {
    if (!isObject(value.validation)) throw fail('metadata.validation must be an object or null');
    finite(value.validation.nats, 'validation.nats');
    finite(value.validation.bpc, 'validation.bpc');
  }
  for (const field of ['trainedChars', 'steps', 'seconds'] as const) finite(value[field], field);
  str(value.backend, 'backend');
  return value as ModelMetadata;
}

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function firstNonFinite(values: Float32Array): number {
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
    throw err;
  }
  syncDirectory(dir);
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

/** Saves atomically; returns the weight file's name, which names its content. */
export function saveModel(dir: string, model: SavedModel): string {
  const cannotSave = (problem: string, remedy = 'this is a bug in the caller of saveModel') =>
    new ModelFormatError(`cannot save model to ${dir}: ${problem}; ${remedy}`);
  // The same checks the loader makes, so a model that saves always loads.
  const config = checkConfig(model.config, cannotSave);
  if (model.vocabulary.size !== config.vocabSize) {
    throw cannotSave(`vocabulary has ${model.vocabulary.size} entries but config.vocabSize is ${config.vocabSize}`);
  }
  const shapes = parameterShapes(config);
  const expected = new Set(shapes.map(([name]) => name));
  for (const name of model.weights.keys()) {
    if (!expected.has(name)) throw cannotSave(`unexpected weight "${name}"`);
  }
  for (const [name, shape] of shapes) {
    const w = model.weights.get(name);
    if (!(w instanceof Float32Array)) throw cannotSave(`weight "${name}" is missing or not a Float32Array`);
    if (w.length !== elementCount(shape))
      throw cannotSave(`weight "${name}" has ${w.length} values, expected ${elementCount(shape)} for shape [${shape}]`);
    const bad = firstNonFinite(w);
    if (bad >= 0) {
      throw cannotSave(
        `weight "${name}" has a non-finite value (${w[bad]}) at index ${bad}`,
        'training diverged: lower the learning rate or retrain from an earlier checkpoint',
      );
    }
  }
  const metadata = checkMetadata(model.metadata, cannotSave);

  const shard = writeShard(dir, encodeWeights(shapes, model.weights));
  const json = {
    format: MODEL_FORMAT,
    formatVersion: FORMAT_VERSION,
    generatedBy: GENERATED_BY,
    modelTopology: { config },
    weightsManifest: [{ paths: [shard], weights: shapes.map(([name, shape]) => ({ name, shape, dtype: 'float32' })) }],
    vocabulary: model.vocabulary.toJSON(),
    metadata,
  };
  let text: string;
  try {
    text = JSON.stringify(json, null, 2) + '\n';
  } catch (err) {
    throw cannotSave(`metadata is not JSON-serialisable (${(err as Error).message})`);
  }
  replaceAtomically(dir, `${MODEL_FILE}.tmp-${randomSuffix()}`, MODEL_FILE, text);

  // Only after the commit: until then the old model.json may still reference the old shard.
  // Best effort, because the new model is already in place and a leftover file is harmless.
  // Assumes one writer per directory: another saver's temporary files would be removed too.
  for (const entry of fs.readdirSync(dir)) {
    const stale =
      (entry.startsWith('weights.') && entry.endsWith('.bin') && entry !== shard) ||
      entry.startsWith(`${MODEL_FILE}.tmp-`) ||
      entry.startsWith('weights.bin.tmp-');
    if (!stale) continue;
    try {
      fs.rmSync(path.join(dir, entry), { force: true });
    } catch {
      // Left for the next save to remove.
    }
  }
  return shard;
}

interface ParsedModel {
  config: NetworkConfig;
  vocabulary: Vocabulary;
  metadata: ModelMetadata;
  shapes: Array<[string, number[]]>;
  shard: string;
}

// A model.json is a few hundred kilobytes at most (a 65,536-symbol vocabulary); anything far
// bigger is not one, and reading it whole could exhaust memory.
const MAX_MODEL_JSON_BYTES = 16 * 1024 * 1024;

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
      throw fail(`${name} is not a regular file`, `replace it with the file the trainer writes, or ${RETRAIN}`);
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

function readModelText(dir: string): string {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat) throw new ModelFormatError(`no model at ${dir}: train one with \`npm run train\``);
  if (!stat.isDirectory())
    throw new ModelFormatError(
      `no model at ${dir}: it is not a directory; point the model path at the directory the trainer wrote`,
    );
  const bytes = readRegularFile(modelFilePath(dir), MAX_MODEL_JSON_BYTES, (problem, remedy) =>
    invalid(dir, problem, remedy),
  );
  if (!bytes)
    throw new ModelFormatError(`no model at ${dir}: ${MODEL_FILE} is missing; train one with \`npm run train\``);
  return bytes.toString('utf8');
}

function parseModel(dir: string, text: string): ParsedModel {
  const fail = (problem: string, remedy?: string) => invalid(dir, problem, remedy);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the text, and model.json may be a link to any file: give only where.
    const where = /position (\d+)/.exec((err as Error).message);
    throw fail(
      `${MODEL_FILE} is not valid JSON (${where ? `error at character ${where[1]} of ${text.length}` : `${text.length} characters`}; content not shown)`,
    );
  }
  if (!isObject(json)) throw fail(`${MODEL_FILE} is not a JSON object`);
  if (json.format !== MODEL_FORMAT)
    throw fail(
      `${MODEL_FILE} is not a ${MODEL_FORMAT} model (its "format" field is ${typeof json.format === 'string' ? 'another' : 'missing'})`,
    );
  const version = json.formatVersion;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw fail(`formatVersion must be a positive integer, got ${JSON.stringify(version)}`);
  }
  if (version > FORMAT_VERSION) {
    throw fail(
      `written by a newer version of ${GENERATED_BY} (format version ${version}; this one reads up to ${FORMAT_VERSION})`,
      `update ${GENERATED_BY} or ${RETRAIN}`,
    );
  }
  const topology = json.modelTopology;
  const config = checkConfig(isObject(topology) ? topology.config : undefined, fail);

  let vocabulary: Vocabulary;
  try {
    vocabulary = Vocabulary.fromJSON(json.vocabulary);
  } catch (err) {
    throw fail(`bad vocabulary (${(err as Error).message})`);
  }
  if (vocabulary.size !== config.vocabSize) {
    throw fail(`vocabulary has ${vocabulary.size} entries but config.vocabSize is ${config.vocabSize}`);
  }

  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest) || manifest.length !== 1 || !isObject(manifest[0])) {
    throw fail('weightsManifest must hold exactly one group');
  }
  const group = manifest[0];
  if (!Array.isArray(group.paths) || group.paths.length !== 1 || typeof group.paths[0] !== 'string') {
    throw fail('weightsManifest must name exactly one weight file');
  }
  const shard: string = group.paths[0];
  const root = path.resolve(dir);
  const relative = path.relative(root, path.resolve(root, shard));
  if (
    shard === '' ||
    path.isAbsolute(shard) ||
    path.win32.isAbsolute(shard) ||
    /[/\\\0]/.test(shard) ||
    shard.includes('..') ||
    relative === '' ||
    relative.startsWith('..') ||
    path.isAbsolute(relative)
  ) {
    throw fail(`weight file path escapes the model directory (${JSON.stringify(shard)})`);
  }

  const shapes = parameterShapes(config);
  const entries = group.weights;
  if (!Array.isArray(entries) || entries.length !== shapes.length) {
    throw fail(
      `weightsManifest lists ${Array.isArray(entries) ? entries.length : 'no'} weights, expected ${shapes.length} for config ${JSON.stringify(config)}`,
    );
  }
  shapes.forEach(([name, shape], i) => {
    const entry: unknown = entries[i];
    if (!isObject(entry)) throw fail(`weightsManifest entry ${i} is not an object`);
    if (entry.name !== name)
      throw fail(`weightsManifest entry ${i} is ${JSON.stringify(entry.name)}, expected "${name}"`);
    const actual = entry.shape;
    if (!Array.isArray(actual) || actual.length !== shape.length || actual.some((d, k) => d !== shape[k])) {
      throw fail(
        `weight "${name}" has shape ${JSON.stringify(actual)}, expected [${shape}] for config ${JSON.stringify(config)}`,
      );
    }
    if (entry.dtype !== 'float32')
      throw fail(`weight "${name}" has dtype ${JSON.stringify(entry.dtype)}, only float32 is supported`);
    // tfjs quantisation would change the byte layout this reader assumes.
    if (entry.quantization !== undefined) throw fail(`weight "${name}" is quantised, which is not supported`);
  });

  const metadata = checkMetadata(json.metadata, fail);
  return { config, vocabulary, metadata, shapes, shard };
}

// The name saveModel gives a shard: its content hash, which the loader checks.
const HASHED_SHARD = /^[a-z]+\.([0-9a-f]{12})\.bin$/;

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

/** Returns null when the file does not exist, so the caller can tell a concurrent save from damage. */
function readWeights(dir: string, parsed: ParsedModel): Map<string, Float32Array> | null {
  const expectedBytes = parsed.shapes.reduce((sum, [, shape]) => sum + elementCount(shape), 0) * 4;
  const fail = (problem: string, remedy?: string) => invalid(dir, problem, remedy);
  const bytes = readShard(dir, parsed.shard, expectedBytes, fail);
  if (!bytes) return null;
  // A non-finite value is the more specific finding, so it is looked for before the hash.
  const weights = decodeFloats(bytes, parsed.shapes, fail);
  const problem = shardHashProblem(parsed.shard, bytes);
  if (problem) throw fail(problem);
  return weights;
}

/** The network's shape from model.json alone, checked as loadModel checks it, without reading the weights. */
export function readModelConfig(dir: string): NetworkConfig {
  return parseModel(dir, readModelText(dir)).config;
}

/** The loaded model and the name of its weight file, which names their content. */
export function loadModel(dir: string): SavedModel & { weightsFile: string } {
  // A save that commits between our reading model.json and reading its shard deletes that shard.
  // If model.json has changed meanwhile, reading again gets the new, complete model.
  for (let attempt = 0; ; attempt++) {
    const text = readModelText(dir);
    const parsed = parseModel(dir, text);
    const weights = readWeights(dir, parsed);
    if (weights)
      return {
        config: parsed.config,
        vocabulary: parsed.vocabulary,
        weights,
        metadata: parsed.metadata,
        weightsFile: parsed.shard,
      };
    if (attempt >= 2 || readModelText(dir) === text) {
      throw invalid(dir, `weight file ${parsed.shard} is missing`);
    }
  }
}
