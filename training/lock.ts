// One trainer per model directory: two savers would delete each other's temporary files mid-save
// (saveModel cleans up every stray temporary it finds) and interleave their checkpoints. And one
// process learning a model's context model again: a server in each open window would start one.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diskFullOr, isProcessAlive } from '../model/files';

export const LOCK_FILE = 'train.lock';
export const RELEARN_LOCK_FILE = 'contexts-relearn.lock';

/** What a lock's holder is doing, in LockHeldError's messages. */
interface Activity {
  file: string;
  /** The holder and what it does, for "another <who> is <does> <dir>". */
  who: string;
  does: string;
  holder: string;
  /** What to do while a live holder on this machine goes on. */
  meanwhile: string;
}

const TRAINING: Activity = {
  file: LOCK_FILE,
  who: 'training',
  does: 'writing',
  holder: 'trainer',
  meanwhile: 'Wait for it to finish, stop it, or choose another --out.',
};

const RELEARNING: Activity = {
  file: RELEARN_LOCK_FILE,
  who: 'process',
  does: 'learning again the context model of',
  holder: 'such process',
  meanwhile: 'Every language server serving the model loads its file when it is done.',
};

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
 * Takes the training lock on dir (which must exist) or throws LockHeldError naming the holder. A
 * lock left by a process that no longer runs on this machine is taken over. Returns the release
 * function, which is also run if the process exits without calling it.
 */
export function acquireTrainingLock(dir: string): () => void {
  return acquireLock(dir, TRAINING);
}

/** Takes the lock of learning dir's context model again, as acquireTrainingLock takes the training's. */
export function acquireRelearnLock(dir: string): () => void {
  return acquireLock(dir, RELEARNING);
}

function acquireLock(dir: string, activity: Activity): () => void {
  const file = path.join(dir, activity.file);
  const me: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString() };
  const tmp = path.join(dir, `${activity.file}.tmp-${process.pid}`);
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
          `another ${activity.who} may be ${activity.does} ${dir}: ${activity.file} is there but unreadable. If no ${activity.holder} is running, ${remove}.`,
        );
      if (owner.host !== me.host) {
        throw new LockHeldError(
          `another ${activity.who} is ${activity.does} ${dir}, pid ${owner.pid} on ${owner.host}. If it is no longer running, ${remove}.`,
        );
      }
      if (owner.pid === process.pid || isProcessAlive(owner.pid)) {
        throw new LockHeldError(
          `another ${activity.who} is ${activity.does} ${dir}, pid ${owner.pid} (since ${owner.started}). ${activity.meanwhile}`,
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
  return isHeld(dir, TRAINING);
}

/** Whether a process holds dir's lock of learning the context model again now, as isTrainingUnderway says. */
export function isRelearningUnderway(dir: string): boolean {
  return isHeld(dir, RELEARNING);
}

function isHeld(dir: string, activity: Activity): boolean {
  const file = path.join(dir, activity.file);
  if (!fs.existsSync(file)) return false;
  const owner = readOwner(file);
  return !owner || owner.host !== os.hostname() || isProcessAlive(owner.pid);
}
