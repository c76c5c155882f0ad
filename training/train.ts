// The training run, read top to bottom as nanoGPT's train.py is: the corpus, the plan (backend,
// budget, size), the model, the loop with periodic validation and best-checkpoint saves, and the
// finish (the best checkpoint scored with the gate refitted, and a sample).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { selectSequenceBackend } from '../backends/select';
import { generate } from '../completion/complete';
import type { NetworkConfig } from '../model/architecture';
import { foldLearnedNotes, learnedNotesMark } from '../model/learned';
import type { Mixer } from '../model/mixer';
import { documentNgram, MixturePredictor } from '../model/mixture';
import { loadNgram, saveNgram } from '../model/ngram-format';
import { learnNotesContexts, saveNotesContexts, saveNotesText } from '../model/notes-text';
import { LstmPredictor } from '../model/predictor';
import { planTraining } from './budget';
import {
  Checkpoint,
  claimModelDirectory,
  Figures,
  ModelWriter,
  openResumed,
  ResumedModel,
  describeRun,
  resumedOptimizerState,
} from './checkpoint';
import { DOCUMENT_SEPARATOR } from './corpus';
import { Dataset, prepareDataset, readNotes, smallNotesBatch, trainingBatch } from './dataset';
import { defaultLearningRate, defaultWeightDrop, TRAIN_DEFAULTS } from './defaults';
import { EngineSetup, LstmEngine, TfjsEngine } from './engine';
import { EngineSelection, selectEngine } from './engine-choice';
import { fitMixture, ValidationSet } from './mixture-fit';
import { countParameters, SpeedMeasure } from './model-size';
import { StepShape, timeTrainingStep, trainingProbe } from './speed';
import type { OptimizerState } from './optimizer-state';
import { TorchLstmEngine } from './torch-lstm-engine';
import { describeDecay, learningRateAt, settlingRateAt } from './schedule';
import type { TrainOptions, TrainReporter, TrainResult } from './train-types';

export { TrainInputError } from './train-types';
export type { Progress, TrainOptions, TrainReporter, TrainResult } from './train-types';

const LN2 = Math.LN2;

export async function train(
  options: TrainOptions,
  reporter: TrainReporter,
  shouldStop: () => boolean = () => false,
): Promise<TrainResult> {
  const releases: Array<() => void> = [];
  try {
    return await runTraining(options, reporter, shouldStop, releases);
  } finally {
    for (const release of releases) release();
  }
}

