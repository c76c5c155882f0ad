// Which files are never read as notes: key and credential files (one default list, for the trainer and the server
// alike), the user's globs (charComplete.exclude, the trainer's --exclude), the editor's files.exclude, and what
// .gitignore files ignore.
import * as fs from 'node:fs';
import * as path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { Minimatch } from 'minimatch';

/**
 * Files that hold keys, passwords and tokens rather than notes. They are matched against a file's whole path, so
 * that a key folder above the folder trained on (training on ~/.ssh) still counts.
 */
export const DEFAULT_EXCLUDES: readonly string[] = [
  '**/.env*',
  '**/*.pem',
  '**/*.key',
  '**/*.p12',
  '**/*.pfx',
  '**/*.jks',
  '**/*.keystore',
  '**/*.kdbx',
  '**/*.tfstate*',
  '**/*.tfvars',
  '**/id_rsa*',
  '**/id_dsa*',
  '**/id_ecdsa*',
  '**/id_ed25519*',
  '**/.netrc',
  '**/_netrc',
  '**/.npmrc',
  '**/.pypirc',
  '**/.pgpass',
  '**/.htpasswd',
  '**/.git-credentials',
  '**/credentials*',
  '**/secrets.*',
  '**/.aws/**',
  '**/.ssh/**',
  '**/.gnupg/**',
  '**/.kube/**',
  '**/.password-store/**',
  '**/.docker/config.json',
];

/** The rule named for a path that a .gitignore file ignores. */
export const GITIGNORE_RULE = '.gitignore';

const MAX_GLOB_LENGTH = 1000;
/** A .gitignore larger than this is not one a person wrote; it is not read. */
const MAX_GITIGNORE_BYTES = 1024 * 1024;

/** A glob that cannot be used: the message names it and says what is wrong. */
export class ExcludeError extends Error {
  override name = 'ExcludeError';
}

/** Case is ignored, as on macOS and Windows, and dot files match, since .env and .ssh are what matter most. */
const GLOB_OPTIONS = { dot: true, nocase: true } as const;

