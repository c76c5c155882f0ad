// npm run bench: where its server figures would time a document of nothing, it says so rather than print them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './support/temp-dirs';

const DIST = join(__dirname, '..');

test('a copy of the bench outside the repository, with no docs or sources to type, refuses to time the server', () => {
  const root = tempDir('char-bench-copy');
  const dist = join(root, 'dist');
  mkdirSync(dist);
  // The bench and what it loads beside it (the wasm backends and the layer kernel's worker), without the sources.
  for (const file of readdirSync(DIST))
    if (file === 'bench.js' || /\.wasm$|worker\.js$|^tfjs-backend-.*\.js$/u.test(file))
      copyFileSync(join(DIST, file), join(dist, file));
  const run = spawnSync(
    process.execPath,
    [
      join(dist, 'bench.js'),
      '--backend',
      'wasm',
      '--layers',
      '1',
      '--hidden',
      '16',
      '--steps',
      '2',
      '--keystrokes',
      '10',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(run.status, 2, `exit status ${run.status}\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stderr, /there are none in .*: run the bench from the repository's dist\/ \(npm run bench\)/u);
  assert.doesNotMatch(run.stdout, /per-keystroke latency/u, 'no latency figures printed');
});