async function runTraining(
  options: TrainOptions,
  reporter: TrainReporter,
  shouldStop: () => boolean,
  releases: Array<() => void>,
): Promise<TrainResult> {
  // The corpus, and the model directory claimed before any time is spent training. Notes learnt
  // from saves after the mark were saved while this run trained: they stay learnt.
  const learntBefore = learnedNotesMark(options.out);
  const { corpus, usingDefault } = readNotes(options, reporter);
  releases.push(claimModelDirectory(options.out));
  const resumed = options.resume ? openResumed(options, reporter) : undefined;
  const text = prepareDataset(corpus, resumed, options, reporter);
  const { vocabulary, periodic } = text;
  const { seq, dropout } = options;
  // Timed with the drop a long run takes: it costs a share of a step, whatever the plan then decides.
  const weightDrop = options.weightDrop ?? TRAIN_DEFAULTS.weightDrop.rate;

  // The plan: the backend and the engine, timed at a CPU's batch; then the batch of the device that
  // trains, and the budget and the size it trains, timed on that engine at that batch.
  const requested = resumed?.config ?? shapeAsked(options, vocabulary.size);
  const processes = (options.torch?.processes ?? 1) * (options.torch?.nodes?.count ?? 1);
  const probe = {
    config: requested,
    batch: trainingBatch(options.batch, false, processes, text.maxBatch),
    seq,
    dropout,
    weightDrop,
  };
  const backend = await selectSequenceBackend(options.backend, trainingProbe(requested, probe.batch, seq));
  reporter.info(`Backend: ${backend.name} (${backend.reason})`);
  const sizeGiven = resumed !== undefined || options.hidden !== undefined;
  const chosen = await chooseEngine(options, probe, reporter, releases);
  const torch = chosen.torch;
  const onGpu = torch ? torch.info.device !== 'cpu' : backend.gpu;
  const world = torch?.info.worldSize ?? 1;
  const batch = trainingBatch(options.batch, onGpu, world, text.maxBatch);
  const smallNotes = onGpu && options.batch === undefined && smallNotesBatch(batch, world, text.maxBatch);
  if (smallNotes) reporter.info(smallNotes);
  const shape = { batch, seq, dropout, weightDrop };
  const measure: SpeedMeasure = async (candidate) =>
    (torch ? await torch.time(candidate, shape) : await timeTrainingStep(candidate, shape)).fastest;
  const trainedOn = torch ? `torch (${torch.info.device})` : backend.name;
  const run = { usingDefault, trainChars: text.trainIds.length, config: requested, sizeGiven, measure };
  const { budget, config, epochs } = await planTraining({ ...options, batch }, run, reporter);
  const lr = options.lr ?? defaultLearningRate(config.hidden, batch);
  const planned = { ...options, lr, weightDrop: options.weightDrop ?? defaultWeightDrop(epochs) };
  if (options.weightDrop === undefined) reporter.info(describeWeightDrop(planned.weightDrop, epochs));

  // The model, and a first model on disk within seconds: the notes' n-gram.
  const engine = await startEngine(config, text, batch, planned, resumed, chosen, reporter);
  const description = { options: planned, config, batch, corpus, text, usingDefault, backend: backend.name, resumed };
  const writer = new ModelWriter(options.out, describeRun({ ...description, engine: trainedOn }));
  let mixer = await saveNgramModel(writer, engine, text, !resumed, reporter);
  const folded = foldLearnedNotes(options.out, learntBefore, corpus.documents, () => text.notesText);
  if (folded) reporter.info(folded);

  // The loop. Time counts from here, so the budget covers training and validation, the resumed
  // model's included: it is the one to beat, scored on today's split, which may differ from the
  // split it was trained with.
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const charsOf = (steps: number) => steps * batch * seq;
  let best = resumed && (await scoreResumed(engine, resumed, periodic, reporter));
  let step = 0;
  let trainingSeconds = 0;
  let smoothedLoss = NaN;
  let evaluationsWithoutImprovement = 0;
  let stoppedBy: TrainResult['stoppedBy'] = 'budget';
  let nextEvaluation = budget.evaluateEvery;
  let rate = lr;
  /** The rate that trained the best checkpoint's last step: settling starts from it. */
  let bestRate = rate;
  const progressFraction = () => (budget.seconds ? elapsed() / budget.seconds : step / budget.steps!);
  const trainStep = async (learningRate: number) => {
    const stepStarted = performance.now();
    const loss = await engine.step(learningRate);
    trainingSeconds += (performance.now() - stepStarted) / 1000;
    step++;
    smoothedLoss = Number.isNaN(smoothedLoss) ? loss : 0.95 * smoothedLoss + 0.05 * loss;
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step} (loss ${loss}); try a lower --lr`);
  };
  const report = (fraction: number, etaSeconds: number) =>
    reporter.progress({
      fraction,
      charsPerSecond: charsOf(step) / trainingSeconds,
      loss: smoothedLoss,
      validationBpc: best && best.figures.mixture !== null ? best.figures.mixture / LN2 : null,
      etaSeconds,
      epoch: Math.floor(step / engine.batchesPerEpoch) + 1,
    });
  const stopAsked = async () => {
    // The SIGINT handler only runs between macrotasks, and on wasm every await in a step resolves
    // as a microtask: without this turn of the event loop Ctrl-C would wait for the budget to end.
    await nextTurn();
    return shouldStop();
  };
  while (progressFraction() < 1) {
    if (await stopAsked()) {
      stoppedBy = 'interrupted';
      break;
    }
    rate = learningRateAt(lr, options.decay, progressFraction());
    await trainStep(rate);

    if (budget.seconds ? elapsed() >= nextEvaluation : step >= nextEvaluation) {
      const evaluationStarted = performance.now();
      const scores = periodic ? await engine.score(periodic) : null;
      const nats = periodic && scores ? periodic.lstmNats(scores) : null;
      // Validation may take at most a tenth of the time, however short the budget is; a step
      // budget is held to that too, or its twenty evaluations can outlast the training.
      const evaluationSeconds = (performance.now() - evaluationStarted) / 1000;
      nextEvaluation = budget.seconds
        ? elapsed() + Math.max(budget.evaluateEvery, 9 * evaluationSeconds)
        : step + Math.max(budget.evaluateEvery, Math.ceil((9 * evaluationSeconds * step) / trainingSeconds));
      if (nats === null || !best || nats < best.nats) {
        const gate = periodic && scores ? periodic.fitGate(scores, mixer) : null;
        if (gate) mixer = gate.mixer;
        const figures = { lstm: nats, ngram: periodic?.notesNats ?? null, mixture: gate?.nats ?? null };
        const { weights, optimizerState } = await engine.checkpoint();
        best = { nats: nats ?? Infinity, weights, steps: step, chars: charsOf(step), figures };
        bestRate = rate;
        writer.save({ ...best, seconds: elapsed(), lstmTrained: true, mixer, optimizerState });
        evaluationsWithoutImprovement = 0;
      } else if (
        ++evaluationsWithoutImprovement >= TRAIN_DEFAULTS.patience &&
        budget.earlyStopping &&
        step >= TRAIN_DEFAULTS.epochsBeforeEarlyStop * engine.batchesPerEpoch
      ) {
        stoppedBy = 'early stopping';
        break;
      }
    }
    const fraction = Math.min(1, progressFraction());
    report(fraction, fraction > 0 ? (elapsed() / fraction) * (1 - fraction) : NaN);
  }

  // Stopped early, the best checkpoint was found at a high rate, before the fall that settles the weights into
  // their basin: training goes back to it and lets the rate fall over a share of the steps that reached it, as the
  // budget's end would have. The finish keeps the settled weights only if they validate better.
  const settleSteps = stoppedBy === 'early stopping' && best ? Math.ceil(options.decay * best.steps) : 0;
  if (best && settleSteps > 0) {
    const floorRate = lr * TRAIN_DEFAULTS.finalLrFactor;
    reporter.info(
      `Validation stopped improving at step ${step}: settling the best checkpoint (step ${best.steps}) over ${settleSteps} steps as the rate falls from ${bestRate.toPrecision(3)} to ${floorRate.toPrecision(3)}`,
    );
    await engine.load(best.weights);
    const settleStarted = elapsed();
    const stoppedAt = progressFraction();
    for (let i = 0; i < settleSteps; i++) {
      if (await stopAsked()) {
        stoppedBy = 'interrupted';
        break;
      }
      await trainStep(settlingRateAt(bestRate, floorRate, i / settleSteps));
      const done = (i + 1) / settleSteps;
      report(stoppedAt + (1 - stoppedAt) * done, ((elapsed() - settleStarted) / done) * (1 - done));
    }
  }

  // The finish. Ctrl-C must return in seconds, and validating takes longer than that, so an
  // interrupted run validates nothing: its best checkpoint is already on disk with its figures and
  // Adam's state, or, with none yet, the weights are saved as they stand for --resume.
  const interrupted = stoppedBy === 'interrupted';
  let figures: Figures = best?.figures ?? { lstm: null, ngram: null, mixture: null };
  if (!interrupted && (step > 0 || best)) {
    const final = await scoreBest(engine, best, { steps: step, chars: charsOf(step) }, text, seq, mixer, reporter);
    ({ best, mixer } = final);
    figures = best.figures;
    writer.save({ ...best, seconds: elapsed(), lstmTrained: true, mixer, optimizerState: final.optimizerState });
    reporter.info(
      `Validation, nats/char: LSTM ${formatNats(figures.lstm)}, n-gram ${formatNats(figures.ngram)}, mixture ${formatNats(figures.mixture)}`,
    );
  } else if (interrupted && best) {
    const since = step - best.steps;
    reporter.info(
      `Interrupted: the best checkpoint stays in ${options.out}${since > 0 ? `; the ${since} step${since === 1 ? '' : 's'} since it were not validated` : ''}.`,
    );
  } else if (interrupted && step > 0) {
    const now = { steps: step, chars: charsOf(step), seconds: elapsed() };
    best = await saveAsTheyStand(engine, writer, now, periodic, mixer);
    figures = best.figures;
    reporter.info(
      `Interrupted before the first checkpoint: saved the weights and optimizer state as they stand to ${options.out}, for --resume.`,
    );
  } else if (interrupted) {
    reporter.info('Interrupted before the first step: nothing new was saved.');
  }
  const seconds = elapsed();
  const sample = best && !interrupted ? await sampleFrom(best, config, text, mixer, options.seed) : '';
  await engine.dispose();
  return {
    model: options.out,
    ...validationResult(figures),
    charsPerSecond: trainingSeconds > 0 ? charsOf(step) / trainingSeconds : 0,
    backend: backend.name,
    engine: trainedOn,
    steps: step,
    trainedChars: charsOf(step),
    seconds,
    stoppedBy,
    sample,
  };
}

/** The shape of a new model: the flags given, the defaults for the rest (the budget may change the size). */
function shapeAsked(options: TrainOptions, vocabSize: number): NetworkConfig {
  return {
    vocabSize,
    embed: options.embed ?? TRAIN_DEFAULTS.embed,
    hidden: options.hidden ?? TRAIN_DEFAULTS.hidden,
    layers: options.layers ?? TRAIN_DEFAULTS.layers,
  };
}

/**
 * The engine that takes the steps (--engine), said in the first lines, with the speed the budget
 * plans with; a torch child is closed when the run ends, however it ends.
 */
async function chooseEngine(
  options: TrainOptions,
  probe: StepShape & { config: NetworkConfig },
  reporter: TrainReporter,
  releases: Array<() => void>,
): Promise<EngineSelection> {
  const chosen = await selectEngine(options.engine ?? 'auto', {
    backend: options.backend,
    launch: options.torch ?? {},
    probe,
    wasmSpeed: async () => (await timeTrainingStep(probe.config, probe)).fastest,
  });
  releases.push(() => void chosen.torch?.close());
  reporter.info(`Engine: ${chosen.description}`);
  for (const note of chosen.notes) reporter.info(`Note: ${note}`);
  return chosen;
}

function describeWeightDrop(rate: number, epochs: number): string {
  const times = `the budget reads the training text ${epochs.toFixed(1)} times`;
  const { minEpochs } = TRAIN_DEFAULTS.weightDrop;
  return rate > 0
    ? `Weight drop: ${rate} of the recurrent weights each step, as ${times} (${minEpochs} or more; --weight-drop sets it)`
    : `Weight drop: none, as ${times} (it starts at ${minEpochs}; --weight-drop sets it)`;
}

/**
 * The engine chosen, with the weights and Adam's state of the model being resumed (both engines run
 * the same Adam on the same layout, so either continues the other's state). With auto, a torch
 * engine that dies hands over to this process's engine, from the last weights it handed back.
 */
async function startEngine(
  config: NetworkConfig,
  text: Dataset,
  batch: number,
  options: TrainOptions & { lr: number; weightDrop: number },
  resumed: ResumedModel | undefined,
  chosen: EngineSelection,
  reporter: TrainReporter,
): Promise<LstmEngine> {
  const { seq, lr, dropout, weightDrop, seed } = options;
  const optimizerState = resumed && resumedOptimizerState(options.out, resumed, reporter);
  // Models from before engines were recorded were trained by this process's engine.
  const savedBy = String(resumed?.metadata.engine ?? 'wasm').startsWith('torch') ? 'torch' : 'wasm';
  if (optimizerState && savedBy !== chosen.name)
    reporter.info(
      `Adam's state was saved by the ${savedBy} engine; the ${chosen.name} engine runs the same Adam on the same layout, so it goes on from it.`,
    );
  const setup: EngineSetup = {
    config,
    trainIds: text.trainIds,
    batch,
    seq,
    lr,
    dropout,
    weightDrop,
    seed,
    averageShare: options.average,
    weights: resumed?.weights,
    optimizerState,
  };
  const continueOnWasm = (error: Error, lastGood: EngineSetup) => {
    reporter.info(
      `${error.message}\nThe best checkpoint stays in ${options.out}; going on with the wasm engine from the last weights the torch engine handed back (Adam at step ${lastGood.optimizerState?.step ?? 0}).`,
    );
    return new TfjsEngine(lastGood);
  };
  const engine = chosen.torch
    ? await TorchLstmEngine.create(
        chosen.torch,
        setup,
        options.engine === 'torch' ? undefined : continueOnWasm,
        (note) => reporter.info(note),
      )
    : new TfjsEngine(setup);
  reporter.info(
    `Model: ${config.layers}×${config.hidden} LSTM, embedding ${config.embed}, ${countParameters(config).toLocaleString('en-US')} parameters; batch ${batch}, seq ${seq}, lr ${lr}${describeDecay(options.decay)}; dropout ${dropout}, recurrent weights dropped ${weightDrop}`,
  );
  return engine;
}

