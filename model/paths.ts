// The trainer and the language server agree on where a model lives without being told.
import { homedir } from 'node:os';
import { isAbsolute, join, win32 } from 'node:path';

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

export function defaultModelDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  return env.CHAR_COMPLETE_MODEL_DIR || join(userDataDir(env, platform), 'model');
}
