// Keeps the current model: loads it, reloads it when training writes a new one, and keeps
// serving the old one if the new one fails to load.
import { existsSync, watch, FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ModelFormatError, modelFilePath } from '../model/format';
import { loadServedModel, ServedModel } from '../model/served';

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
  private watcher: FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;

  constructor(private readonly log: (message: string) => void, private readonly onChange: (error?: string) => void) {}

  /** Points the host at a model directory; loads now and watches for new saves. */
  use(dir: string): void {
    dir = resolve(dir);
    if (dir === this.dir && this.model) return;
    this.dir = dir;
    this.watch();
    this.reload();
  }

  reload(): void {
    const started = performance.now();
    try {
      const next = loadServedModel(this.dir);
      for (const warning of next.warnings) this.log(warning);
      this.model?.dispose();
      this.model = next;
      this.generation++;
      this.info = { dir: this.dir, description: describe(next) };
      this.log(`Loaded model ${this.dir} (${this.info.description}) in ${Math.round(performance.now() - started)} ms`);
      this.onChange();
    } catch (error) {
      const message = error instanceof ModelFormatError ? error.message : `could not load the model in ${this.dir}: ${(error as Error).message}`;
      this.log(this.model ? `${message}; still using the previously loaded model` : message);
      this.onChange(message);
    }
  }

  /** Watches the directory (created saves arrive by rename) or, while it is missing, its parent. */
  private watch(): void {
    this.watcher?.close();
    const target = existsSync(this.dir) ? this.dir : dirname(this.dir);
    if (!existsSync(target)) return;
    try {
      this.watcher = watch(target, (_event, file) => {
        const name = file?.toString();
        if (target === this.dir ? name !== 'model.json' : resolve(target, name ?? '') !== this.dir) return;
        // A save renames several files; wait for it to settle.
        clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => {
          if (target !== this.dir) this.watch();
          if (existsSync(modelFilePath(this.dir))) this.reload();
        }, 250);
      });
    } catch (error) {
      this.log(`not watching ${target} for new models: ${(error as Error).message}`);
    }
  }

  dispose(): void {
    this.watcher?.close();
    clearTimeout(this.reloadTimer);
    this.model?.dispose();
  }
}

function describe(model: ServedModel): string {
  const { config, metadata } = model.saved;
  const bpc = metadata.validation ? `${metadata.validation.bpc.toFixed(2)} bpc` : 'not validated';
  if (!model.mixture) return `${config.layers}×${config.hidden} LSTM, ${bpc}`;
  if (!model.lstmTrained) return `n-gram of your notes, ${bpc}; the LSTM is still training`;
  return `${config.layers}×${config.hidden} LSTM mixed with an n-gram of your notes, ${bpc}`;
}
