// Keeps the current model: loads it, reloads it when training writes a new one, and keeps
// serving the old one if the new one fails to load.
import { ChildProcess, spawn } from 'node:child_process';
import { lstatSync, statSync, watch, FSWatcher, Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { builtFile } from '../backends/built-files';
import { fileSignature, ModelFormatError } from '../model/files';
import { modelFilePath } from '../model/format';
import { NOTES_CONTEXTS_FILE } from '../model/notes-text';
import { loadServedModel, ServedModel } from '../model/served';
import { isRelearningUnderway, isTrainingUnderway, RELEARN_LOCK_FILE } from '../training/lock';

export interface ModelInfo {
  dir: string;
  description: string;
}

export class ModelHost {
  model: ServedModel | undefined;
  info: ModelInfo | undefined;
  /** Bumped on every (re)load, so per-document caches built on an older model are dropped. */
  generation = 0;
  private dir = '';
  private watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  /** What is being watched, so a directory created, deleted or replaced since is noticed. */
  private armedOn = '';
  /** model.json as it was at the last load attempt, so each new save is loaded once. */
  private loadedFile = '';
  /**
   * The model in use is the trainer's first, n-gram only, and its trainer still runs. A trainer that ended before its
   * first LSTM checkpoint (cancelled, killed, crashed) leaves that model for good, and the flag must not stay.
   */
  lstmTraining = false;
  /** The trainer learning the context model again, while it runs, and the model directory it writes. */
  private rebuilding: ChildProcess | undefined;
  private rebuildingDir = '';
  /** model.json as it was when learning its context model again failed, which the description then says. */
  private rebuildFailedFor = '';
  /** model.json as it was when another process (another window's server) was found learning its context model. */
  private rebuildElsewhereFor = '';
  /** model.json as it was when the context model was last learnt again for it, so that a failure is not retried. */
  private rebuiltFor = '';
  /** The context model's file as it was at the last load, so that a new one (learnt again) is loaded. */
  private contextsFile = '';
  /** When the carried mixing was last kept, and the last failure to keep it, which is logged once. */
  private carriedKeptAt = -Infinity;
  private carriedFailure = '';

  constructor(
    private readonly log: (message: string) => void,
    /** `damaged`: there is a model.json, but it cannot be used, which the user must hear about; a missing one is normal. */
    private readonly onChange: (error?: string, damaged?: boolean) => void,
  ) {}

  /** Points the host at a model directory; loads now and watches for new saves. */
  use(dir: string): void {
    dir = resolve(dir);
    if (dir === this.dir && this.model) return;
    this.dir = dir;
    this.arm();
    this.reload();
  }

  reload(): void {
    const started = performance.now();
    this.loadedFile = fileSignature(modelFilePath(this.dir));
    // The model loaded next (the same one, with new notes or context model, say) starts where this one's mixing is.
    this.keepCarriedMixing({ now: true });
    try {
      const next = loadServedModel(this.dir, { carryMixing: true });
      for (const warning of next.warnings) this.log(warning);
      this.model?.dispose();
      this.model = next;
      this.generation++;
      this.lstmTraining = !next.lstmTrained && isTrainingUnderway(this.dir);
      this.info = { dir: this.dir, description: this.descriptionOf(next) };
      this.log(
        `Loaded model ${this.dir} (${this.info.description}) in ${Math.round(performance.now() - started)} ms; LSTM steps run on ${next.lstm.stepsRunOn()}`,
      );
      this.onChange();
      this.contextsFile = fileSignature(join(this.dir, NOTES_CONTEXTS_FILE));
      if (next.contextsRebuildable) this.rebuildContexts();
    } catch (error) {
      const message =
        error instanceof ModelFormatError
          ? error.message
          : `could not load the model in ${this.dir}: ${(error as Error).message}`;
      this.log(this.model ? `${message}; still using the previously loaded model` : message);
      this.onChange(message, lstatSync(modelFilePath(this.dir), { throwIfNoEntry: false }) !== undefined);
    }
  }

  /**
   * Keeps the mixing that documents have taught beside the model, for the next session: at most once
   * a minute unless `now`, since a server that learns in every pause would otherwise write in every pause.
   */
  keepCarriedMixing({ now = false } = {}): void {
    const carried = this.model?.mixture.carriedMixing;
    if (!carried || (!now && performance.now() - this.carriedKeptAt < KEEP_CARRIED_MS)) return;
    try {
      if (carried.save()) this.carriedKeptAt = performance.now();
    } catch (error) {
      // Tried again at most once a minute too: a full disk would otherwise take a write in every pause.
      this.carriedKeptAt = performance.now();
      const failure = `could not keep the mixing your documents taught beside the model: ${(error as Error).message}`;
      if (failure !== this.carriedFailure) this.log(failure);
      this.carriedFailure = failure;
    }
  }

  /**
   * Watches the model directory and its parent or, while the directory is missing, its nearest
   * existing ancestor (on a fresh machine the whole data directory is created by the first
   * training). File events are fast but not dependable everywhere (a deleted directory's watch
   * goes quiet, network filesystems send none), so a cheap poll backs them up.
   */
  private arm(): void {
    for (const watcher of this.watchers) watcher.close();
    this.watchers = [];
    const { nearest, signature } = this.layout();
    this.armedOn = signature;
    const targets = nearest === this.dir ? [this.dir, dirname(this.dir)] : [nearest];
    for (const target of new Set(targets)) {
      try {
        const watcher = watch(target, () => this.settle());
        watcher.on('error', () => this.settle());
        this.watchers.push(watcher);
      } catch (error) {
        this.log(`not watching ${target} for new models: ${(error as Error).message}`);
      }
    }
    if (!this.pollTimer) {
      this.pollTimer = setInterval(() => this.check(), POLL_MS);
      this.pollTimer.unref();
    }
  }

  /** A save renames several files: look once they have settled. */
  private settle(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.check(), SETTLE_MS);
  }

  private check(): void {
    if (!this.dir) return;
    if (this.layout().signature !== this.armedOn) this.arm();
    const file = fileSignature(modelFilePath(this.dir));
    if (file !== '' && file !== this.loadedFile) return this.reload();
    if (this.model?.contextsRebuildable && fileSignature(join(this.dir, NOTES_CONTEXTS_FILE)) !== this.contextsFile)
      return this.reload();
    // The other process ended without a new file (its window closed, say): this server tries once itself.
    if (this.rebuildElsewhereFor === this.loadedFile && !isRelearningUnderway(this.dir)) {
      this.rebuildElsewhereFor = this.rebuiltFor = '';
      this.rebuildContexts();
    }
    if (this.lstmTraining && this.model && this.info && !isTrainingUnderway(this.dir)) {
      this.lstmTraining = false;
      this.info = { ...this.info, description: this.descriptionOf(this.model) };
      this.log(`The trainer writing ${this.dir} has ended; serving the n-gram of your notes it saved`);
      this.onChange();
    }
    // Notes learnt by another server on this directory count here too; a rewritten log is read afresh.
    const learnt = this.model?.learned?.catchUp();
    if (learnt === 'replaced') this.reload();
    else if (learnt?.applied)
      this.log(`Learnt ${learnt.applied} saved note${learnt.applied === 1 ? '' : 's'} from another window`);
  }

  /**
   * Learns the context model again from the notes text beside the model, in a trainer process of its own so that
   * completions go on meanwhile: a model saved before the context model's format last changed (or with a damaged file)
   * would otherwise serve without it until retrained. Once per model.json; check() loads the new file.
   */
  private rebuildContexts(): void {
    if (this.rebuilding || this.rebuiltFor === this.loadedFile || isTrainingUnderway(this.dir)) return;
    this.rebuiltFor = this.loadedFile;
    if (isRelearningUnderway(this.dir)) return this.relearntElsewhere(this.dir, this.loadedFile);
    const trainer = builtFile(TRAINER_FILE);
    if (!trainer)
      return this.log(`${TRAINER_FILE} is missing next to the server, so the context model is not learnt again`);
    const dir = this.dir;
    this.log(`Learning the context model of ${dir} again from its notes, in the background`);
    const child = spawn(process.execPath, [trainer, '--rebuild-contexts', '--out', dir], {
      // The server may run in the editor's own runtime, which is node only when asked.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.rebuilding = child;
    this.rebuildingDir = dir;
    this.redescribe();
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const forFile = this.loadedFile;
    const failed = (why: string) => {
      // Another window's server began at the same moment and holds the lock: its file is loaded when it is done.
      if (isRelearningUnderway(dir)) return this.relearntElsewhere(dir, forFile);
      this.log(`could not learn the context model of ${dir} again: ${why}`);
      this.rebuildFailedFor = forFile;
      this.redescribe();
    };
    // A process that never started may not report closing; then this is the end of it.
    child.on('error', (error) => {
      if (this.rebuilding !== child) return;
      this.rebuilding = undefined;
      failed(error.message);
    });
    child.on('close', (code) => {
      if (this.rebuilding !== child) return;
      this.rebuilding = undefined;
      if (code === 0) this.log(output.trim());
      else failed(output.trim());
      this.check();
      // The server may have been pointed at another directory meanwhile, whose model needs the same.
      if (this.model?.contextsRebuildable) this.rebuildContexts();
    });
  }

  private relearntElsewhere(dir: string, forFile: string): void {
    this.log(
      `Another process is learning the context model of ${dir} again (it holds ${RELEARN_LOCK_FILE}); its file is loaded when it is done`,
    );
    this.rebuildElsewhereFor = forFile;
    this.redescribe();
  }

  /** What the status shows of `model`: describe()'s line, and what is happening to a context model it lacks. */
  private descriptionOf(model: ServedModel): string {
    const line = describe(model, this.lstmTraining);
    if (!model.contextsRebuildable) return line;
    if ((this.rebuilding && this.rebuildingDir === this.dir) || this.rebuildElsewhereFor === this.loadedFile)
      return `${line}; learning its context model again from its notes, meanwhile without it`;
    if (this.rebuildFailedFor === this.loadedFile)
      return `${line}; without its context model, which could not be learnt again (the log says why)`;
    return line;
  }

  private redescribe(): void {
    if (!this.model || !this.info) return;
    this.info = { ...this.info, description: this.descriptionOf(this.model) };
    this.onChange();
  }

  /** The nearest existing directory from the model directory up, and its identity. */
  private layout(): { nearest: string; signature: string } {
    for (let dir = this.dir; ; dir = dirname(dir)) {
      const stat = statOrUndefined(dir);
      if (stat?.isDirectory()) return { nearest: dir, signature: `${dir}\0${stat.dev}:${stat.ino}` };
      if (dirname(dir) === dir) return { nearest: dir, signature: '' };
    }
  }

  dispose(): void {
    for (const watcher of this.watchers) watcher.close();
    this.watchers = [];
    clearInterval(this.pollTimer);
    clearTimeout(this.settleTimer);
    const child = this.rebuilding;
    this.rebuilding = undefined;
    child?.kill();
    this.dir = '';
    this.keepCarriedMixing({ now: true });
    this.model?.dispose();
  }
}

const POLL_MS = 1000;
const KEEP_CARRIED_MS = 60_000;
/** The trainer's bundle, beside the server's (or one directory up from the tests' bundles). */
const TRAINER_FILE = 'train.js';
const SETTLE_MS = 250;

/** Undefined for anything that cannot be looked at: absent, below a file, or not permitted. */
function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function describe(model: ServedModel, lstmTraining: boolean): string {
  const { config, metadata } = model.saved;
  const bpc = metadata.validation ? `${metadata.validation.bpc.toFixed(2)} bpc` : 'not validated';
  if (!model.hasNotes) return `${config.layers}×${config.hidden} LSTM mixed with the document's n-gram, ${bpc}`;
  if (!model.lstmTrained)
    return `n-gram of your notes, ${bpc}; ${lstmTraining ? 'the LSTM is still training' : 'the LSTM training stopped before its first checkpoint'}`;
  return `${config.layers}×${config.hidden} LSTM mixed with an n-gram of your notes, ${bpc}`;
}
