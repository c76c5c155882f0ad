// Adam's moments and step, saved next to the weights they were computed for, so that --resume
// continues the same optimisation instead of restarting Adam from zero moments (the way nanoGPT's
// checkpoints carry optimizer.state_dict()). The pairing with the weights is by the weight file's
// name, which names its content: a state written for other weights is never applied.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parameterShapes, type NetworkConfig } from '../model/architecture';
import {
  decodeFloats,
  elementCount,
  encodeWeights,
  ModelFormatError,
  randomSuffix,
  readRegularFile,
  readShard,
  replaceAtomically,
  shardHashProblem,
  writeShard,
} from '../model/files';

export const OPTIMIZER_FILE = 'optimizer.json';
const OPTIMIZER_FORMAT = 'char-lstm-adam';
const OPTIMIZER_VERSION = 1;
const SHARD_PREFIX = 'adam';
const MAX_OPTIMIZER_JSON_BYTES = 1024 * 1024;

export interface OptimizerState {
  /** Updates applied so far; bias correction and the warm-up depend on it. */
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/** The moments' shapes in file order: every first moment, then every second moment. */
function momentShapes(config: NetworkConfig): Array<[string, number[]]> {
  const shapes = parameterShapes(config);
  return [
    ...shapes.map(([name, shape]): [string, number[]] => [`m/${name}`, shape]),
    ...shapes.map(([name, shape]): [string, number[]] => [`v/${name}`, shape]),
  ];
}

/**
 * Saves the state for the weights stored in weightsFile (what saveModel returned). Written after
 * the model, so a crash in between leaves a state that names other weights, which loading ignores.
 */
export function saveOptimizerState(
  dir: string,
  config: NetworkConfig,
  weightsFile: string,
  state: OptimizerState,
): void {
  const values = new Map<string, Float32Array>();
  for (const [name] of parameterShapes(config)) {
    values.set(`m/${name}`, state.m.get(name)!);
    values.set(`v/${name}`, state.v.get(name)!);
  }
  const shard = writeShard(dir, encodeWeights(momentShapes(config), values), SHARD_PREFIX);
  const json = {
    format: OPTIMIZER_FORMAT,
    formatVersion: OPTIMIZER_VERSION,
    weights: weightsFile,
    step: state.step,
    shard,
  };
  replaceAtomically(
    dir,
    `${OPTIMIZER_FILE}.tmp-${randomSuffix()}`,
    OPTIMIZER_FILE,
    JSON.stringify(json, null, 2) + '\n',
  );
  for (const entry of fs.readdirSync(dir)) {
    const stale =
      (entry.startsWith(`${SHARD_PREFIX}.`) && entry.endsWith('.bin') && entry !== shard) ||
      entry.startsWith(`${OPTIMIZER_FILE}.tmp-`);
    if (stale) fs.rmSync(path.join(dir, entry), { force: true });
  }
}

/**
 * The state saved for the weights in weightsFile; undefined with the reason when there is none to
 * use (an older model, or a state that belongs to other weights). Damage is a ModelFormatError.
 */
export function loadOptimizerState(
  dir: string,
  config: NetworkConfig,
  weightsFile: string,
): OptimizerState | { missing: string } {
  const fail = (problem: string, remedy = 'resume without it by deleting optimizer.json, or retrain') =>
    new ModelFormatError(`invalid optimizer state at ${dir}: ${problem}; ${remedy}`);
  const bytes = readRegularFile(path.join(dir, OPTIMIZER_FILE), MAX_OPTIMIZER_JSON_BYTES, fail);
  if (!bytes) return { missing: `${OPTIMIZER_FILE} is absent (a model saved by an older version)` };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw fail(`${OPTIMIZER_FILE} is not valid JSON`);
  }
  if (typeof json !== 'object' || json === null || json.format !== OPTIMIZER_FORMAT)
    throw fail(`${OPTIMIZER_FILE} is not a ${OPTIMIZER_FORMAT} state`);
  if (json.formatVersion !== OPTIMIZER_VERSION)
    throw fail(
      `${OPTIMIZER_FILE} has format version ${JSON.stringify(json.formatVersion)}; this version reads ${OPTIMIZER_VERSION}`,
    );
  if (json.weights !== weightsFile)
    return { missing: `${OPTIMIZER_FILE} belongs to other weights than ${weightsFile}` };
  const step = json.step;
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0)
    throw fail(`step must be a non-negative integer, got ${JSON.stringify(step)}`);
  const shard = json.shard;
  if (typeof shard !== 'string' || !/^adam\.[0-9a-f]{12}\.bin$/.test(shard))
    throw fail('shard must name an adam.<hash>.bin file in the model directory');
  const shapes = momentShapes(config);
  const expectedBytes = shapes.reduce((sum, [, shape]) => sum + elementCount(shape), 0) * 4;
  const data = readShard(dir, shard, expectedBytes, fail);
  if (!data) throw fail(`${shard} is missing`);
  const values = decodeFloats(data, shapes, fail);
  const problem = shardHashProblem(shard, data);
  if (problem) throw fail(problem);
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name] of parameterShapes(config)) {
    m.set(name, values.get(`m/${name}`)!);
    v.set(name, values.get(`v/${name}`)!);
  }
  return { step, m, v };
}
