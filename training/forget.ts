// The trainer's --forget PATH: a new model that never reads PATH (a file, or a folder and all in it), and the notes
// learnt from saves of it dropped from the model directory, so neither the n-gram nor the LSTM holds its text.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { escape } from 'minimatch';
import { forgetLearnedNotes, noteKey } from '../model/learned';

export interface ForgetPlan {
  /** The paths to train on, those inside a forgotten path left out. */
  paths: string[];
  /** Anchored globs that leave the forgotten paths out of the folders trained on. */
  exclude: string[];
}

const inside = (child: string, parent: string) =>
  child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);

/** Where --forget leaves paths out of a training run over `paths` (absolute). */
export function planForget(paths: string[], forget: string[]): ForgetPlan {
  const forgotten = forget.map((p) => path.resolve(p));
  const kept = paths.filter((p) => !forgotten.some((f) => inside(path.resolve(p), f)));
  const exclude = new Set<string>();
  for (const root of kept)
    for (const f of forgotten)
      if (f !== path.resolve(root) && inside(f, path.resolve(root)))
        exclude.add('/' + escape(path.relative(root, f).split(path.sep).join('/'), { windowsPathsNoEscape: true }));
  return { paths: kept, exclude: [...exclude] };
}

/** Every file below a forgotten path, and the path itself, which may be gone from disk but still learnt. */
function filesUnder(p: string, out: string[] = []): string[] {
  out.push(p);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(p, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const full = path.join(p, entry.name);
    if (entry.isDirectory()) filesUnder(full, out);
    else out.push(full);
  }
  return out;
}

/** Drops the notes learnt from saves of the forgotten paths from the model directory; returns a line saying so. */
export function forgetLearnedPaths(modelDir: string, forget: string[]): string {
  const keys = new Set(forget.flatMap((p) => filesUnder(path.resolve(p))).map(noteKey));
  const { notes, chars } = fs.existsSync(modelDir) ? forgetLearnedNotes(modelDir, keys) : { notes: 0, chars: 0 };
  return `Forgetting ${forget.join(', ')}: never read; ${notes} note${notes === 1 ? '' : 's'} learnt from saves of it (${chars.toLocaleString('en-US')} characters) dropped from ${modelDir}`;
}
