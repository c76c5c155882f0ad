// The model a language server serves from a model directory: the LSTM and, where the directory has them, the notes'
// n-gram (plus what was learnt from saved notes) and the gate that mixes them.
import { loadModel, SavedModel } from './format';
import { LearnedFormatError, LearnedNotes } from './learned';
import { Mixer, MixerFormatError } from './mixer';
import { MIXER_SHAPE, MixtureParts, MixturePredictor, NgramSource } from './mixture';
import type { NgramModel } from './ngram';
import { loadNgram, NgramFormatError } from './ngram-format';
import { LstmPredictor, Predictor } from './predictor';

export interface ServedModel {
  saved: SavedModel;
  lstm: LstmPredictor;
  /** Absent for a model directory from before the mixture, or when its n-gram could not be used. */
  mixture?: MixtureParts;
  learned?: LearnedNotes;
  /** False while the trainer has saved only its first, n-gram model and the LSTM is still training. */
  lstmTrained: boolean;
  /** Why the n-gram or the gate is not used, when they are not. */
  warnings: string[];
  dispose(): void;
}

/**
 * Loads the model in `dir`. The LSTM must load (it throws ModelFormatError otherwise); a missing,
 * corrupt or mismatched n-gram, gate or learnt-notes file only makes the LSTM serve alone, or
 * without what was learnt, and says why in `warnings`.
 */
export function loadServedModel(dir: string): ServedModel {
  const saved = loadModel(dir);
  const lstm = new LstmPredictor(saved);
  const lstmTrained = saved.metadata.lstmTrained !== false;
  const warnings: string[] = [];
  let mixture: MixtureParts | undefined;
  let learned: LearnedNotes | undefined;
  let notes: NgramModel | null = null;
  try {
    notes = loadNgram(dir, saved.vocabulary);
  } catch (error) {
    if (!(error instanceof NgramFormatError)) throw error;
    warnings.push(`${error.message}; the LSTM serves alone`);
  }
  if (notes && saved.metadata.mixer !== undefined) {
    try {
      const mixer = Mixer.fromJSON(saved.metadata.mixer, MIXER_SHAPE);
      try {
        learned = LearnedNotes.load(dir, saved.vocabulary);
      } catch (error) {
        if (!(error instanceof LearnedFormatError)) throw error;
        warnings.push(error.message);
        learned = LearnedNotes.empty(saved.vocabulary);
      }
      learned.replayInto(notes);
      mixture = { vocabulary: saved.vocabulary, lstm: lstmTrained ? lstm : undefined, notes, mixer };
    } catch (error) {
      if (!(error instanceof MixerFormatError)) throw error;
      warnings.push(`the mixture's gate in ${dir} is unusable (${error.message}); the LSTM serves alone`);
    }
  } else if (notes) {
    warnings.push(`the model in ${dir} has an n-gram but no gate to mix it with; the LSTM serves alone`);
  } else if (saved.metadata.mixer !== undefined && warnings.length === 0) {
    warnings.push(
      `the model in ${dir} was saved with an n-gram, but its file is missing; the LSTM serves alone until you retrain`,
    );
  }
  return { saved, lstm, mixture, learned, lstmTrained, warnings, dispose: () => lstm.dispose() };
}

/** What completions step for one document: the mixture with that document's own n-gram, or the LSTM alone. */
export function documentPredictor(model: ServedModel, document: NgramSource): Predictor {
  return model.mixture ? new MixturePredictor(model.mixture, document) : model.lstm;
}
