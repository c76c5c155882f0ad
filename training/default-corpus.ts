// The embedded default corpus: this project's own docs and sources, which the trainer learns when
// the user names no notes, and which npm run bench types as its document.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SKIPPED_DIRS, visibleEntries } from './corpus';

/** Every folder of the project's own source, the engine's as well as the editor's; tests are left out. */
const DEFAULT_SOURCE_DIRS = [
  'model',
  'training',
  'completion',
  'backends',
  'protocol',
  'server',
  'client',
  'scripts',
  'tools',
];

/** The project's own docs and sources, used as a corpus when the user names none. */
export function defaultCorpusPaths(packageRoot: string): string[] {
  const out: string[] = [];
  const readme = path.join(packageRoot, 'README.md');
  if (isFile(readme)) out.push(readme);
  const walk = (dir: string): void => {
    for (const entry of visibleEntries(dir) ?? []) {
      const name = entry.name.toString();
      const full = path.join(dir, name);
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(name)) walk(full);
      } else if (entry.isFile() && /\.(md|ts)$/.test(name)) {
        out.push(full);
      }
    }
  };
  for (const sub of DEFAULT_SOURCE_DIRS) walk(path.join(packageRoot, sub));
  return out;
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
