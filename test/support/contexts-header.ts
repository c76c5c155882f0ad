// The header of a model's contexts.bin (four bytes of length, then JSON), read and rewritten in place, for tests that
// need a context model of another format version or one that names something else.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NOTES_CONTEXTS_FILE } from '../../model/notes-text';

function parts(dir: string): { header: Record<string, unknown>; payload: Buffer } {
  const bytes = fs.readFileSync(path.join(dir, NOTES_CONTEXTS_FILE));
  const length = bytes.readUInt32LE(0);
  const header = JSON.parse(bytes.subarray(4, 4 + length).toString('utf8')) as Record<string, unknown>;
  return { header, payload: bytes.subarray(4 + length) };
}

export function contextsHeader(dir: string): Record<string, unknown> {
  return parts(dir).header;
}

/** Rewrites the header of dir's contexts.bin as `change` leaves it; the tables after it stay as they are. */
export function rewriteContextsHeader(dir: string, change: (header: Record<string, unknown>) => void): void {
  const { header, payload } = parts(dir);
  change(header);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(json.length, 0);
  fs.writeFileSync(path.join(dir, NOTES_CONTEXTS_FILE), Buffer.concat([prefix, json, payload]));
}

/** As a file from before the format last changed: the same tables under the version before this one. */
export function makeContextsOneVersionOld(dir: string): void {
  rewriteContextsHeader(dir, (header) => (header.formatVersion = Number(header.formatVersion) - 1));
}
