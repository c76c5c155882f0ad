// A full disk while saving: one clear error naming the file and the space it needs, and the model saved before stays whole.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { join } from 'node:path';
import { DiskFullError } from '../model/files';
import { loadModel, saveModel } from '../model/format';
import { NgramModel } from '../model/ngram';
import { NGRAM_FILE, saveNgram } from '../model/ngram-format';
import { acquireTrainingLock, LOCK_FILE } from '../training/lock';
import { randomModel } from './support/random-model';
import { tempModelDir } from './support/temp-dirs';

const TRAINER = join(__dirname, '..', 'train.js');
const NOTES = 'the quick brown fox jumps over the lazy dog.\n'.repeat(300);
const FLAGS = ['--chars', '4000', '--layers', '1', '--embed', '8', '--seq', '16', '--batch', '4', '--backend', 'wasm'];

/** An error as the kernel reports a full disk (or quota) through Node. */
function fullDiskError(code: 'ENOSPC' | 'EDQUOT'): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: no space left on device, write`), { code, syscall: 'write' });
}

/** Every write of more than limit bytes through a file descriptor (how each model file is written) fails as on a full disk. */
function fillDiskAbove(limit: number, code: 'ENOSPC' | 'EDQUOT' = 'ENOSPC') {
  const original = fs.writeFileSync;
  return mock.method(fs, 'writeFileSync', (file: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView) => {
    if (typeof file === 'number' && (typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength) > limit)
      throw fullDiskError(code);
    return original(file, data);
  });
}

function contents(dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).map((name) => [name, fs.readFileSync(join(dir, name))]));
}

test('a save that meets a full disk names the file and its size, removes its temporary file and leaves the saved model as it was', () => {
  const dir = tempModelDir('char-disk-full');
  const previous = randomModel(1, { embed: 4, hidden: 8, layers: 1 });
  saveModel(dir, previous);
  const notes = new NgramModel(previous.vocabulary.size);
  notes.add(previous.vocabulary.encode('the quick brown fox'));
  saveNgram(dir, notes, previous.vocabulary);
  const before = contents(dir);

  const bigger = randomModel(2, { embed: 16, hidden: 64, layers: 2 });
  const shardBytes = [...bigger.weights.values()].reduce((n, w) => n + w.byteLength, 0);
  const filled = fillDiskAbove(4096);
  try {
    assert.throws(
      () => saveModel(dir, bigger),
      (error: unknown) => {
        assert.ok(error instanceof DiskFullError, String(error));
        assert.match(error.file, /weights\.[0-9a-f]{12}\.bin$/);
        assert.equal(error.bytesNeeded, shardBytes);
        assert.match(
          error.message,
          new RegExp(
            `^cannot write .*weights\\.[0-9a-f]{12}\\.bin: no space left on the device \\(it needs ${(shardBytes / 1024).toFixed(1)} KiB`,
          ),
        );
        return true;
      },
    );
  } finally {
    filled.mock.restore();
  }
  const quota = fillDiskAbove(16, 'EDQUOT');
  try {
    assert.throws(
      () => saveNgram(dir, notes, bigger.vocabulary),
      (error: unknown) =>
        error instanceof DiskFullError &&
        error.file === join(dir, NGRAM_FILE) &&
        /disk quota is exceeded/.test(error.message),
    );
  } finally {
    quota.mock.restore();
  }

  assert.deepEqual(contents(dir), before, 'no temporary file left, and every file as it was');
  assert.deepEqual(loadModel(dir).weights, previous.weights);
});

test('a disk too full for the training lock is a DiskFullError naming the lock, with nothing left behind', () => {
  const dir = tempModelDir('char-disk-full-lock');
  fs.mkdirSync(dir);
  const original = fs.writeFileSync;
  const filled = mock.method(fs, 'writeFileSync', (file: fs.PathOrFileDescriptor, data: string) => {
    if (String(file).includes(LOCK_FILE)) throw fullDiskError('ENOSPC');
    return original(file, data);
  });
  try {
    assert.throws(
      () => acquireTrainingLock(dir),
      (error: unknown) => error instanceof DiskFullError && error.file === join(dir, LOCK_FILE),
    );
  } finally {
    filled.mock.restore();
  }
  assert.deepEqual(fs.readdirSync(dir), []);
  acquireTrainingLock(dir)();
});

/** Runs the trainer with an LSTM of the given hidden size into out, with node options (a preload) when given. */
function train(out: string, hidden: number, nodeArgs: string[] = []) {
  const notes = join(tempModelDir('char-disk-full-notes'), '..', 'notes.md');
  fs.writeFileSync(notes, NOTES);
  return spawnSync(
    process.execPath,
    [...nodeArgs, TRAINER, notes, '--out', out, '--hidden', String(hidden), ...FLAGS],
    {
      encoding: 'utf8',
      timeout: 180_000,
      env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
    },
  );
}

function assertOneLineAndIntact(run: ReturnType<typeof spawnSync>, out: string, before: Map<string, Buffer>): void {
  assert.equal(run.status, 2, `exit code 2, got ${run.status}: ${run.stderr}`);
  const stderr = String(run.stderr).trim();
  assert.match(
    stderr,
    // The first file too big for the disk: the notes' context model where the trainer writes one, else the weights.
    /^error: cannot write .*(weights\.[0-9a-f]{12}|contexts)\.bin: no space left on the device \(it needs [\d.]+ [KM]iB/,
  );
  assert.equal(stderr.split('\n').length, 1, `one line, no stack trace: ${stderr}`);
  const after = contents(out);
  assert.deepEqual(after.get('model.json'), before.get('model.json'), 'model.json as it was');
  assert.deepEqual(loadModel(out).weights, randomModel(1).weights, 'the model saved before loads as it was');
  assert.ok(![...after.keys()].some((name) => name.includes('.tmp-')), 'no temporary file left');
}

test('the trainer on a full disk prints one line naming the file and its size, and exits with 2', () => {
  const out = tempModelDir('char-disk-full-train');
  randomModel(1, undefined, out);
  const before = contents(out);
  // The write layer fails as a full disk would for anything bigger than the notes' small n-gram.
  const preload = join(out, '..', 'full-disk.js');
  fs.writeFileSync(
    preload,
    `const fs = require('node:fs');
const write = fs.writeFileSync;
fs.writeFileSync = function (file, data, ...rest) {
  if (typeof file === 'number' && Buffer.byteLength(data) > 16384)
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
  return write.call(this, file, data, ...rest);
};
`,
  );
  assertOneLineAndIntact(train(out, 64, ['--require', preload]), out, before);
});

test('the trainer on a real full filesystem (a 2 MB tmpfs) prints one line and keeps the model saved before', (t) => {
  const mountPoint = join(tempModelDir('char-disk-full-tmpfs'), '..', 'tmpfs');
  fs.mkdirSync(mountPoint);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint], { encoding: 'utf8' });
  if (mount.status !== 0) {
    t.skip(`cannot mount a tmpfs here (needs root): ${(mount.stderr || mount.error?.message || '').trim()}`);
    return;
  }
  t.after(() => spawnSync('umount', [mountPoint]));
  const out = join(mountPoint, 'model');
  randomModel(1, undefined, out);
  const before = contents(out);
  // The weights of this size are larger than the whole filesystem.
  assertOneLineAndIntact(train(out, 512), out, before);
});
