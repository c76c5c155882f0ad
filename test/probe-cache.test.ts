// The serving rule (a small model skips the GPU probe) and the probe's cache per model shape and machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CPU_WINS_BELOW_PARAMETERS,
  cpuWinsRule,
  parameterCount,
  ProbeCache,
  probeKey,
  servingOptions,
} from '../backends/probe-cache';
import { selectBackend } from '../backends/select';
import { tempDir } from './support/temp-dirs';

const SMALL = { vocabSize: 96, embed: 64, hidden: 256, layers: 2 };
const LARGE = { vocabSize: 96, embed: 64, hidden: 1024, layers: 3 };

function cacheFile(): string {
  return join(tempDir('char-complete-probe'), 'cache', 'backend-probe.json');
}

test('parameters are counted from the shapes', () => {
  const lstm = (input: number) => input * 4 * 256 + 256 * 4 * 256 + 4 * 256;
  assert.equal(parameterCount(SMALL), 96 * 64 + lstm(64) + lstm(256) + 256 * 96 + 96);
});

test('the default 2×256 model is served by the CPU without a probe; a 3×1024 one is measured', () => {
  assert.ok(parameterCount(SMALL) < CPU_WINS_BELOW_PARAMETERS);
  assert.match(cpuWinsRule(SMALL) ?? '', /^the model has 0\.9 M parameters, below the 4 M under which the CPU wins/);
  assert.ok(parameterCount(LARGE) > CPU_WINS_BELOW_PARAMETERS);
  assert.equal(cpuWinsRule(LARGE), undefined);
});

test('the key changes with the shape, the beam width and the machine', () => {
  const key = probeKey(LARGE, 4, 'host-a');
  assert.equal(probeKey(LARGE, 4, 'host-a'), key);
  assert.notEqual(probeKey({ ...LARGE, hidden: 512 }, 4, 'host-a'), key);
  assert.notEqual(probeKey(LARGE, 8, 'host-a'), key);
  assert.notEqual(probeKey(LARGE, 4, 'host-b'), key);
});

test('a measurement is cached, and the next start uses it instead of probing', () => {
  const cache = new ProbeCache(cacheFile());
  assert.deepEqual(servingOptions(SMALL, 4, cache), { skipGpu: cpuWinsRule(SMALL) }, 'small: no probe, nothing cached');
  const first = servingOptions(LARGE, 4, cache);
  assert.equal(first.skipGpu, undefined);
  assert.equal(first.gpuMeasuredFaster, undefined);
  first.measured!({ winner: 'cpu', timings: 'webgpu 5 ms vs wasm 3 ms for this job' });
  // A second server start: a new cache object on the same file.
  const second = servingOptions(LARGE, 4, new ProbeCache(cache.file));
  assert.equal(
    second.skipGpu,
    'the CPU measured faster for this model here (cached: webgpu 5 ms vs wasm 3 ms for this job)',
  );
  second.measured!({ winner: 'gpu', timings: 'webgpu 2 ms vs wasm 9 ms for this job' });
  const third = servingOptions(LARGE, 4, new ProbeCache(cache.file));
  assert.equal(third.skipGpu, undefined);
  assert.equal(third.gpuMeasuredFaster, 'webgpu 2 ms vs wasm 9 ms for this job');
  // Another beam width is another job: measured afresh.
  assert.equal(servingOptions(LARGE, 8, new ProbeCache(cache.file)).gpuMeasuredFaster, undefined);
});

test('a damaged cache file is an empty cache, and is replaced by the next measurement', () => {
  const file = cacheFile();
  const cache = new ProbeCache(file);
  cache.set('k', { winner: 'gpu', timings: 't' });
  writeFileSync(file, '{"k": {"winner": "gp');
  assert.equal(cache.get('k'), undefined);
  cache.set('k', { winner: 'cpu', timings: 't2' });
  assert.deepEqual(new ProbeCache(file).get('k'), { winner: 'cpu', timings: 't2' });
});

test('selection with the GPU skipped never runs the probe, and its reason says why', async () => {
  let probes = 0;
  const selection = await selectBackend(
    'auto',
    async () => {
      probes++;
    },
    { skipGpu: cpuWinsRule(SMALL) },
  );
  assert.equal(selection.gpu, false);
  assert.equal(probes, 0);
  assert.match(selection.reason, /GPU not probed: the model has 0\.9 M parameters/);
});
