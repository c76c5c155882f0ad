// A saved optimizer state that Adam could not have produced is named and ignored, and --resume goes on with a fresh Adam.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parameterShapes, type NetworkConfig } from '../model/architecture';
import { elementCount } from '../model/files';
import { loadModel } from '../model/format';
import {
  loadOptimizerState,
  OPTIMIZER_FILE,
  saveOptimizerState,
  type OptimizerState,
} from '../training/optimizer-state';
import { tempModelDir } from './support/temp-dirs';

const TRAINER = join(__dirname, '..', 'train.js');
const config: NetworkConfig = { vocabSize: 5, embed: 3, hidden: 4, layers: 1 };
const WEIGHTS = 'weights.0123456789ab.bin';

/** Moments of the right shapes: small positive second moments, as Adam leaves them. */
function plausibleState(step = 7): OptimizerState {
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(config)) {
    m.set(
      name,
      new Float32Array(elementCount(shape)).map((_, i) => Math.sin(i) * 1e-3),
    );
    v.set(
      name,
      new Float32Array(elementCount(shape)).map((_, i) => (1 + (i % 3)) * 1e-6),
    );
  }
  return { step, m, v };
}

/** Saved through the real writer, so the shard's content hash and the file's format are valid. */
function saved(state: OptimizerState): string {
  const dir = tempModelDir('char-adam');
  saveOptimizerState(dir, config, WEIGHTS, state);
  return dir;
}

function assertIgnored(dir: string, pattern: RegExp): void {
  const loaded = loadOptimizerState(dir, config, WEIGHTS);
  assert.ok('missing' in loaded, 'the state is not used');
  assert.ok('damaged' in loaded && loaded.damaged, 'and is reported as damaged rather than absent');
  assert.match(loaded.missing, new RegExp(`${OPTIMIZER_FILE} in .* is unusable and ignored: `));
  assert.match(loaded.missing, pattern);
}

test('a plausible state loads as saved', () => {
  const state = plausibleState();
  const loaded = loadOptimizerState(saved(state), config, WEIGHTS);
  assert.ok(!('missing' in loaded));
  assert.equal(loaded.step, 7);
  assert.deepEqual(loaded.v, state.v);
});

test('the weights Adam steps load as saved beside the moments, and a state from before them loads without', () => {
  const state = plausibleState();
  state.trained = new Map(
    parameterShapes(config).map(([name, shape]) => [
      name,
      new Float32Array(elementCount(shape)).map((_, i) => Math.cos(i)),
    ]),
  );
  const dir = saved(state);
  const loaded = loadOptimizerState(dir, config, WEIGHTS);
  assert.ok(!('missing' in loaded));
  assert.deepEqual(loaded.trained, state.trained);
  assert.deepEqual(loaded.m, state.m);

  // Version 1, as saved before the weights were averaged: moments alone, in the same shard layout.
  const old = saved(plausibleState());
  const file = join(old, OPTIMIZER_FILE);
  const json = JSON.parse(readFileSync(file, 'utf8'));
  delete json.trained;
  json.formatVersion = 1;
  writeFileSync(file, JSON.stringify(json));
  const fromBefore = loadOptimizerState(old, config, WEIGHTS);
  assert.ok(!('missing' in fromBefore), 'a version 1 state still loads');
  assert.equal(fromBefore.trained, undefined, 'Adam goes on from the saved weights');
  assert.deepEqual(fromBefore.v, plausibleState().v);

  json.formatVersion = 3;
  writeFileSync(file, JSON.stringify(json));
  assertIgnored(old, /format version is not one this version reads \(1 or 2\)/);
});

test('negative second moments with a valid content hash are named and ignored', () => {
  const state = plausibleState();
  const [name] = parameterShapes(config)[1];
  state.v.get(name)![2] = -0.5;
  assertIgnored(saved(state), new RegExp(`second moment of "${name}" is negative \\(-0\\.5\\) at index 2`));
});

test('a step that is not a sane non-negative integer is named and ignored', () => {
  for (const [step, shown] of [
    [1e300, /step must be an integer from 0 to 2147483647, got 1e\+300/],
    [-3, /got -3/],
    [2.5, /got 2\.5/],
  ] as const) {
    assertIgnored(saved(plausibleState(step)), shown);
  }
  const dir = saved(plausibleState());
  const file = join(dir, OPTIMIZER_FILE);
  writeFileSync(file, readFileSync(file, 'utf8').replace(/"step": \d+/, '"step": "SECRET"'));
  assertIgnored(dir, /got a string/);
  const loaded = loadOptimizerState(dir, config, WEIGHTS);
  assert.ok('missing' in loaded && !loaded.missing.includes('SECRET'), 'quotes nothing from the file');
});

test('non-finite first moments and damaged files are ignored too, never fatal', () => {
  const state = plausibleState();
  state.m.get(parameterShapes(config)[0][0])![0] = Number.NaN;
  assertIgnored(saved(state), /non-finite value/);
  const dir = saved(plausibleState());
  writeFileSync(join(dir, OPTIMIZER_FILE), '{ not json');
  assertIgnored(dir, /not valid JSON/);
});

test('--resume with a poisoned optimizer state warns, starts Adam afresh and trains on', () => {
  const out = tempModelDir('char-adam-resume');
  const notes = join(out, '..', 'notes.md');
  writeFileSync(notes, 'the quick brown fox jumps over the lazy dog.\n'.repeat(200));
  const small = ['--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '16', '--batch', '4', '--backend', 'wasm'];
  const run = (args: string[]) =>
    spawnSync(process.execPath, [TRAINER, notes, '--out', out, ...small, ...args], {
      encoding: 'utf8',
      timeout: 180_000,
      env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
    });
  const first = run(['--chars', '20000']);
  assert.equal(first.status, 0, first.stderr);
  const model = loadModel(out);
  const state = loadOptimizerState(out, model.config, model.weightsFile);
  assert.ok(!('missing' in state), 'the first run saved its optimizer state');
  const [name] = parameterShapes(model.config)[0];
  state.v.get(name)![0] = -1;
  saveOptimizerState(out, model.config, model.weightsFile, state);

  const resumed = run(['--resume', '--chars', '20000']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /optimizer\.json in .* is unusable and ignored: the second moment of .* is negative/);
  assert.match(resumed.stdout, /Adam starts afresh/);
  assert.doesNotMatch(resumed.stdout + resumed.stderr, /diverged|\n\s+at /);
  const after = loadModel(out);
  const rewritten = loadOptimizerState(out, after.config, after.weightsFile);
  assert.ok(!('missing' in rewritten), 'the run saved a sound state in place of the poisoned one');
});