/**
 * Saves the notes' memory at once and, for a new model, a gate fitted to what an untrained LSTM knows (nothing), so
 * completions work while the LSTM trains; returns that gate.
 */
async function saveNgramModel(
  writer: ModelWriter,
  engine: LstmEngine,
  text: Dataset,
  newModel: boolean,
  reporter: TrainReporter,
): Promise<Mixer | undefined> {
  // The training text's counts first: validation scores the gate with them, so they must not know the validation text.
  saveNgram(writer.out, text.notes, text.vocabulary);
  saveNotesText(writer.out, text.notesText);
  // Seconds a megabyte, before the LSTM's first step: said first, so that the wait is explained.
  reporter.info(
    `Learning the contexts of your notes (${text.notesIds.length.toLocaleString('en-US')} chars) for the context mixing…`,
  );
  const started = performance.now();
  saveNotesContexts(writer.out, learnNotesContexts(text.vocabulary, text.notesIds), text.vocabulary);
  reporter.info(`Learnt them in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const mixer = newModel ? await saveFirstModel(writer, engine, text, reporter) : undefined;
  // After the first model, which completions need soonest; servers read it with the next checkpoint.
  if (learnHeldOutNotes(writer.out, text))
    reporter.info(
      `Your notes' memory reads the ${text.validationIds.length.toLocaleString('en-US')} validation chars too, so held-out notes are completed from; the LSTM never trains on them (--validation-unseen leaves them out)`,
    );
  return mixer;
}

