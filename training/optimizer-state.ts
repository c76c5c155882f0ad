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
/** Version 2 may keep the weights Adam steps after the moments; version 1, which never does, still reads. */
const OPTIMIZER_VERSION = 2;
const READABLE_VERSIONS = [1, 2];
const SHARD_PREFIX = 'adam';
const MAX_OPTIMIZER_JSON_BYTES = 1024 * 1024;

export interface OptimizerState {
  /** Updates applied so far: bias correction depends on it, and the trainer's place in the data and dropout seeds go on from it. */
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  /**
   * The weights Adam steps, when the saved weights are their average (training/schedule.ts's averageRate) rather
   * than themselves; absent, Adam goes on from the saved weights.
   */
  trained?: Map<string, Float32Array>;
}

/**
 * The shard's shapes in file order: every first moment (`m/NAME`), then every second moment (`v/NAME`), then any
 * weights Adam steps (`w/NAME`). The torch engine hands its checkpoints over in this layout too, after the weights.
 */
export function stateShapes(config: NetworkConfig, trained: boolean): Array<[string, number[]]> {
  const shapes = parameterShapes(config);
  const section = (prefix: string) => shapes.map(([name, shape]): [string, number[]] => [`${prefix}/${name}`, shape]);
  return [...section('m'), ...section('v'), ...(trained ? section('w') : [])];
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
    if (state.trained) values.set(`w/${name}`, state.trained.get(name)!);
  }
  const trained = state.trained !== undefined;
  const shard = writeShard(dir, encodeWeights(stateShapes(config, trained), values), SHARD_PREFIX);
  const json = {
    format: OPTIMIZER_FORMAT,
    formatVersion: OPTIMIZER_VERSION,
    weights: weightsFile,
    step: state.step,
    trained,
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

/** Far beyond the steps of any training run, and within the 32-bit integers the dropout seeds are derived in. */
const MAX_STEP = 2 ** 31 - 1;

/** Why a saved state exists but cannot be used. */
export interface UnusableState {
  missing: string;
  /** The file is there but damaged or implausible, so it deserves a warning rather than a note. */
  damaged: true;
}

/**
 * The state saved for the weights in weightsFile; otherwise the reason there is none to use: an
 * older model, a state that belongs to other weights, or one that is damaged or could not have
 * come from Adam. A bad state is never fatal: the weights are what matter, and Adam restarting
 * from zero moments costs only its warm-up.
 */
export function loadOptimizerState(
  dir: string,
  config: NetworkConfig,
  weightsFile: string,
): OptimizerState | { missing: string } | UnusableState {
  try {
    return readOptimizerState(dir, config, weightsFile);
  } catch (error) {
    if (!(error instanceof ModelFormatError)) throw error;
    return { missing: error.message, damaged: true };
  }
}

function readOptimizerState(
  dir: string,
  config: NetworkConfig,
  weightsFile: string,
): OptimizerState | { missing: string } {
  const fail = (problem: string) =>
    new ModelFormatError(`${OPTIMIZER_FILE} in ${dir} is unusable and ignored: ${problem}`);
  const bytes = readRegularFile(path.join(dir, OPTIMIZER_FILE), MAX_OPTIMIZER_JSON_BYTES, fail);
  if (!bytes) return { missing: `${OPTIMIZER_FILE} is absent (a model saved by an older version)` };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw fail('it is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || json.format !== OPTIMIZER_FORMAT)
    throw fail(`it is not a ${OPTIMIZER_FORMAT} state`);
  if (!READABLE_VERSIONS.includes(json.formatVersion as number))
    throw fail(`its format version is not one this version reads (${READABLE_VERSIONS.join(' or ')})`);
  const trained = json.trained ?? false;
  if (typeof trained !== 'boolean') throw fail('its "trained" must be true or false');
  if (json.weights !== weightsFile)
    return { missing: `${OPTIMIZER_FILE} belongs to other weights than ${weightsFile}` };
  const step = json.step;
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0 || step > MAX_STEP)
    throw fail(
      `its step must be an integer from 0 to ${MAX_STEP}, got ${typeof step === 'number' ? step : `a ${typeof step}`}`,
    );
  const shard = json.shard;
  if (typeof shard !== 'string' || !/^adam\.[0-9a-f]{12}\.bin$/.test(shard))
    throw fail('its shard must name an adam.<hash>.bin file in the model directory');
  const shapes = stateShapes(config, trained);
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
    const second = values.get(`v/${name}`)!;
    // A mean of squared gradients: a negative one would make Adam take the square root of it.
    const negative = second.findIndex((x) => x < 0);
    if (negative >= 0)
      throw fail(
        `the second moment of "${name}" is negative (${second[negative]}) at index ${negative}, which Adam never produces`,
      );
    v.set(name, second);
  }
  if (!trained) return { step, m, v };
  return { step, m, v, trained: new Map(parameterShapes(config).map(([name]) => [name, values.get(`w/${name}`)!])) };
}
