// The trainer and the language server agree on where a model lives without being told.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve, win32 } from 'node:path';

export const APP_NAME = 'char-complete';

/**
 * A base directory from the environment, or undefined when it is unset or relative. The XDG Base
 * Directory spec says a relative path must be ignored: it would be resolved against each process's
 * working directory, so the trainer and the server, started from different folders, would
 * disagree on where the model is.
 */
function absoluteBase(value: string | undefined, isAbsolutePath: (p: string) => boolean): string | undefined {
  return value && isAbsolutePath(value) ? value : undefined;
}

/** The per-user data directory, following each platform's convention. */
export function userDataDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  if (platform === 'win32') {
    return join(absoluteBase(env.LOCALAPPDATA, win32.isAbsolute) ?? join(homedir(), 'AppData', 'Local'), APP_NAME);
  }
  if (platform === 'darwin') return join(homedir(), 'Library', 'Application Support', APP_NAME);
  return join(absoluteBase(env.XDG_DATA_HOME, isAbsolute) ?? join(homedir(), '.local', 'share'), APP_NAME);
}

/**
 * A path a person typed (a setting, --out, CHAR_COMPLETE_MODEL_DIR) as an absolute one: `~` and `~/…` are the home
 * directory, and any other relative path is relative to `base`. The trainer and the server both resolve through
 * here, so one string names one directory whichever of them reads it.
 */
export function resolveUserPath(typed: string, base: string): string {
  const expanded = typed === '~' || /^~[/\\]/.test(typed) ? homedir() + typed.slice(1) : typed;
  return resolve(base, expanded);
}

/**
 * The model directory when none is named: CHAR_COMPLETE_MODEL_DIR, or the user data directory's. A relative
 * CHAR_COMPLETE_MODEL_DIR is relative to the home directory, since the trainer and the server start in different
 * folders.
 */
export function defaultModelDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  const named = env.CHAR_COMPLETE_MODEL_DIR?.trim();
  return named ? resolveUserPath(named, homedir()) : join(userDataDir(env, platform), 'model');
}

/**
 * The model directory for a modelPath setting or the trainer's --out: empty means the default; a relative one is
 * relative to `base` (the workspace folder for the server, the working directory for the trainer, which the
 * extension starts in the workspace folder).
 */
export function resolveModelDir(typed: string | undefined, base: string, env: NodeJS.ProcessEnv = process.env): string {
  return typed?.trim() ? resolveUserPath(typed.trim(), base) : defaultModelDir(env);
}