async function saveFirstModel(
  writer: ModelWriter,
  engine: LstmEngine,
  text: Dataset,
  reporter: TrainReporter,
): Promise<Mixer | undefined> {
  const { periodic } = text;
  if (!periodic) return undefined;
  const mixer = fitMixture(periodic.samples).mixer;
  const ngramOnly = periodic.mixtureNats(mixer);
  const figures = { lstm: null, ngram: periodic.notesNats, mixture: ngramOnly };
  writer.save({
    weights: (await engine.checkpoint()).weights,
    figures,
    steps: 0,
    chars: 0,
    seconds: 0,
    lstmTrained: false,
    mixer,
  });
  reporter.info(
    `Saved an n-gram model for completions while the LSTM trains: ${(ngramOnly / LN2).toFixed(3)} bits/char on ${periodic.samples.count.toLocaleString('en-US')} validation chars`,
  );
  return mixer;
}

/** The validation text (the held-out notes) learnt into the n-gram's file, as a save would learn them; whether it was. */
function learnHeldOutNotes(dir: string, text: Dataset): boolean {
  if (!text.validationInNotes || text.validationIds.length === 0) return false;
  const served = loadNgram(dir, text.vocabulary)!;
  const separator = text.vocabulary.encode(DOCUMENT_SEPARATOR);
  const heldOut = new Int32Array(separator.length + text.validationIds.length);
  heldOut.set(separator);
  heldOut.set(text.validationIds, separator.length);
  served.add(heldOut, separator.length);
  saveNgram(dir, served, text.vocabulary);
  return true;
}

