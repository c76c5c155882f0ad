// npm run train -- [PATH ...] [flags]: learns a char-LSTM from notes and saves it for the server.
import { resolve, join } from 'node:path';
import { statSync } from 'node:fs';
import { BACKEND_CHOICES, BackendChoice, BackendUnavailableError } from '../backends/select';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { checkGlobs } from '../model/exclusions';
import { listModels, modelDirForName, ModelNameError, modelsRoot } from '../model/models';
import { forgetLearnedPaths, planForget } from '../training/forget';
import { DiskFullError, ModelFormatError } from '../model/files';
import { readModelVocabulary } from '../model/format';
import { rebuildNotesContexts } from '../model/notes-text';
import { acquireRelearnLock, isTrainingUnderway, LockHeldError } from '../training/lock';
import { defaultModelDir, resolveModelDir } from '../model/paths';
import { ENGINE_CHOICES, EngineChoice, EngineUnavailableError } from '../training/engine-choice';
import { TorchEngineError, TorchLaunch } from '../training/torch-engine';
import { checkWritable } from '../training/checkpoint';
import { readNotes } from '../training/dataset';
import { Progress, train, TrainInputError, TrainOptions } from '../training/train';
import { numberFlag, parse, runMain, UsageError } from './cli';

const D = TRAIN_DEFAULTS;
const USAGE = `usage: npm run train -- [PATH ...] [options]

PATH                files or folders of notes (default: the embedded default corpus)
--exclude GLOB      never read files or folders matching GLOB (repeatable; *.log, drafts/, /top.md); key and
                    credential files and what .gitignore files ignore are always left out
--out DIR           where to write the model (default: ${defaultModelDir()}); ~ is the home directory
--minutes N         time budget            --epochs N      epoch budget
--chars N           budget in training characters seen (one of the three)
--early-stop        with --epochs or --chars, still stop once validation stops improving, as a time budget
                    does: the best checkpoint is then settled as the rate falls
--layers N (${D.layers})  --hidden N (${D.hidden})  --embed N (${D.embed})  --seq N (${D.seq})
--batch N (${D.batch} on a CPU; ${D.gpuBatch} on a GPU, halved for notes too small for ${D.gpuMinStepsPerEpoch} steps an epoch)
--lr X (${D.lr}; ${D.wide.lr} from a hidden size of ${D.wide.hidden} on a CPU's batch)  --decay X (${D.decay}): the last share of the budget over which the rate falls (0: constant)
--average X (${D.averageShare}): the weights saved average over about the last X share of the steps (0: as they stand)
--dropout X (${D.dropout})  --weight-drop X (${D.weightDrop.rate} where the budget reads the notes ${D.weightDrop.minEpochs} times or more, else 0):
                    the share of the LSTM's recurrent weights each training step drops
--seed N (${D.seed})
--backend auto|tensorflow|webgpu|wasm|cpu (auto)
--engine auto|wasm|torch (auto)   what takes the training steps: this process (wasm), or PyTorch
--gpus N | --nproc N    the torch engine on N GPUs, or in N CPU processes (DistributedDataParallel)
--nnodes N --master HOST:PORT     the torch engine on N machines, this one node 0 (see the README)
--name NAME         write the model named NAME, in ${modelsRoot()}/NAME (letters, digits, . _ -; "default" is
                    the directory above); give --name or --out, not both
--forget PATH       a new model that never reads PATH (a file or folder; repeatable) and without the notes learnt
                    from saves of it: the way to forget a file that was trained on
--list              list the models (name, date, size, validation, learnt characters, sources) and exit
--resume            continue training the model in --out
--validation-unseen the validation text stays out of the notes' memory (n-gram, match and context models), so that
                    \`npm run eval\` can measure the model on it; by default every note is learnt there
--rebuild-contexts  learn the context model of the model in --out (or --name) again from the notes text kept
                    beside it, and exit: for a model whose contexts.bin is missing, damaged or from an older
                    version (the language server does this by itself)
--json              end with one line of JSON: model, val_bpc, val_nats, chars_per_s, backend, engine
--progress-json     for programs: stdout carries only JSON lines, {"event":"progress",...} per update and
                    {"event":"done",...} (the --json line) at the end; SIGTERM, like Ctrl-C, stops after the step
--plan              print what would be trained as one JSON line (files, chars, bytes, minutes, out, the
                    exclusion and skip lines) and exit, reading the notes exactly as training would`;

