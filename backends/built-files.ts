// The build puts every bundle in dist/ (the tests' in dist/test/) and copies the files they load at run time
// (wasm binaries, the Dawn binding, the Python engine, the trainer) beside them; a .vsix has no node_modules to
// fall back on, so every process looks for them the same way.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Where the built files lie: beside this bundle, or one folder up for a bundle in dist/test/. */
export const BUILT_DIRS: readonly string[] = [__dirname, join(__dirname, '..')];

/** The first of `dirs` that holds every one of `files`, or undefined. */
export function dirHolding(files: readonly string[], dirs: readonly string[] = BUILT_DIRS): string | undefined {
  return dirs.find((dir) => files.every((file) => existsSync(join(dir, file))));
}

/** The path of `file` in the first of `dirs` that holds it, or undefined. */
export function builtFile(file: string, dirs: readonly string[] = BUILT_DIRS): string | undefined {
  const dir = dirHolding([file], dirs);
  return dir === undefined ? undefined : join(dir, file);
}
