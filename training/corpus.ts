// Loads a training corpus from the user's files (split.ts splits it for validation), leaving out excluded files and
// lines that look like a secret. The walk is deterministic (sorted by name) so that retraining on the same notes reads
// them in the same order.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkGlobs, Exclusions, readGitignoreFile } from '../model/exclusions';
import { withoutSecretLines } from '../model/secrets';
import { asNotesText, codePointLength } from '../model/vocab';

export interface CorpusDocument {
  path: string;
  /** Normalised: BOM stripped, CRLF and lone CR turned into LF. */
  text: string;
}

export type SkipReason =
  'binary' | 'too large' | 'unreadable' | 'not UTF-8' | 'empty' | 'model directory' | 'link out of the folder';

export interface SkippedFile {
  path: string;
  reason: SkipReason;
}

/** A file or folder left out by an exclusion rule. */
export interface ExcludedPath {
  path: string;
  /** The glob, or ".gitignore". */
  rule: string;
  folder: boolean;
}

/** A line left out of a document because it looks like a secret. */
export interface DroppedLine {
  path: string;
  /** Numbered from 1 in the file as read. */
  line: number;
}

export interface Corpus {
  documents: CorpusDocument[];
  skipped: SkippedFile[];
  excluded: ExcludedPath[];
  droppedLines: DroppedLine[];
  /** Total code points over all documents. */
  chars: number;
}

export interface CorpusOptions {
  /** Default 5 MiB. */
  maxFileBytes?: number;
  /** Directories never read, such as the model directory being written. */
  exclude?: string[];
  /**
   * Globs of files and folders never read (the user's --exclude), besides the default key and credential files and
   * what .gitignore files in the folders walked ignore. A bad glob throws ExcludeError.
   */
  excludeGlobs?: string[];
  /** Most UTF-16 code units in all documents with their separators; default MAX_CORPUS_CHARS. */
  maxChars?: number;
}

export const DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024;

// The corpus is joined into one string for the split and the vocabulary, and V8 strings end at
// 2^29 - 24 code units; the margin leaves room for the separators added when joining.
export const MAX_CORPUS_CHARS = 500_000_000;

/**
 * Whether dir holds a model the trainer wrote: one must never be trained on, or each run would
 * learn the previous run's model.json.
 */
function isModelDirectory(dir: WalkPath): boolean {
  try {
    return (
      fs.statSync(childPath(dir, Buffer.from('model.json'))).isFile() &&
      fs.readdirSync(dir).some((name) => /^weights\.[0-9a-f]+\.bin$/.test(name))
    );
  } catch {
    return false;
  }
}

/**
 * A path as the walk holds it: a string, or its bytes once a name on the way is not valid UTF-8
 * (possible on Linux), since such a name turned into a string no longer names the file.
 */
type WalkPath = string | Buffer;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function decodeName(name: Buffer): string | undefined {
  try {
    return strictUtf8.decode(name);
  } catch {
    return undefined;
  }
}

function pathBytes(p: WalkPath): Buffer {
  return typeof p === 'string' ? Buffer.from(p) : p;
}

function childPath(dir: WalkPath, name: Buffer): WalkPath {
  const text = typeof dir === 'string' ? decodeName(name) : undefined;
  if (text !== undefined) return path.join(dir as string, text);
  return Buffer.concat([pathBytes(dir), Buffer.from(path.sep), name]);
}

/** The path for messages and document names: bytes that are not UTF-8 are shown as \xNN, as `ls -b` shows them. */
function displayPath(p: WalkPath): string {
  if (typeof p === 'string') return p;
  let out = '';
  for (let i = 0; i < p.length;) {
    // A UTF-8 character is 1 to 4 bytes: the shortest slice that decodes is one whole character.
    const length = [1, 2, 3, 4].find((n) => i + n <= p.length && decodeName(p.subarray(i, i + n)) !== undefined);
    if (length === undefined) {
      out += `\\x${p[i].toString(16).padStart(2, '0')}`;
      i++;
    } else {
      out += decodeName(p.subarray(i, i + length));
      i += length;
    }
  }
  return out;
}

/**
 * The resolved path as a string of its bytes (latin1), so that paths with and without names that
 * are not UTF-8 compare alike for the seen-once, exclusion and inside-the-folder checks.
 */
function realpathKey(p: WalkPath): string {
  try {
    // The JavaScript realpath turns a Buffer into a string first, mangling it; the native one keeps the bytes.
    if (typeof p !== 'string') return fs.realpathSync.native(p, { encoding: 'latin1' });
    return Buffer.from(fs.realpathSync(p)).toString('latin1');
  } catch {
    return path.resolve(Buffer.from(process.cwd()).toString('latin1'), pathBytes(p).toString('latin1'));
  }
}

function isInside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

// Same window git uses to guess binary-ness: a NUL this early almost never occurs in text.
/** What joins the documents of a corpus into one text: a paragraph break. */
export const DOCUMENT_SEPARATOR = '\n\n';