async function main(): Promise<number> {
  const { values, positionals } = parse(
    process.argv.slice(2),
    {
      out: { type: 'string' },
      exclude: { type: 'string', multiple: true },
      minutes: { type: 'string' },
      epochs: { type: 'string' },
      chars: { type: 'string' },
      'early-stop': { type: 'boolean' },
      layers: { type: 'string' },
      hidden: { type: 'string' },
      embed: { type: 'string' },
      seq: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      decay: { type: 'string' },
      average: { type: 'string' },
      dropout: { type: 'string' },
      'weight-drop': { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      engine: { type: 'string' },
      gpus: { type: 'string' },
      nproc: { type: 'string' },
      nnodes: { type: 'string' },
      master: { type: 'string' },
      name: { type: 'string' },
      forget: { type: 'string', multiple: true },
      list: { type: 'boolean' },
      resume: { type: 'boolean' },
      'validation-unseen': { type: 'boolean' },
      'rebuild-contexts': { type: 'boolean' },
      json: { type: 'boolean' },
      'progress-json': { type: 'boolean' },
      plan: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (values.list) return printModels(values.json === true);
  const flag = (name: string, min: number, max: number, integer: boolean) =>
    numberFlag(values[name as keyof typeof values] as string | undefined, name, min, max, integer, USAGE);
  if ([values.minutes, values.epochs, values.chars].filter((v) => v !== undefined).length > 1)
    throw new UsageError(`give one of --minutes, --epochs and --chars\n\n${USAGE}`);
  const backend = (values.backend ?? 'auto') as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend))
    throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${values.backend}"\n\n${USAGE}`);
  const engine = (values.engine ?? 'auto') as EngineChoice;
  if (!ENGINE_CHOICES.includes(engine))
    throw new UsageError(`--engine must be one of ${ENGINE_CHOICES.join(', ')}, got "${values.engine}"\n\n${USAGE}`);
  const torch = torchLaunch(
    flag('gpus', 1, 1024, true),
    flag('nproc', 1, 1024, true),
    flag('nnodes', 1, 100_000, true),
    values.master as string | undefined,
  );
  if (torch && engine === 'wasm')
    throw new UsageError(`--gpus, --nproc and --nnodes run the torch engine; leave out --engine wasm\n\n${USAGE}`);

  const exclude = (values.exclude as string[] | undefined) ?? [];
  try {
    checkGlobs(exclude);
  } catch (error) {
    throw new UsageError(`--exclude: ${(error as Error).message}\n\n${USAGE}`);
  }
  const forget = ((values.forget as string[] | undefined) ?? []).map((p) => resolve(p));
  if (forget.length > 0 && values.resume)
    throw new UsageError(
      `--forget trains a new model, and --resume would keep the LSTM that read the forgotten text: leave out --resume\n\n${USAGE}`,
    );
  const forgetting = planForget(
    positionals.map((p) => resolve(String(p))),
    forget,
  );
  exclude.push(...forgetting.exclude);
  if (positionals.length > 0 && forgetting.paths.length === 0)
    throw new UsageError(`--forget leaves nothing of the paths given to train on\n\n${USAGE}`);
  const outDir =
    namedModelDir(values.name as string | undefined, values.out as string | undefined) ??
    resolveModelDir(values.out as string | undefined, process.cwd());
  if (values['rebuild-contexts']) {
    if (positionals.length > 0 || values.resume || forget.length > 0)
      throw new UsageError(
        `--rebuild-contexts reads the notes kept beside the model: give no PATH, --resume or --forget\n\n${USAGE}`,
      );
    return rebuildContexts(outDir);
  }

  const progressJson = values['progress-json'] === true;
  const json = values.json === true || progressJson;
  // With --json, stdout carries only the final JSON line; everything for people goes to stderr.
  const say = (line: string) => (json ? process.stderr : process.stdout).write(line + '\n');
  const bar = progressJson ? jsonProgress() : progressPrinter(json ? process.stderr : process.stdout);
  let stopSignal: NodeJS.Signals | undefined;
  const stop = (signal: NodeJS.Signals) => {
    // A second signal leaves at once; saves are atomic, so the last saved model stays whole.
    if (stopSignal) process.exit(128 + signalNumber(signal));
    stopSignal = signal;
    bar.clear();
    say(
      `${signal === 'SIGINT' ? 'Interrupted' : 'Stopped'}: finishing the step, then exiting with the best checkpoint kept (${signal === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to quit now; the last saved model stays intact).`,
    );
  };
  // SIGTERM is how editors, task runners and process managers ask a program to end: it stops as gently as Ctrl-C.
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const options: TrainOptions = {
    paths: forgetting.paths,
    exclude,
    packageRoot: join(__dirname, '..'),
    out: outDir,
    minutes: flag('minutes', 0.01, 10_000, false),
    epochs: flag('epochs', 0.01, 100_000, false),
    chars: flag('chars', 1, 1e12, true),
    // Left undefined when not given, so that --resume can tell a conflicting shape from a default.
    layers: flag('layers', 1, 16, true),
    hidden: flag('hidden', 1, 8192, true),
    embed: flag('embed', 1, 8192, true),
    seq: flag('seq', 1, 100_000, true) ?? D.seq,
    batch: flag('batch', 1, 100_000, true),
    lr: flag('lr', 1e-7, 1, false),
    decay: flag('decay', 0, 1, false) ?? D.decay,
    average: flag('average', 0, 1, false) ?? D.averageShare,
    dropout: flag('dropout', 0, 0.95, false) ?? D.dropout,
    weightDrop: flag('weight-drop', 0, 0.95, false),
    seed: flag('seed', 0, 2 ** 31 - 1, true) ?? D.seed,
    backend,
    engine,
    torch,
    resume: values.resume === true,
    earlyStop: values['early-stop'] === true,
    validationUnseen: values['validation-unseen'] === true,
  };
  if (values.plan === true) return printPlan(options);

  if (forget.length > 0) say(forgetLearnedPaths(outDir, forget));

  let result;
  try {
    result = await train(
      options,
      {
        info: (line) => {
          bar.clear();
          say(line);
        },
        progress: bar.update,
      },
      () => stopSignal !== undefined,
    );
  } catch (error) {
    // The engine's death is neither bad input nor a bug here: one line says what happened.
    if (!(error instanceof TorchEngineError)) throw error;
    bar.clear();
    process.stderr.write(
      `error: ${error.message}\nThe last saved model stays in its directory; --resume continues from it.\n`,
    );
    return 1;
  }
  bar.clear();

  const bpc =
    result.validationBpc === null
      ? 'n/a (validation set too small)'
      : `${result.validationBpc.toFixed(3)} bits/char (${result.validationNats!.toFixed(3)} nats)`;
  say(
    `Done (${result.stoppedBy}) after ${formatDuration(result.seconds)}: ${result.steps} steps, ${result.trainedChars.toLocaleString('en-US')} chars at ${Math.round(result.charsPerSecond).toLocaleString('en-US')} chars/s on ${result.engine}`,
  );
  say(`Validation: ${bpc}`);
  say(result.stoppedBy === 'interrupted' ? `Model directory: ${result.model}` : `Model saved to ${result.model}`);
  if (result.sample) say(`\nSample:\n${result.sample}\n`);
  if (json) {
    process.stdout.write(
      JSON.stringify({
        ...(progressJson ? { event: 'done' } : {}),
        model: result.model,
        val_bpc: result.validationBpc,
        val_nats: result.validationNats,
        lstm_val_nats: result.lstmValidationNats,
        ngram_val_nats: result.ngramValidationNats,
        chars_per_s: Math.round(result.charsPerSecond),
        backend: result.backend,
        engine: result.engine,
        steps: result.steps,
        trained_chars: result.trainedChars,
        seconds: Math.round(result.seconds * 10) / 10,
        stopped_by: result.stoppedBy,
      }) + '\n',
    );
  }
  // 128 + the signal, as a shell reports a command that Ctrl-C or kill ended.
  return result.stoppedBy === 'interrupted' ? 128 + signalNumber(stopSignal ?? 'SIGINT') : 0;
}

function signalNumber(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? 15 : 2;
}

/**
 * --plan: the notes as training would read them (the same walk, exclusions and skips), counted for a confirmation,
 * and nothing written.
 */
function printPlan(options: TrainOptions): number {
  const lines: string[] = [];
  const { corpus, usingDefault } = readNotes(options, { info: (line) => lines.push(line), progress: () => {} });
  let bytes = 0;
  for (const document of corpus.documents) {
    try {
      bytes += statSync(document.path).size;
    } catch {
      bytes += Buffer.byteLength(document.text);
    }
  }
  process.stdout.write(
    JSON.stringify({
      files: corpus.documents.length,
      chars: corpus.chars,
      bytes,
      excluded: corpus.excluded.length,
      skipped: corpus.skipped.length,
      dropped_lines: corpus.droppedLines.length,
      minutes: options.minutes ?? null,
      out: options.out,
      default_corpus: usingDefault,
      lines,
    }) + '\n',
  );
  return 0;
}

/** --progress-json: a JSON line per update, at most a few a second, and always when the validation figure moves. */
function jsonProgress() {
  let last = 0;
  let lastValidation: number | null = null;
  return {
    update(p: Progress) {
      const now = performance.now();
      if (now - last < 500 && p.validationBpc === lastValidation && p.fraction < 1) return;
      last = now;
      lastValidation = p.validationBpc;
      process.stdout.write(
        JSON.stringify({
          event: 'progress',
          fraction: Math.round(p.fraction * 1000) / 1000,
          eta_s: Number.isFinite(p.etaSeconds) ? Math.round(p.etaSeconds) : null,
          chars_per_s: Math.round(p.charsPerSecond),
          val_bpc: p.validationBpc,
          loss: Number.isFinite(p.loss) ? p.loss : null,
          epoch: p.epoch,
        }) + '\n',
      );
    },
    clear() {},
  };
}

/** A one-line bar redrawn in place on a terminal; plain lines every 10 seconds otherwise. */
function progressPrinter(stream: NodeJS.WriteStream) {
  const tty = stream.isTTY === true;
  let lastPlain = 0;
  let drawn = false;
  const describe = (p: Progress) =>
    `${Math.round(p.charsPerSecond).toLocaleString('en-US')} chars/s  loss ${p.loss.toFixed(3)}  val ${p.validationBpc === null ? '–' : p.validationBpc.toFixed(3) + ' bpc'}  epoch ${p.epoch}  ETA ${formatDuration(p.etaSeconds)}`;
  return {
    update(p: Progress) {
      if (tty) {
        const width = 24;
        const filled = Math.round(p.fraction * width);
        stream.write(
          `\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(p.fraction * 100)).padStart(3)}%  ${describe(p)}`,
        );
        drawn = true;
      } else if (performance.now() - lastPlain > 10_000) {
        lastPlain = performance.now();
        stream.write(`${Math.floor(p.fraction * 100)}%  ${describe(p)}\n`);
      }
    },
    clear() {
      if (drawn) stream.write('\r\x1b[2K');
      drawn = false;
    },
  };
}

/** --rebuild-contexts: the context model of the model in `dir` learnt again from its notes text. */
function rebuildContexts(dir: string): number {
  // A trainer saves its own context model; one learnt here from the notes it is replacing would be stale.
  if (isTrainingUnderway(dir))
    throw new TrainInputError(`a training is writing ${dir}, and it saves the context model itself`);
  const started = performance.now();
  let chars: number | undefined;
  let release: (() => void) | undefined;
  try {
    const vocabulary = readModelVocabulary(dir);
    // Found before a minute of learning, not at the save.
    checkWritable(dir, 'Make it writable so that the context model can be saved there.');
    release = acquireRelearnLock(dir);
    chars = rebuildNotesContexts(dir, vocabulary, () => !isTrainingUnderway(dir));
  } catch (error) {
    if (error instanceof ModelFormatError || error instanceof LockHeldError) throw new TrainInputError(error.message);
    throw error;
  } finally {
    release?.();
  }
  if (chars === undefined)
    throw new TrainInputError(`a training began writing ${dir} meanwhile, and it saves the context model itself`);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `Learnt the context model of ${dir} again from ${chars.toLocaleString('en-US')} chars of its notes in ${seconds.toFixed(1)} s\n`,
  );
  return 0;
}