/** Why a glob cannot be used, or undefined when it can. */
export function globProblem(glob: unknown): string | undefined {
  if (typeof glob !== 'string') return `a glob must be a string, not ${JSON.stringify(glob) ?? typeof glob}`;
  if (glob.trim() === '') return 'a glob must not be empty';
  if (glob.length > MAX_GLOB_LENGTH) return `a glob must be at most ${MAX_GLOB_LENGTH} characters`;
  if (glob.includes('\0')) return 'a glob must not hold a NUL character';
  if (glob.split(/[\\/]/).includes('..'))
    return 'a glob must not step out of the folder with "..": globs match paths inside the folder';
  try {
    if (compileGlob(glob).matcher.makeRe() === false) return 'it matches nothing';
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}

/** Throws ExcludeError naming the first glob that cannot be used, and why. */
export function checkGlobs(globs: readonly unknown[]): void {
  for (const glob of globs) {
    const problem = globProblem(glob);
    if (problem) throw new ExcludeError(`cannot exclude ${JSON.stringify(glob)}: ${problem}`);
  }
}

interface GlobRule {
  glob: string;
  matcher: Minimatch;
}

/**
 * A glob as gitignore reads one: a leading "/" anchors it at the folder, a trailing "/" is dropped (a folder's files
 * are excluded with it anyway), and one without a "/" matches a name at any depth. Backslashes are separators, as a
 * Windows user writes them.
 */
function compileGlob(glob: string): GlobRule {
  let pattern = glob.trim().replace(/\\/g, '/');
  const anchored = pattern.startsWith('/');
  pattern = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  return { glob, matcher: new Minimatch(pattern, { ...GLOB_OPTIONS, matchBase: !anchored }) };
}

function matches(rule: GlobRule, subject: string): boolean {
  return rule.matcher.match(subject);
}

const DEFAULT_RULES = DEFAULT_EXCLUDES.map(compileGlob);

/** A path with "/" between its names and no leading "/", as the globs are written. */
function slashed(p: string): string {
  return p.split(path.sep).join('/').replace(/^\/+/, '');
}

export interface ExclusionOptions {
  /** The user's and the editor's globs, matched against paths relative to the folder. */
  globs?: readonly string[];
  /**
   * Reads the .gitignore of a folder inside the root (given relative to it, "" for the root itself); undefined when
   * it has none. By default read from disk; null leaves .gitignore files out.
   */
  readGitignore?: ((relativeFolder: string) => string | undefined) | null;
}

/**
 * The exclusions that apply inside one folder (the folder trained on, a workspace folder). Paths are given relative
 * to it, with "/" or the platform's separator.
 */
export class Exclusions {
  private readonly rules: GlobRule[];
  private readonly gitignores = new Map<string, Ignore | null>();
  private readonly readGitignore: ((relativeFolder: string) => string | undefined) | null;

  /** Throws ExcludeError naming the first glob that cannot be used. */
  constructor(
    private readonly root: string,
    options: ExclusionOptions = {},
  ) {
    const globs = options.globs ?? [];
    checkGlobs(globs);
    this.rules = globs.map(compileGlob);
    this.readGitignore =
      options.readGitignore === undefined
        ? (folder) => readGitignoreFile(path.join(root, folder))
        : options.readGitignore;
  }

  /** The rule that keeps out a file whose folders were already let in (as a walk goes), or undefined. */
  fileRule(relative: string): string | undefined {
    const rel = slashed(relative);
    const absolute = slashed(path.resolve(this.root, relative));
    return (
      DEFAULT_RULES.find((rule) => matches(rule, absolute))?.glob ??
      this.rules.find((rule) => matches(rule, rel))?.glob ??
      this.gitignoreRule(rel, false)
    );
  }

  /** The rule that keeps out a folder, and so everything in it, whose own folders were already let in; or undefined. */
  folderRule(relative: string): string | undefined {
    const rel = slashed(relative);
    return this.rules.find((rule) => matches(rule, rel))?.glob ?? this.gitignoreRule(rel, true);
  }

  /** The rule that keeps out a file found on its own (a saved note), its folders checked as well; or undefined. */
  pathRule(relative: string): string | undefined {
    const names = slashed(relative).split('/');
    for (let i = 1; i < names.length; i++) {
      const rule = this.folderRule(names.slice(0, i).join('/'));
      if (rule) return rule;
    }
    return this.fileRule(relative);
  }

  /** Whether the .gitignore files from the root down to the path's folder ignore it; a deeper file has the last word. */
  private gitignoreRule(rel: string, folder: boolean): string | undefined {
    if (!this.readGitignore || rel === '') return undefined;
    const names = rel.split('/');
    let ignored = false;
    for (let depth = 0; depth < names.length; depth++) {
      const scope = names.slice(0, depth).join('/');
      const rules = this.gitignoreOf(scope);
      if (!rules) continue;
      const inScope = names.slice(depth).join('/') + (folder ? '/' : '');
      const verdict = rules.test(inScope);
      if (verdict.ignored) ignored = true;
      else if (verdict.unignored) ignored = false;
    }
    return ignored ? GITIGNORE_RULE : undefined;
  }

  private gitignoreOf(scope: string): Ignore | null {
    let rules = this.gitignores.get(scope);
    if (rules === undefined) {
      const text = this.readGitignore!(scope);
      rules = text === undefined ? null : ignore().add(text);
      this.gitignores.set(scope, rules);
    }
    return rules;
  }
}

/** A folder's .gitignore as text, or undefined when it has none that can be read. */
export function readGitignoreFile(folder: string | Buffer): string | undefined {
  const file =
    typeof folder === 'string'
      ? path.join(folder, GITIGNORE_RULE)
      : Buffer.concat([folder, Buffer.from(`${path.sep}${GITIGNORE_RULE}`)]);
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile() || stat.size > MAX_GITIGNORE_BYTES) return undefined;
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