const BINARY_SNIFF_BYTES = 8 * 1024;

// Directory names that hold generated or vendored files rather than the user's own writing.
export const SKIPPED_DIRS = new Set(['node_modules', 'dist']);

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as NodeJS.ErrnoException).code : undefined;
}

type ReadResult = { text: string } | { reason: SkipReason };

function readTextFile(file: WalkPath, size: number, maxFileBytes: number): ReadResult {
  // Checked before reading so a multi-gigabyte log never gets pulled into memory.
  if (size > maxFileBytes) return { reason: 'too large' };
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return { reason: 'unreadable' };
  }
  // The file may have grown between stat and read.
  if (bytes.length > maxFileBytes) return { reason: 'too large' };
  if (bytes.subarray(0, BINARY_SNIFF_BYTES).includes(0)) return { reason: 'binary' };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { reason: 'not UTF-8' };
  }
  // TextDecoder already drops one leading BOM; this covers a decoder configured otherwise.
  text = asNotesText(text);
  if (text.length === 0) return { reason: 'empty' };
  return { text };
}

export function loadCorpus(paths: string[], options: CorpusOptions = {}): Corpus {
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!(maxFileBytes >= 0)) {
    throw new Error(`corpus: maxFileBytes must be a non-negative number, got ${maxFileBytes}`);
  }
  const maxChars = options.maxChars ?? MAX_CORPUS_CHARS;
  const excluded = new Set((options.exclude ?? []).map(realpathKey));
  const documents: CorpusDocument[] = [];
  const skipped: SkippedFile[] = [];
  const excludedPaths: ExcludedPath[] = [];
  const droppedLines: DroppedLine[] = [];
  const globs = options.excludeGlobs ?? [];
  checkGlobs(globs);
  // A file named explicitly and also reached through its directory or a link must not be trained on twice.
  const seen = new Set<string>();
  let chars = 0;
  let codeUnits = 0;

  const skip = (p: WalkPath, reason: SkipReason) => skipped.push({ path: displayPath(p), reason });

  const considerFile = (file: WalkPath, stat: fs.Stats): void => {
    const key = realpathKey(file);
    if (seen.has(key)) return;
    seen.add(key);
    const result = readTextFile(file, stat.size, maxFileBytes);
    if ('reason' in result) {
      skip(file, result.reason);
      return;
    }
    // Dropped before any model sees the text, so that neither the n-gram nor the LSTM can learn a secret.
    const { text, droppedLines: dropped } = withoutSecretLines(result.text);
    for (const line of dropped) droppedLines.push({ path: displayPath(file), line });
    if (text.length === 0) {
      skip(file, 'empty');
    } else {
      codeUnits += text.length + DOCUMENT_SEPARATOR.length;
      if (codeUnits > maxChars) {
        throw new Error(
          `corpus: more than ${maxChars.toLocaleString('en-US')} characters, the most one training run can hold in memory (reached at ${displayPath(file)}); train on a part of your notes, for example one subfolder`,
        );
      }
      documents.push({ path: displayPath(file), text });
      chars += codePointLength(text);
    }
  };

  const skipDirectory = (dir: WalkPath): boolean => {
    if (!excluded.has(realpathKey(dir)) && !isModelDirectory(dir)) return false;
    skip(dir, 'model directory');
    return true;
  };

  const excludedBy = (p: WalkPath, rule: string | undefined, folder: boolean): boolean => {
    if (rule !== undefined) excludedPaths.push({ path: displayPath(p), rule, folder });
    return rule !== undefined;
  };

  /** Walks dir, which is `relative` below the folder given; `folders` finds a folder's real path for its .gitignore. */
  const walk = (
    dir: WalkPath,
    root: string,
    relative: string,
    exclusions: Exclusions,
    folders: Map<string, WalkPath>,
  ): void => {
    if (skipDirectory(dir)) return;
    const entries = visibleEntries(dir);
    if (!entries) {
      skip(dir, 'unreadable');
      return;
    }
    folders.set(relative, dir);
    for (const entry of entries) {
      const full = childPath(dir, entry.name);
      const name = displayPath(entry.name);
      const childRelative = relative === '' ? name : `${relative}/${name}`;
      if (entry.isDirectory()) {
        if (SKIPPED_DIRS.has(entry.name.toString())) continue;
        if (!excludedBy(full, exclusions.folderRule(childRelative), true))
          walk(full, root, childRelative, exclusions, folders);
        continue;
      }
      // Links are judged by the name they have in the folder, as git and the editor judge them.
      if ((entry.isFile() || entry.isSymbolicLink()) && excludedBy(full, exclusions.fileRule(childRelative), false))
        continue;
      if (entry.isFile()) {
        let stat: fs.Stats;
        try {
          stat = fs.lstatSync(full);
        } catch {
          skip(full, 'unreadable');
          continue;
        }
        considerFile(full, stat);
      } else if (entry.isSymbolicLink()) {
        // Symlinked directories are never followed: that is what rules out cycles without having
        // to track visited inodes. Symlinked files are read only when they stay inside the folder
        // given, so that a link cannot pull private files from elsewhere into the model unnoticed.
        let stat: fs.Stats;
        try {
          stat = fs.statSync(full);
        } catch {
          skip(full, 'unreadable');
          continue;
        }
        if (!stat.isFile()) continue;
        if (isInside(realpathKey(full), root)) considerFile(full, stat);
        else skip(full, 'link out of the folder');
      }
      // Sockets, FIFOs and devices found while walking are not documents; reading a FIFO would
      // even block forever.
    }
  };

  for (const given of paths) {
    let stat: fs.Stats;
    try {
      // stat, not lstat: a path the user typed is followed even if it is a symlink.
      stat = fs.statSync(given);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new Error(`corpus: no such file or directory: ${given}`);
      }
      skip(given, 'unreadable');
      continue;
    }
    if (stat.isDirectory()) {
      const folders = new Map<string, WalkPath>();
      const exclusions = new Exclusions(given, {
        globs,
        readGitignore: (folder) => {
          const real = folders.get(folder);
          return real === undefined ? undefined : readGitignoreFile(real);
        },
      });
      walk(given, realpathKey(given), '', exclusions, folders);
    } else if (stat.isFile()) {
      // A file named on its own is judged by its name: the globs and the default key and credential files.
      const exclusions = new Exclusions(path.dirname(given), { globs, readGitignore: null });
      if (!excludedBy(given, exclusions.fileRule(path.basename(given)), false)) considerFile(given, stat);
    } else {
      skip(given, 'unreadable');
    }
  }

  return { documents, skipped, excluded: excludedPaths, droppedLines, chars };
}