/** --name's directory; undefined without --name. */
function namedModelDir(name: string | undefined, out: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  if (out !== undefined) throw new UsageError(`give --name or --out, not both\n\n${USAGE}`);
  try {
    return modelDirForName(name);
  } catch (error) {
    if (error instanceof ModelNameError) throw new UsageError(`--name: ${error.message}\n\n${USAGE}`);
    throw error;
  }
}

/** --list: the models, one per line (or as JSON), for choosing a --name or a charComplete.model. */
function printModels(json: boolean): number {
  const list = listModels('');
  if (json) {
    process.stdout.write(JSON.stringify(list) + '\n');
    return 0;
  }
  if (list.models.length === 0) process.stdout.write(`No models yet (named models go in ${list.root}).\n`);
  for (const m of list.models) {
    const figures = m.problem
      ? `unreadable: ${m.problem}`
      : `${m.savedAt.slice(0, 16).replace('T', ' ')}  ${(m.sizeBytes / 1e6).toFixed(1)} MB  ${m.validationBpc === null ? 'not validated' : `${m.validationBpc.toFixed(3)} bpc`}  ${m.learntChars.toLocaleString('en-US')} chars learnt  from ${m.sources.join(', ') || '–'} (${m.corpusChars.toLocaleString('en-US')} chars)`;
    process.stdout.write(`${m.name.padEnd(16)} ${figures}\n${' '.repeat(17)}${m.dir}\n`);
  }
  return 0;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '–';
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

// A full disk is the user's to fix, like bad input: one line that names the file, and exit code 2.
/** Where --gpus, --nproc and --nnodes put the torch engine; undefined when none is given. */
function torchLaunch(gpus?: number, nproc?: number, nnodes?: number, master?: string): TorchLaunch | undefined {
  if (gpus !== undefined && nproc !== undefined) throw new UsageError(`give --gpus or --nproc, not both\n\n${USAGE}`);
  if (master !== undefined && !(nnodes! > 1))
    throw new UsageError(`--master is for several machines: give --nnodes too\n\n${USAGE}`);
  if (gpus === undefined && nproc === undefined && nnodes === undefined) return undefined;
  const launch: TorchLaunch = { processes: gpus ?? nproc ?? 1, device: gpus ? 'cuda' : nproc ? 'cpu' : 'auto' };
  if (nnodes !== undefined && nnodes > 1) {
    if (!master || !/^.+:\d+$/.test(master))
      throw new UsageError(
        `--nnodes ${nnodes} needs --master HOST:PORT, an address of this machine the others reach\n\n${USAGE}`,
      );
    launch.nodes = { count: nnodes, master };
  }
  return launch;
}

runMain(main, [TrainInputError, BackendUnavailableError, DiskFullError, EngineUnavailableError]);
