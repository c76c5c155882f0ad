// The model a language server serves from a model directory: the LSTM, the notes' n-gram (plus what was learnt from
// saved notes) and the gate that mixes them, with an empty n-gram and the prior gate standing in for what is missing.
import type { EscapeModel } from './escape';
import { loadModel, SavedModel } from './format';
import { LearnedNotes } from './learned';
import { Mixer, MixerFormatError } from './mixer';
import {
  emptyNotesNgram,
  MIXER_SHAPE,
  MixtureParts,
  MixturePredictor,
  DocumentSource,
  newLastStage,
  priorMixer,
} from './mixture';
import type { NgramModel } from './ngram';
import { loadNgram, NgramFormatError } from './ngram-format';
import { LstmPredictor, Predictor } from './predictor';
import { AdaptedLstms } from './lstm-adaptation';
import { CarriedMixing } from './carried-mixing';
import { OnlineMixer } from './online-mixer';
import { ModelFormatError } from './files';
import { emptyNotesReaders, loadNotesContexts, loadNotesReaders, NotesReaders } from './notes-text';

export interface ServedModel {
  /** As loaded: with an escape model always, one made from the vocabulary where model.json has none. */
  saved: SavedModel & { escape: EscapeModel };
  lstm: LstmPredictor;
  /**
   * What every document's predictor mixes. Without a usable notes' n-gram (a model directory from
   * before the mixture, or a damaged file) the notes' part is an empty n-gram and the gate is the
   * prior, so the LSTM and the document's own n-gram serve.
   */
  mixture: MixtureParts;
  /** Whether the notes' n-gram came from the directory. */
  hasNotes: boolean;
  /** What was learnt from saved notes; only kept beside a notes' n-gram from the directory. */
  learned?: LearnedNotes;
  /** False while the trainer has saved only its first, n-gram model and the LSTM is still training. */
  lstmTrained: boolean;
  /**
   * The notes' context mixing is missing, damaged or of another format version, but the notes text
   * it is learnt from is here, so it can be learnt again (rebuildNotesContexts) without retraining.
   */
  contextsRebuildable: boolean;
  /** Why the notes' n-gram, its gate or the learnt notes are not used, when they are not. */
  warnings: string[];
  dispose(): void;
}

/**
 * How many of the LSTM's latest steps a served model keeps to answer again (lstm-step-cache.ts): a few searches' worth,
 * since a search after a keystroke steps mostly what the one before it stepped.
 */
const SERVED_CACHED_STEPS = 64;

/**
 * Loads the model in `dir`. The LSTM must load (it throws ModelFormatError otherwise); a missing,
 * corrupt or mismatched n-gram, gate or learnt-notes file only leaves that part out, and says why
 * in `warnings`. With `carryMixing`, new documents start from the mixing that earlier sessions
 * kept beside the model (carried-mixing.ts), and the model keeps its own there
 * (`mixture.carriedMixing.save()`); without it, from the trained mixture, which is what a figure
 * needs that must not depend on what a server did before.
 */
export function loadServedModel(dir: string, { carryMixing = false } = {}): ServedModel {
  const saved = loadModel(dir);
  const lstm = new LstmPredictor(saved, SERVED_CACHED_STEPS);
  const lstmTrained = saved.metadata.lstmTrained !== false;
  const warnings: string[] = [];
  const notes = loadNotes(dir, saved, warnings);
  let mixer: Mixer | undefined;
  let learned: LearnedNotes | undefined;
  let readers: NotesReaders | undefined;
  let contextsRebuildable = false;
  if (notes) {
    mixer = loadGate(dir, saved, warnings);
    const loaded = LearnedNotes.loadOrEmpty(dir, saved.vocabulary);
    if (loaded.unreadable) warnings.push(loaded.unreadable);
    learned = loaded.learned;
    ({ readers, contextsRebuildable } = loadReaders(dir, saved, warnings));
    learned.replayInto(notes, readers);
  }
  const mixture: MixtureParts = {
    vocabulary: saved.vocabulary,
    lstm: lstmTrained ? lstm : undefined,
    notes: notes ?? emptyNotesNgram(saved.vocabulary.size),
    notesReaders: readers,
    // A gate fitted with the notes' n-gram would trust the empty stand-in for it; the prior does not.
    mixer: mixer ?? priorMixer(),
    adaptedLstms: lstmTrained ? new AdaptedLstms(lstm) : undefined,
    carriedMixing: carryMixing ? carriedFrom(dir, saved, warnings) : new CarriedMixing(),
  };
  const dispose = () => {
    mixture.adaptedLstms?.dispose();
    lstm.dispose();
  };
  return { saved, lstm, mixture, hasNotes: !!notes, learned, lstmTrained, contextsRebuildable, warnings, dispose };
}

