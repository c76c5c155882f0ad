// One trainer per model directory: two savers would delete each other's temporary files mid-save
// (saveModel cleans up every stray temporary it finds) and interleave their checkpoints.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diskFullOr, isProcessAlive } from '../model/files';

export const LOCK_FILE = 'train.lock';

export class LockHeldError extends Error {}

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (Number.isInteger(owner?.pid) && owner.pid > 0 && typeof owner.host === 'string') return owner as LockOwner;
  } catch {
    // Unreadable or not ours: treated as held, since it cannot be shown to be stale.
  }
  return undefined;
}

/**
 * Takes the lock on dir (which must exist) or throws LockHeldError naming the holder. A lock left
 * by a process that no longer runs on this machine is taken over. Returns the release function,
 * which is also run if the process exits without calling it.
 */
export function acquireTrainingLock(dir: string): () => void {
  const file = path.join(dir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString() };
  const tmp = path.join(dir, `${LOCK_FILE}.tmp-${process.pid}`);
  const content = JSON.stringify(me) + '\n';
  try {
    fs.writeFileSync(tmp, content);
  } catch (error) {
    fs.rmSync(tmp, { force: true });
    throw diskFullOr(error, file, content.length);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        // A hard link appears atomically with its whole content, so no one reads a half-written lock.
        fs.linkSync(tmp, file);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 2) throw error;
      }
      const owner = readOwner(file);
      const remove = `rm ${JSON.stringify(file)}`;
      if (!owner)
        throw new LockHeldError(
          `another training may be writing ${dir}: ${LOCK_FILE} is there but unreadable. If no trainer is running, ${remove}.`,
        );
      if (owner.host !== me.host) {
        throw new LockHeldError(
          `another training is writing ${dir}, pid ${owner.pid} on ${owner.host}. If it is no longer running, ${remove}.`,
        );
      }
      if (owner.pid === process.pid || isProcessAlive(owner.pid)) {
        throw new LockHeldError(
          `another training is writing ${dir}, pid ${owner.pid} (since ${owner.started}). Wait for it to finish, stop it, or choose another --out.`,
        );
      }
      // Stale: its trainer died without releasing it.
      fs.rmSync(file, { force: true });
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    // Only our own lock: after a takeover by someone who judged ours stale, theirs stays.
    if (readOwner(file)?.pid === me.pid) fs.rmSync(file, { force: true });
  };
  process.on('exit', release);
  return release;
}

/**
 * Whether a trainer holds dir's lock now: false when there is no lock or its owner, on this machine, is dead (a trainer
 * killed before it could release it). A lock from another machine or an unreadable one counts as held.
 */
export function isTrainingUnderway(dir: string): boolean {
  const file = path.join(dir, LOCK_FILE);
  if (!fs.existsSync(file)) return false;
  const owner = readOwner(file);
  return !owner || owner.host !== os.hostname() || isProcessAlive(owner.pid);
}
