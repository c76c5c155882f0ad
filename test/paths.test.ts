// Where the trainer and the server look for the model when none is named: the same place, whatever folder each starts in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { APP_NAME, defaultModelDir, userDataDir } from '../model/paths';

const TRAINER = join(__dirname, '..', 'train.js');

test('an absolute XDG_DATA_HOME holds the model directory', () => {
  assert.equal(userDataDir({ XDG_DATA_HOME: '/data/home' }, 'linux'), join('/data/home', APP_NAME));
  assert.equal(defaultModelDir({ XDG_DATA_HOME: '/data/home' }, 'linux'), join('/data/home', APP_NAME, 'model'));
});

test('a relative or empty XDG_DATA_HOME is ignored, as the XDG spec says, for ~/.local/share', () => {
  const fallback = join(homedir(), '.local', 'share', APP_NAME);
  for (const value of ['data', './data', '../data', '~/data', '']) {
    assert.equal(userDataDir({ XDG_DATA_HOME: value }, 'linux'), fallback, JSON.stringify(value));
  }
});

test('a relative LOCALAPPDATA is ignored on Windows too', () => {
  assert.equal(userDataDir({ LOCALAPPDATA: 'AppData' }, 'win32'), join(homedir(), 'AppData', 'Local', APP_NAME));
  assert.equal(
    userDataDir({ LOCALAPPDATA: 'C:\\Users\\me\\AppData\\Local' }, 'win32'),
    join('C:\\Users\\me\\AppData\\Local', APP_NAME),
  );
});

test('the trainer started in two different folders with a relative XDG_DATA_HOME names one default model directory', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'char-complete-paths-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const home = join(root, 'home');
  const defaults = ['a', 'b'].map((folder) => {
    const cwd = join(root, folder);
    mkdirSync(cwd, { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_DATA_HOME: 'relative-data' };
    delete env.CHAR_COMPLETE_MODEL_DIR;
    const run = spawnSync(process.execPath, [TRAINER, '--help'], { cwd, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    return /--out DIR\s+where to write the model \(default: (.*)\)/.exec(run.stdout)?.[1];
  });
  assert.equal(defaults[0], join(home, '.local', 'share', APP_NAME, 'model'));
  assert.equal(defaults[1], defaults[0]);
});
