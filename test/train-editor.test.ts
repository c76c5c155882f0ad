// What the editor's training UI relies on: the plan dry-run, machine-readable progress, SIGTERM as a graceful stop,
// one meaning for ~ and relative model paths, and a status flag that clears when the trainer dies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { selectBackend } from '../backends/select';
import { loadModel, saveModel } from '../model/format';
import { defaultModelDir, resolveModelDir, resolveUserPath } from '../model/paths';
import { ModelHost } from '../server/model-host';
import { LOCK_FILE } from '../training/lock';
import { randomModel } from './support/random-model';
import { tempModelDir } from './support/temp-dirs';

const TRAINER = join(__dirname, '..', 'train.js');
const NOTES = 'the quick brown fox jumps over the lazy dog.\n'.repeat(300);
const SMALL = ['--layers', '1', '--hidden', '16', '--embed', '8', '--seq', '16', '--batch', '4', '--backend', 'wasm'];

/** A folder of notes, with a key file and a .gitignore'd log the plan must leave out. */
function notesFolder(): { root: string; notes: string } {
  const root = dirname(tempModelDir('char-complete-train-editor'));
  const notes = join(root, 'notes');
  mkdirSync(join(notes, 'sub'), { recursive: true });
  writeFileSync(join(notes, 'a.md'), NOTES);
  writeFileSync(join(notes, 'sub', 'b.txt'), 'another note about foxes and dogs\n'.repeat(20));
  writeFileSync(join(notes, 'credentials.txt'), 'API_KEY=not-for-the-model\n');
  writeFileSync(join(notes, 'debug.log'), 'log line\n'.repeat(50));
  writeFileSync(join(notes, '.gitignore'), '*.log\n');
  return { root, notes };
}

test('~ and relative paths: one resolver for the trainer and the server, a relative CHAR_COMPLETE_MODEL_DIR under home', () => {
  assert.equal(resolveUserPath('~', '/base'), homedir());
  assert.equal(resolveUserPath('~/notes/model', '/base'), join(homedir(), 'notes', 'model'));
  assert.equal(resolveUserPath('models/journal', '/work/ws'), '/work/ws/models/journal');
  assert.equal(resolveUserPath('/abs/model', '/work/ws'), '/abs/model');
  assert.equal(
    resolveModelDir('  ', '/work/ws', { XDG_DATA_HOME: '/data' }),
    defaultModelDir({ XDG_DATA_HOME: '/data' }),
  );
  assert.equal(
    resolveModelDir(undefined, '/w', { CHAR_COMPLETE_MODEL_DIR: 'rel/model' }),
    join(homedir(), 'rel/model'),
  );
  assert.equal(resolveModelDir(undefined, '/w', { CHAR_COMPLETE_MODEL_DIR: '~/m' }), join(homedir(), 'm'));
});

test('--plan counts the files training would read, with the same exclusions, writes nothing, and resolves ~ in --out', () => {
  const { root, notes } = notesFolder();
  const home = join(root, 'home');
  mkdirSync(home);
  const run = spawnSync(process.execPath, [TRAINER, notes, '--plan', '--minutes', '2', '--out', '~/m'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, HOME: home },
  });
  assert.equal(run.status, 0, run.stderr);
  const plan = JSON.parse(run.stdout.trim());
  assert.equal(plan.files, 2, run.stdout);
  assert.equal(plan.bytes, NOTES.length + 'another note about foxes and dogs\n'.length * 20);
  assert.ok(plan.chars > 0 && plan.chars <= plan.bytes);
  assert.equal(plan.minutes, 2);
  assert.equal(plan.excluded, 2, "the credentials file and the .gitignore'd log");
  assert.equal(plan.out, join(home, 'm'));
  assert.ok(
    plan.lines.some((line: string) => /exclu/i.test(line)),
    plan.lines.join('\n'),
  );
  assert.ok(!existsSync(join(home, 'm')) && !existsSync(join(root, '~')), 'a plan writes no model');

  const empty = spawnSync(process.execPath, [TRAINER, join(root, 'home'), '--plan'], { encoding: 'utf8' });
  assert.equal(empty.status, 2);
  assert.match(empty.stderr, /^error: no usable text in /);
});

test('--progress-json prints JSON lines only; SIGTERM stops after the step, keeps the model and exits with 143', async () => {
  const { root, notes } = notesFolder();
  const out = join(root, 'model');
  const child = spawn(process.execPath, [TRAINER, notes, '--out', out, '--minutes', '3', '--progress-json', ...SMALL], {
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const firstProgress = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (stdout.includes('"event":"progress"')) resolve();
    });
    child.once('exit', () => reject(new Error(`trainer exited before any progress: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  try {
    await firstProgress;
    child.kill('SIGTERM');
    const code = await exited;
    assert.equal(child.signalCode, null, `killed rather than stopped: ${stderr}`);
    assert.equal(code, 143, stderr);
  } finally {
    clearTimeout(killer);
  }
  const lines = stdout.trim().split('\n');
  const events = lines.map((line) => JSON.parse(line));
  const progress = events.filter((e) => e.event === 'progress');
  assert.ok(progress.length >= 1);
  for (const p of progress) {
    assert.ok(p.fraction >= 0 && p.fraction <= 1 && p.chars_per_s >= 0, JSON.stringify(p));
    assert.ok('eta_s' in p && 'val_bpc' in p);
  }
  const done = events.at(-1);
  assert.equal(done.event, 'done');
  assert.equal(done.stopped_by, 'interrupted');
  assert.equal(done.model, out);
  assert.match(stderr, /Stopped: finishing the step/);
  assert.ok(loadModel(out).metadata.steps > 0, 'the stopped run kept its model');
  assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is released');
});

test('the "LSTM training" flag clears when the trainer holding the lock dies before its first LSTM checkpoint', async () => {
  await selectBackend('wasm');
  const dir = tempModelDir('char-complete-train-flag');
  const saved = randomModel(5);
  saved.metadata.lstmTrained = false;
  saveModel(dir, saved);
  const trainer = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  const lines: string[] = [];
  let changes = 0;
  const host = new ModelHost(
    (line) => lines.push(line),
    () => changes++,
  );
  try {
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: trainer.pid, host: hostname(), started: new Date().toISOString() }),
    );
    host.use(dir);
    assert.ok(host.model && !host.model.lstmTrained);
    assert.equal(host.lstmTraining, true, 'a live trainer holds the lock');
    const before = changes;
    trainer.kill('SIGKILL');
    const started = performance.now();
    while (host.lstmTraining && performance.now() - started < 5000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(host.lstmTraining, false, `still flagged 5 s after the trainer died: ${lines.join('\n')}`);
    assert.ok(changes > before, 'the status was sent again');
  } finally {
    trainer.kill('SIGKILL');
    host.dispose();
  }
});