async function scoreResumed(
  engine: LstmEngine,
  resumed: ResumedModel,
  periodic: ValidationSet | undefined,
  reporter: TrainReporter,
): Promise<Checkpoint | undefined> {
  if (!periodic) return undefined;
  const nats = periodic.lstmNats(await engine.score(periodic));
  reporter.info(
    `The resumed model scores ${(nats / LN2).toFixed(3)} bits/char on this validation set; only a better checkpoint replaces it.`,
  );
  return { nats, weights: resumed.weights, steps: 0, chars: 0, figures: { lstm: nats, ngram: null, mixture: null } };
}

/**
 * The end of a run that was not interrupted: the weights as they stand replace the best checkpoint
 * if they score better, and the best comes back with its figures on the final validation text,
 * the gate refitted there. Adam's state comes back only when it belongs to the weights returned,
 * since an earlier checkpoint's was saved with it. Called with a checkpoint, or after a step.
 */
async function scoreBest(
  engine: LstmEngine,
  best: Checkpoint | undefined,
  now: { steps: number; chars: number },
  text: Dataset,
  seq: number,
  mixer: Mixer | undefined,
  reporter: TrainReporter,
): Promise<{ best: Checkpoint; mixer?: Mixer; optimizerState?: OptimizerState }> {
  let optimizerState: OptimizerState | undefined;
  let chosen = best;
  if (now.steps > 0) {
    const { periodic } = text;
    const scores = periodic ? await engine.score(periodic) : null;
    const nats = periodic && scores ? periodic.lstmNats(scores) : null;
    if (!chosen || (nats !== null && nats < chosen.nats)) {
      const figures = { lstm: nats, ngram: null, mixture: null };
      const current = await engine.checkpoint();
      chosen = { nats: nats ?? Infinity, weights: current.weights, ...now, figures };
      optimizerState = current.optimizerState;
    }
  }
  if (!chosen) throw new Error('scoreBest: neither a checkpoint nor a step to score');
  await engine.load(chosen.weights);
  const { finalIds, validationIds } = text;
  reporter.info(
    `Scoring the best checkpoint and the mixture on ${finalIds.length === validationIds.length ? 'the whole validation set' : `${finalIds.length.toLocaleString('en-US')} validation chars`}…`,
  );
  const final = ValidationSet.of(finalIds, text.validationBatch, seq, text.notes, text.finalEscapeNats);
  const scores = final ? await engine.score(final) : null;
  const gate = final && scores ? final.fitGate(scores, mixer) : null;
  const figures = {
    lstm: final && scores ? final.lstmNats(scores) : null,
    ngram: final?.notesNats ?? null,
    mixture: gate?.nats ?? null,
  };
  return { best: { ...chosen, figures }, mixer: gate?.mixer ?? mixer, optimizerState };
}

