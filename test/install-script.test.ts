// The end-to-end test's installer names the Debian packages it lacks before it installs anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'install-code-server.sh');

test('install-code-server.sh on a machine without its packages names them and how to install them', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'char-complete-install-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // A PATH with only what the script needs to get as far as its checks: no rg, make, g++, python3, pkg-config.
  const bin = join(root, 'bin');
  const found = spawnSync('bash', [
    '-c',
    'mkdir -p "$1" && for c in bash dirname mkdir; do ln -s "$(command -v $c)" "$1/$c"; done',
    '_',
    bin,
  ]);
  assert.equal(found.status, 0, String(found.stderr));
  symlinkSync(process.execPath, join(bin, 'node'));
  const run = spawnSync(join(bin, 'bash'), [SCRIPT, join(root, 'dest')], {
    encoding: 'utf8',
    env: { PATH: bin, HOME: root },
  });
  assert.equal(run.status, 1, run.stderr);
  assert.match(
    run.stderr,
    /^error: installing code-server for the end-to-end test needs these Debian packages: ripgrep build-essential python3 pkg-config( libkrb5-dev)?\n/,
  );
  assert.match(run.stderr, /install them with: sudo apt-get install ripgrep build-essential python3 pkg-config/);
  assert.doesNotMatch(run.stderr, /Cannot stat|command not found/);
});