/** The mixing kept in `dir` by earlier sessions of this model, where there is any, and that keeps its own there. */
function carriedFrom(dir: string, saved: SavedModel & { weightsFile: string }, warnings: string[]): CarriedMixing {
  const { vocabulary } = saved;
  const fresh = { online: new OnlineMixer(vocabulary.size), lastStage: newLastStage(vocabulary.size) };
  const { carried, problem } = CarriedMixing.load({ dir, weightsFile: saved.weightsFile, vocabulary }, fresh);
  if (problem) warnings.push(problem);
  return carried;
}

/** The notes' n-gram in `dir`, or undefined (with a warning where one was expected). */
function loadNotes(dir: string, saved: SavedModel, warnings: string[]): NgramModel | undefined {
  try {
    const notes = loadNgram(dir, saved.vocabulary);
    if (notes) return notes;
  } catch (error) {
    if (!(error instanceof NgramFormatError)) throw error;
    warnings.push(`${error.message}; the model serves without the n-gram of your notes`);
    return undefined;
  }
  if (saved.metadata.mixer !== undefined)
    warnings.push(
      `the model in ${dir} was saved with an n-gram of your notes, but its file is missing; the model serves without it until you retrain`,
    );
  return undefined;
}

/**
 * The match and word models over the notes' text in `dir`; empty ones, which read only the notes
 * learnt from saves, where the directory has none (or an unreadable one, with a warning). And
 * whether the context mixing could be learnt again from that text, where it did not load.
 */
function loadReaders(
  dir: string,
  saved: SavedModel,
  warnings: string[],
): { readers: NotesReaders; contextsRebuildable: boolean } {
  let readers: NotesReaders | undefined;
  try {
    readers = loadNotesReaders(dir, saved.vocabulary);
  } catch (error) {
    if (!(error instanceof ModelFormatError)) throw error;
    warnings.push(`${error.message}; the model serves without following repeats of your notes until you retrain`);
  }
  const hasText = readers !== undefined;
  readers ??= emptyNotesReaders(saved.vocabulary);
  try {
    readers.contexts = loadNotesContexts(dir, saved.vocabulary);
  } catch (error) {
    if (!(error instanceof ModelFormatError)) throw error;
    warnings.push(`${error.message}; until then the model serves without it`);
  }
  return { readers, contextsRebuildable: hasText && !readers.contexts };
}

/** The gate saved beside the notes' n-gram, or undefined (with a warning) when the prior must stand in. */
function loadGate(dir: string, saved: SavedModel, warnings: string[]): Mixer | undefined {
  if (saved.metadata.mixer === undefined) {
    warnings.push(`the model in ${dir} has an n-gram but no gate to mix it with; the prior gate mixes it`);
    return undefined;
  }
  try {
    return Mixer.fromJSON(saved.metadata.mixer, MIXER_SHAPE);
  } catch (error) {
    if (!(error instanceof MixerFormatError)) throw error;
    warnings.push(`the mixture's gate in ${dir} is unusable (${error.message}); the prior gate mixes instead`);
    return undefined;
  }
}

/** What completions step for one document: the mixture with that document's own n-gram. */
export function documentPredictor(model: ServedModel, document: DocumentSource): Predictor {
  return new MixturePredictor(model.mixture, document);
}