/**
 * Saves the weights and Adam's state of a run interrupted before its first checkpoint, for
 * --resume. Unvalidated, they are marked as an LSTM not yet trained unless a gate weighs them, so
 * the server goes on serving the n-gram.
 */
async function saveAsTheyStand(
  engine: LstmEngine,
  writer: ModelWriter,
  now: { steps: number; chars: number; seconds: number },
  periodic: ValidationSet | undefined,
  mixer: Mixer | undefined,
): Promise<Checkpoint> {
  const ngramOnly = periodic && mixer ? periodic.mixtureNats(mixer) : null;
  const figures = { lstm: null, ngram: periodic?.notesNats ?? null, mixture: ngramOnly };
  const { weights, optimizerState } = await engine.checkpoint();
  const checkpoint = { nats: Infinity, weights, steps: now.steps, chars: now.chars, figures };
  writer.save({ ...checkpoint, seconds: now.seconds, lstmTrained: ngramOnly === null, mixer, optimizerState });
  return checkpoint;
}

/** A few hundred characters from the model as served, for the trainer's last lines. */
async function sampleFrom(
  best: Checkpoint,
  config: NetworkConfig,
  text: Dataset,
  mixer: Mixer | undefined,
  seed: number,
): Promise<string> {
  const { vocabulary, notes } = text;
  const lstm = new LstmPredictor({ config, vocabulary, weights: best.weights });
  const predictor = mixer
    ? new MixturePredictor({ vocabulary, lstm, notes, mixer }, { model: documentNgram(vocabulary.size) })
    : lstm;
  const prompt = text.validationText.slice(0, 40);
  const sample = await generate(predictor, prompt, TRAIN_DEFAULTS.sampleChars, TRAIN_DEFAULTS.sampleTemperature, seed);
  lstm.dispose();
  return sample;
}

/** The result's validation figures: the model as served is the mixture, or the LSTM alone without a gate. */
function validationResult(
  figures: Figures,
): Pick<TrainResult, 'validationNats' | 'validationBpc' | 'lstmValidationNats' | 'ngramValidationNats'> {
  const nats = figures.mixture ?? figures.lstm;
  return {
    validationNats: nats,
    validationBpc: nats === null ? null : nats / LN2,
    lstmValidationNats: figures.lstm,
    ngramValidationNats: figures.ngram,
  };
}

function formatNats(nats: number | null): string {
  return nats === null ? 'n/a' : nats.toFixed(3);
}
