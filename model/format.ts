// The model directory: written by the trainer, loaded by the language server. It is a contract
// between two programs that may be different versions, so everything read is checked, and the
// layout is TensorFlow.js's weights format so that tfjs tooling can open the weights directly.
//
// Deliberately free of tfjs tensors (Float32Array only), so that saving and loading never depend
// on which backend is active or has been initialised.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parameterShapes, type NetworkConfig } from './architecture';
import {
  decodeFloats,
  elementCount,
  encodeWeights,
  firstNonFinite,
  ModelFormatError,
  randomSuffix,
  readRegularFile,
  readShard,
  replaceAtomically,
  RETRAIN_REMEDY,
  shardHashProblem,
  writeShard,
} from './files';
import { EscapeFormatError, EscapeModel } from './escape';
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
  /** What characters outside the vocabulary cost; a model saved without one loads with EscapeModel.fromVocabulary. */
  escape?: EscapeModel;
}

/** JSON-serialisable; extra keys are kept as they are. */
export interface ModelMetadata {
  /** ISO time. */
  createdAt: string;
  hyperparameters: Record<string, number | string | boolean>;
  corpus: {
    sources: string[];
    chars: number;
    trainChars: number;
    validationChars: number;
    split: string;
    /** What the notes' memory read: trainChars, or with the validation text too; absent before models kept it. */
    notesChars?: number;
  };
  validation: { nats: number; bpc: number } | null;
  trainedChars: number;
  steps: number;
  seconds: number;
  backend: string;
  [key: string]: unknown;
}

/** The metadata of a model that no trainer wrote (a benchmark's or a test's untrained network): nothing trained, no corpus. */
export function untrainedMetadata(backend: string, steps = 0): ModelMetadata {
  return {
    createdAt: new Date().toISOString(),
    hyperparameters: {},
    corpus: { sources: [], chars: 0, trainChars: 0, validationChars: 0, split: '' },
    validation: null,
    trainedChars: 0,
    steps,
    seconds: 0,
    backend,
  };
}

/** The file whose replacement marks a new model: what a file watcher should watch. */
export function modelFilePath(dir: string): string {
  return path.join(dir, MODEL_FILE);
}

// Beyond these a model.json is corrupt or hostile rather than big, and trusting it would mean
// allocating gigabytes before noticing the weight file does not match.
const LIMITS: Record<keyof NetworkConfig, number> = { vocabSize: 65536, embed: 8192, hidden: 8192, layers: 16 };

function invalid(dir: string, problem: string, remedy = RETRAIN_REMEDY): ModelFormatError {
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
  if (corpus.notesChars !== undefined) finite(corpus.notesChars, 'corpus.notesChars');
  if (value.validation !== null) {
    if (!isObject(value.validation)) throw fail('metadata.validation must be an object or null');
    finite(value.validation.nats, 'validation.nats');
    finite(value.validation.bpc, 'validation.bpc');
  }
  for (const field of ['trainedChars', 'steps', 'seconds'] as const) finite(value[field], field);
  str(value.backend, 'backend');
  return value as ModelMetadata;
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
  // Each entry is one code point, so the joined entries tell two vocabularies apart.
  if (model.escape && model.escape.vocabulary.chars.join('') !== model.vocabulary.chars.join(''))
    throw cannotSave('the escape model was built for another vocabulary');
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
    ...(model.escape ? { escape: model.escape.toJSON() } : {}),
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
  escape: EscapeModel;
  metadata: ModelMetadata;
  shapes: Array<[string, number[]]>;
  shard: string;
}

// A model.json is a few hundred kilobytes at most (a 65,536-symbol vocabulary); anything far
// bigger is not one, and reading it whole could exhaust memory.
const MAX_MODEL_JSON_BYTES = 16 * 1024 * 1024;

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
      `update ${GENERATED_BY} or ${RETRAIN_REMEDY}`,
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
  let escape: EscapeModel;
  try {
    escape =
      json.escape === undefined
        ? EscapeModel.fromVocabulary(vocabulary)
        : EscapeModel.fromJSON(json.escape, vocabulary);
  } catch (err) {
    if (!(err instanceof EscapeFormatError)) throw err;
    throw fail(`bad escape model (${err.message})`);
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
  return { config, vocabulary, escape, metadata, shapes, shard };
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

/** model.json's metadata alone, checked as loadModel checks it, without reading the weights. */
export function readModelMetadata(dir: string): ModelMetadata {
  return parseModel(dir, readModelText(dir)).metadata;
}

/** The vocabulary from model.json alone, checked as loadModel checks it, without reading the weights. */
export function readModelVocabulary(dir: string): Vocabulary {
  return parseModel(dir, readModelText(dir)).vocabulary;
}

/** The loaded model and the name of its weight file, which names their content. */
export function loadModel(dir: string): SavedModel & { escape: EscapeModel; weightsFile: string } {
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
        escape: parsed.escape,
        weights,
        metadata: parsed.metadata,
        weightsFile: parsed.shard,
      };
    if (attempt >= 2 || readModelText(dir) === text) {
      throw invalid(dir, `weight file ${parsed.shard} is missing`);
    }
  }
}