const REASON_ORDER: SkipReason[] = [
  'binary',
  'not UTF-8',
  'too large',
  'unreadable',
  'empty',
  'model directory',
  'link out of the folder',
];
const NAMES_PER_REASON = 3;

/** One line for the user, e.g. "skipped 3 files: 2 binary (a.png, b.pdf), 1 too large (big.log)". */
export function describeSkipped(skipped: SkippedFile[]): string | undefined {
  if (skipped.length === 0) return undefined;
  const groups: string[] = [];
  for (const reason of REASON_ORDER) {
    const names = skipped.filter((s) => s.reason === reason).map((s) => path.basename(s.path) || s.path);
    if (names.length === 0) continue;
    const shown = names.slice(0, NAMES_PER_REASON);
    if (names.length > NAMES_PER_REASON) shown.push('…');
    groups.push(`${names.length} ${reason} (${shown.join(', ')})`);
  }
  const kind = skipped.some((s) => s.reason === 'model directory') ? 'item' : 'file';
  const noun = skipped.length === 1 ? kind : `${kind}s`;
  return `skipped ${skipped.length} ${noun}: ${groups.join(', ')}`;
}

const plural = (n: number, noun: string) => `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;

/**
 * One line for the user, e.g. "excluded 3 files: 2 by .gitignore, 1 by *.pem; dropped 1 line that looks like a
 * secret (ideas.md:4)": how many files each rule kept out, and where lines were dropped.
 */
export function describeExclusions(excluded: ExcludedPath[], dropped: DroppedLine[]): string | undefined {
  const parts: string[] = [];
  if (excluded.length > 0) {
    const folders = excluded.filter((e) => e.folder).length;
    const files = excluded.length - folders;
    const what = [files > 0 && plural(files, 'file'), folders > 0 && plural(folders, 'folder')].filter(Boolean);
    const byRule = new Map<string, number>();
    for (const { rule } of excluded) byRule.set(rule, (byRule.get(rule) ?? 0) + 1);
    const rules = [...byRule].sort((a, b) => b[1] - a[1]).map(([rule, n]) => `${n.toLocaleString('en-US')} by ${rule}`);
    parts.push(`excluded ${what.join(' and ')}: ${rules.join(', ')}`);
  }
  if (dropped.length > 0) {
    const where = dropped.slice(0, NAMES_PER_REASON).map((d) => `${path.basename(d.path) || d.path}:${d.line}`);
    if (dropped.length > NAMES_PER_REASON) where.push('…');
    const verb = dropped.length === 1 ? 'looks' : 'look';
    parts.push(`dropped ${plural(dropped.length, 'line')} that ${verb} like a secret (${where.join(', ')})`);
  }
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/**
 * A folder's entries in name order, hidden ones left out; undefined when it cannot be read. Names
 * are read as bytes, so that one that is not UTF-8 still names its file.
 */
export function visibleEntries(dir: WalkPath): fs.Dirent<Buffer>[] | undefined {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })
      .filter((entry) => entry.name[0] !== 0x2e /* '.' */)
      .sort((a, b) => Buffer.compare(a.name, b.name));
  } catch {
    return undefined;
  }
}
