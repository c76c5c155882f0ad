// The trainer and the language server agree on where a model lives without being told.
import { homedir } from 'node:os';
import { join } from 'node:path';

export const APP_NAME = 'char-complete';

/** The per-user data directory, following each platform's convention. */
export function userDataDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), APP_NAME);
  if (platform === 'darwin') return join(homedir(), 'Library', 'Application Support', APP_NAME);
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), APP_NAME);
}

export function defaultModelDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  return env.CHAR_COMPLETE_MODEL_DIR || join(userDataDir(env, platform), 'model');
}
