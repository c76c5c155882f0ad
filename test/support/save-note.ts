// Saving a note as an editor does, for the tests that drive the real server: written to disk, then opened, saved
// and closed in the session.
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { LspSession } from '../../tools/lsp-driver';

export async function save(session: LspSession, file: string, text: string): Promise<void> {
  writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  await session.open(uri, text);
  await session.save(uri);
  await session.close(uri);
}
