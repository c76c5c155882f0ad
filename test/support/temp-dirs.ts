// Temporary directories for tests, removed when the test file ends, so that a test run leaves nothing in the system's
// temporary folder.
import { after } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const roots: string[] = [];
after(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

/** A new empty directory. */
export function tempDir(prefix: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  roots.push(root);
  return root;
}

/** A model directory one level below a private temporary root, so "../x" stays inside the root. */
export function tempModelDir(prefix: string): string {
  return path.join(tempDir(prefix), 'model');
}
