// The model as served: the LSTM, the n-gram memory of the notes and an n-gram of the document being written, mixed per
// character by the gate, then mixed again with them and the match models' guesses by the document's online stage.
import type { AdaptiveEscape } from './escape';
import { AdaptedLstms, LstmAdaptation } from './lstm-adaptation';
import {
  MATCH_STATE_SIZE,
  MATCH_LONG_LENGTH,
  MatchModel,
  matchNodeProbabilities,
  type MatchPrediction,
} from './match-model';
import { Mixer, MixerShape } from './mixer';
import { NgramConfidence, NgramModel } from './ngram';
import {
  characterClasses,
  matchesStanding,
  MATCHES_STANDING,
  OnlineInputs,
  OnlineMixer,
  PREVIOUS_CLASSES,
  previousClass,
} from './online-mixer';
import type { NotesReaders } from './notes-text';
import { OpenerReader } from './paragraph-openers';
import type { Predictor, Snapshot } from './predictor';
import { lastCodePointOf, type Vocabulary } from './vocab';
import {
  advanceWords,
  characterShapes,
  nesting,
  WORD_STATE_SIZE,
  WordModel,
  wordLetters,
  wordsDistribution,
} from './word-model';
import { BitwiseInput, BitwiseMixer, LAST_STAGE_INITIAL_WEIGHTS } from './bitwise-mixer';
import type { CarriedMixing } from './carried-mixing';
import { guessNodeProbabilities, idBits } from './logistic';
import { advanceLines, type AboveModel, LINES_STATE_SIZE } from './line-above';
import { anchorGuesserFor, anchorNodeProbabilities, type AnchorGuesser } from './heading-anchor';
import { CONTEXT_SPAN, type ContextMixingModel, massBefore } from './context-mixing';
import { nestingMarks, NESTINGS } from './nesting';
import { type EchoConfidence, type EchoGuess, type TokenEcho, tokenEchoFor } from './token-echo';

export const MIXTURE_COMPONENTS = ['lstm', 'notes', 'document'] as const;
/**
 * The last stage's weights are selected by the longer match's length, in these many doubling
 * buckets; by how the two matches stand; and by the character before's class.
 */
const LAST_STAGE_MATCH_BUCKETS = 8;
export const LAST_STAGE_SELECTORS = LAST_STAGE_MATCH_BUCKETS * MATCHES_STANDING * PREVIOUS_CLASSES;
/** A document's last stage, as it starts before anything is carried into it: weights selected by that and by nesting(). */
export const newLastStage = (vocabSize: number): BitwiseMixer =>
  new BitwiseMixer(vocabSize, LAST_STAGE_INITIAL_WEIGHTS, [LAST_STAGE_SELECTORS, NESTINGS - 1]);
/** Matched orders above this share one gate feature: by then the context says nearly all. */
const MAX_ORDER_FEATURE = 8;
/**
 * Where each of the gate's features sits in its feature vector. Fitting, serving and the prior
 * all index through this, so they cannot disagree; a saved gate's weights follow this layout, so
 * changing it means retraining.
 */
export const GATE_FEATURE = {
  /** Always 1. */
  bias: 0,
  /** One-hot over the notes n-gram's matched order, 0..MAX_ORDER_FEATURE (an empty n-gram counts as 0). */
  notesOrder: 1,
  notesContextCount: 2 + MAX_ORDER_FEATURE,
  notesSeenMass: 3 + MAX_ORDER_FEATURE,
  lstmMaxProb: 4 + MAX_ORDER_FEATURE,
  documentOrder: 5 + MAX_ORDER_FEATURE,
  documentContextCount: 6 + MAX_ORDER_FEATURE,
  documentSeenMass: 7 + MAX_ORDER_FEATURE,
  count: 8 + MAX_ORDER_FEATURE,
} as const;
export const MIXER_SHAPE: MixerShape = {
  components: [...MIXTURE_COMPONENTS],
  featureCount: GATE_FEATURE.count,
};

/**
 * The document model's order and size: a lower order than the notes', since a document is short,
 * but long enough for the paths, commands and phrases a note repeats (docs/measurements.md has the
 * A/B of orders 5 to 12); the bound keeps a thousand open documents cheap.
 */
export const DOCUMENT_NGRAM_ORDER = 8;
export const DOCUMENT_NGRAM_MAX_NODES = 200_000;
/**
 * Smaller discounts than the notes' n-gram: within one document what recurs recurs exactly (a
 * name, a term), so its model should be sharp; its vagueness elsewhere is the gate's to discount.
 */
export const DOCUMENT_NGRAM_DISCOUNT_SCALE = 0.5;
/** How much text before the cursor the document model holds; it starts afresh beyond this. */
export const DOCUMENT_NGRAM_WINDOW = 20_000;

/**
 * The openers' n-gram reads far enough back to see the whole opener before and a few characters
 * of the one being typed; a document has few paragraphs, so it stays small.
 */
export const OPENER_NGRAM_ORDER = 12;
export const OPENER_NGRAM_MAX_NODES = 50_000;

export function openerNgram(vocabSize: number): NgramModel {
  return new NgramModel(vocabSize, {
    order: OPENER_NGRAM_ORDER,
    maxNodes: OPENER_NGRAM_MAX_NODES,
    discountScale: DOCUMENT_NGRAM_DISCOUNT_SCALE,
  });
}

export function documentNgram(vocabSize: number): NgramModel {
  return new NgramModel(vocabSize, {
    order: DOCUMENT_NGRAM_ORDER,
    maxNodes: DOCUMENT_NGRAM_MAX_NODES,
    discountScale: DOCUMENT_NGRAM_DISCOUNT_SCALE,
  });
}

/**
 * The gate's features at one position, computed the same way when fitting and when serving:
 * how long a context of the notes the n-gram matched and how often it was seen, how much of its
 * mass went to what it has seen follow, the LSTM's own confidence, and the same for the document.
 */
export function mixtureFeatures(
  notes: NgramConfidence,
  lstmMaxProb: number,
  document: NgramConfidence,
  out: Float32Array,
): Float32Array {
  out.fill(0);
  out[GATE_FEATURE.bias] = 1;
  out[GATE_FEATURE.notesOrder + Math.min(MAX_ORDER_FEATURE, Math.max(0, notes.order))] = 1;
  out[GATE_FEATURE.notesContextCount] = Math.log1p(notes.contextCount) / 8;
  out[GATE_FEATURE.notesSeenMass] = notes.seenMass;
  out[GATE_FEATURE.lstmMaxProb] = lstmMaxProb;
  out[GATE_FEATURE.documentOrder] = Math.max(0, document.order) / DOCUMENT_NGRAM_ORDER;
  out[GATE_FEATURE.documentContextCount] = Math.log1p(document.contextCount) / 8;
  out[GATE_FEATURE.documentSeenMass] = document.seenMass;
  return out;
}

/**
 * Where the mixture finds what it knows of the document, which their owner may replace as the
 * document changes: n-grams of its text and of its paragraphs' openers read one after another (see
 * paragraph-openers.ts), the match model over its text, and the online stage that learns from it;
 * all but the first are absent where no document is being written.
 */
export interface DocumentSource {
  readonly model: NgramModel;
  readonly openers?: NgramModel;
  readonly match?: MatchModel;
  /** What followed each pair of words in the document, learnt as it is typed. */
  readonly words?: WordModel;
  readonly online?: OnlineMixer;
  /**
   * The last stage, where the notes have a context-mixing model: the online stage's mixture mixed
   * again with it and the LSTM, bit by bit (bitwise-mixer.ts).
   */
  readonly lastStage?: BitwiseMixer;
  /** What the document has shown to come below the character above, where it has a last stage. */
  readonly above?: AboveModel;
  /** How often the echo's guesses came right in the document, where it has a last stage. */
  readonly echoConfidence?: EchoConfidence;
  /** The context mixing of the document's own text, once it has begun learning it (after startContexts). */
  readonly contexts?: ContextMixingModel;
  /** The document's context mixing: started as an overlay of the notes' (ContextMixingModel.overlay), grown as it needs. */
  startContexts?(notes: ContextMixingModel): ContextMixingModel;
  /** The characters outside the vocabulary that the document has shown, and the code point it ends with. */
  readonly escape?: AdaptiveEscape;
  readonly lastCodePoint?: number;
  /** The online stages have learnt a character: where the document's teaching is carried, the next documents start from it. */
  taught?(): void;
}

/**
 * What the gate believes before it sees any samples, and where samples are silent: trust the
 * LSTM by default, the more the surer it is; trust an n-gram the longer the context it matched,
 * the notes' and the document's alike; and give next to nothing to a notes' n-gram that matched
 * nothing (or is empty), which knows only how common each character is. Fitting starts here and is
 * pulled back towards it; a model directory without an n-gram of its notes is served by it, so it
 * must not let the document's n-gram, which has seen little, outweigh the LSTM where it matched a
 * short context.
 */
export function mixerPrior(): Float32Array {
  const F = MIXER_SHAPE.featureCount;
  const weights = new Float32Array(MIXER_SHAPE.components.length * F);
  const lstm = MIXTURE_COMPONENTS.indexOf('lstm') * F;
  const notes = MIXTURE_COMPONENTS.indexOf('notes') * F;
  const document = MIXTURE_COMPONENTS.indexOf('document') * F;
  weights[lstm + GATE_FEATURE.bias] = 1;
  weights[lstm + GATE_FEATURE.lstmMaxProb] = 2;
  weights[notes + GATE_FEATURE.notesOrder] = -3;
  for (let order = 1; order <= MAX_ORDER_FEATURE; order++)
    weights[notes + GATE_FEATURE.notesOrder + order] = 0.5 * order - 1;
  weights[document + GATE_FEATURE.bias] = -1;
  weights[document + GATE_FEATURE.documentOrder] = 4;
  return weights;
}

/** The gate of a model that has none fitted to its notes: the prior itself. */
export const priorMixer = (): Mixer => new Mixer(MIXER_SHAPE, mixerPrior());

/** The notes' part of a model without an n-gram of its notes: it has no context to match, so order 1 keeps the states short. */
export const emptyNotesNgram = (vocabSize: number): NgramModel => new NgramModel(vocabSize, { order: 1 });

export const emptyConfidence = (): NgramConfidence => ({ order: -1, contextCount: 0, successors: 0, seenMass: 0 });

/** What a mixture predictor is made of; `lstm` is absent while the LSTM has not been trained yet. */
export interface MixtureParts {
  vocabulary: Vocabulary;
  lstm?: Predictor;
  notes: NgramModel;
  /** The match and word models over the notes' text, where the model directory keeps it. */
  notesReaders?: NotesReaders;
  mixer: Mixer;
  /** The copies of the LSTM that documents adapt to themselves; absent where the LSTM is not trained. */
  adaptedLstms?: AdaptedLstms;
  /** The online stages' weights the document taught last left, which a new document starts from. */
  carriedMixing?: CarriedMixing;
}

/**
 * A Predictor over the mixture, so that beam search, sampling and the state cache work on it
 * unchanged. Its state is the LSTM's followed by the last characters fed (their count first),
 * which is all the n-grams need to know of the past, where the text stands among its
 * paragraphs' openers, and the matches it follows in the document and in the notes.
 *
 * Where the document has an online stage, the gate's mixture is mixed again with its parts and the
 * match models' guesses (online-mixer.ts); observe() teaches that stage the document's characters,
 * while beam search and sampling only read it.
 *
 * While a paragraph's opener is typed, and the openers' n-gram has seen what followed the opener
 * before, the gate's mixture is interpolated with it by Witten-Bell: with weight n / (n + d) for
 * an opener that followed n times, in d different ways. The gate knows only how long a context an
 * n-gram matched, not that this one spans a paragraph: a speaker who answered the last one twice
 * should take over from a model that has never heard of either.
 */
export class MixturePredictor implements Predictor {
  readonly vocabulary: Vocabulary;
  private readonly lstmSize: number;
  private readonly contextLength: number;
  private readonly openerReader: OpenerReader;
  private readonly openerStart: number;
  private readonly notesProbs: Float32Array;
  private readonly documentProbs: Float32Array;
  private readonly lstmProbs: Float32Array;
  private readonly features = new Float32Array(MIXER_SHAPE.featureCount);
  private readonly notesConfidence = emptyConfidence();
  private readonly documentConfidence = emptyConfidence();
  private readonly openerProbs: Float32Array;
  private readonly openerConfidence = emptyConfidence();
  /** Where the state keeps the document's match, then the notes' match. */
  private readonly matchStart: number;
  private readonly notesMatchStart: number;
  /** Where the state keeps the words before the position (word-model.ts). */
  private readonly wordStart: number;
  /** Where the state keeps the line before the position and the line so far (line-above.ts). */
  private readonly linesStart: number;
  private readonly lineBreak: number;
  private readonly wordsScratch: [Float32Array, Float32Array];
  /** The online stage's inputs at the position being mixed; the log-probability vectors are scratch. */
  private readonly online: OnlineInputs;
  /** The row of the document's AboveModel at the position read last, or -1 where nothing is above. */
  private aboveRow = -1;
  private readonly anchors: AnchorGuesser;
  /** The id of the anchor a link's text spells at the position read last, or -1. */
  private anchorGuess = -1;
  private readonly anchorNodes: Float32Array;
  private readonly echo: TokenEcho;
  /** How the token being typed goes on, as an earlier one on the line or the line before goes, at the position read last. */
  private readonly echoGuess: EchoGuess = { id: -1, typed: 0, before: -1, folded: false, number: false };
  /** The row of the document's EchoConfidence that counts echoGuess, or -1 where there is no guess. */
  private echoRow = -1;
  private readonly echoNodes: Float32Array;
  private readonly uniformLog: Float32Array;
  private readonly classOf: Uint8Array;
  private readonly letters: Int32Array;
  private readonly shapes: Uint8Array;
  private readonly marks: Uint8Array;
  private readonly lastStageSelected = new Int32Array(2);
  /** Bits of an id: the depth of the ids' tree that the last stage mixes over. */
  private readonly bits: number;
  /** What the last stage mixes, left by mix(): the online stage's mixture and the context mixings' node probabilities. */
  private readonly onlineMixture: Float32Array;
  /** The online mixture's mass before each id, for the context mixings to skip what it finds unlikely. */
  private readonly onlineMassBefore: Float64Array;
  private readonly notesContextsNodes: Float32Array;
  private readonly documentContextsNodes: Float32Array;
  private readonly documentMatchNodes: Float32Array;
  private readonly notesMatchNodes: Float32Array;
  /** The LSTM's log-probabilities at each snapshot, for observe(). */
  private readonly lstmAt = new WeakMap<Snapshot, Float32Array>();
  /** Where the document has an online stage, the LSTM adapts to it too. */
  private readonly adaptation: LstmAdaptation | undefined;

  /** `document` gives what is known of the text being written, grown by its owner. */
  constructor(
    private readonly parts: MixtureParts,
    private readonly document: DocumentSource,
  ) {
    this.vocabulary = parts.vocabulary;
    this.lstmSize = parts.lstm?.zeroState().length ?? 0;
    this.contextLength = Math.max(parts.notes.order - 1, DOCUMENT_NGRAM_ORDER - 1, CONTEXT_SPAN, MATCH_LONG_LENGTH);
    this.openerReader = new OpenerReader(parts.vocabulary, OPENER_NGRAM_ORDER - 1);
    this.openerStart = this.lstmSize + 1 + this.contextLength;
    this.matchStart = this.openerStart + this.openerReader.size;
    this.notesMatchStart = this.matchStart + MATCH_STATE_SIZE;
    this.wordStart = this.notesMatchStart + MATCH_STATE_SIZE;
    this.linesStart = this.wordStart + WORD_STATE_SIZE;
    this.lineBreak = parts.vocabulary.id('\n');
    const V = parts.vocabulary.size;
    this.notesProbs = new Float32Array(V);
    this.documentProbs = new Float32Array(V);
    this.openerProbs = new Float32Array(V);
    this.wordsScratch = [new Float32Array(V), new Float32Array(V)];
    this.lstmProbs = new Float32Array(V).fill(1 / V);
    this.uniformLog = new Float32Array(V).fill(-Math.log(V));
    this.onlineMixture = new Float32Array(V);
    this.onlineMassBefore = new Float64Array(V + 1);
    this.bits = idBits(V);
    this.notesContextsNodes = new Float32Array(1 << this.bits);
    this.documentContextsNodes = new Float32Array(1 << this.bits);
    this.documentMatchNodes = new Float32Array(1 << this.bits);
    this.notesMatchNodes = new Float32Array(1 << this.bits);
    this.anchorNodes = new Float32Array(1 << this.bits);
    this.anchors = anchorGuesserFor(parts.vocabulary);
    this.echoNodes = new Float32Array(1 << this.bits);
    this.echo = tokenEchoFor(parts.vocabulary);
    this.classOf = characterClasses(parts.vocabulary);
    this.letters = wordLetters(parts.vocabulary);
    this.shapes = characterShapes(parts.vocabulary);
    this.marks = nestingMarks(parts.vocabulary);
    if (document.online && parts.lstm && parts.adaptedLstms) this.adaptation = new LstmAdaptation(parts.adaptedLstms);
    this.online = {
      mixture: new Float32Array(V),
      lstm: this.uniformLog,
      notes: new Float32Array(V),
      document: new Float32Array(V),
      words: new Float32Array(V),
      match: { id: -1, length: 0 },
      notesMatch: { id: -1, length: 0 },
      previous: previousClass(undefined),
      previousId: -1,
      twoBeforeId: -1,
      wordsSeen: false,
      nesting: 0,
    };
  }

  zeroState(): Float32Array {
    const state = new Float32Array(this.linesStart + LINES_STATE_SIZE);
    if (this.parts.lstm) state.set(this.parts.lstm.zeroState());
    this.openerReader.start(state.subarray(this.openerStart, this.matchStart));
    this.document.match?.startSlot(state.subarray(this.matchStart, this.notesMatchStart));
    this.parts.notesReaders?.match.startSlot(state.subarray(this.notesMatchStart));
    return state;
  }

  async step(states: Float32Array[], ids: ArrayLike<number>, exploring = false): Promise<Snapshot[]> {
    const lstm = this.adaptation?.lstm ?? this.parts.lstm;
    const lstmSnapshots = lstm
      ? await lstm.step(
          states.map((s) => s.subarray(0, this.lstmSize)),
          ids,
        )
      : undefined;
    return states.map((previous, b) => {
      const state = new Float32Array(previous.length);
      if (lstmSnapshots) state.set(lstmSnapshots[b].state);
      const known = Math.min(this.contextLength, previous[this.lstmSize] + 1);
      state[this.lstmSize] = known;
      const context = state.subarray(this.openerStart - known, this.openerStart);
      // The context keeps the most recent characters at its end.
      context.set(previous.subarray(this.openerStart - known + 1, this.openerStart), 0);
      context[known - 1] = ids[b];
      state.set(previous.subarray(this.openerStart), this.openerStart);
      const opener = state.subarray(this.openerStart, this.matchStart);
      this.openerReader.read(opener, ids[b]);
      this.document.match?.advance(state.subarray(this.matchStart, this.notesMatchStart), context, ids[b]);
      this.parts.notesReaders?.match.advance(state.subarray(this.notesMatchStart, this.wordStart), context, ids[b]);
      advanceWords(this.wordSlotOf(state), ids[b], this.letters, this.shapes, this.marks);
      advanceLines(state.subarray(this.linesStart), ids[b], this.lineBreak);
      const lstmLogProbs = lstmSnapshots?.[b].logProbs;
      const snapshot = {
        state,
        logProbs: this.mix(state, lstmLogProbs, new Float32Array(this.vocabulary.size), exploring),
      };
      if (lstmLogProbs) this.lstmAt.set(snapshot, lstmLogProbs);
      return snapshot;
    });
  }

  /**
   * Teaches the document's online stage the character that came after `before`, a snapshot this
   * predictor made: what the user typed and kept, not what a search tried.
   */
  observe(before: Snapshot, id: number): void {
    const online = this.document.online;
    const lstmLogProbs = this.lstmAt.get(before);
    if (!online || (this.parts.lstm && !lstmLogProbs)) return;
    this.readOnlineInputs(before.state, lstmLogProbs);
    const lastStage = this.lastStage();
    if (lastStage) {
      online.mix(this.online, this.onlineMixture);
      this.readContextNodes(before.state, false, id);
      online.learn(this.online, this.onlineMixture, id);
      lastStage.learn(this.lastStageInputs(), this.lastStageSelectors(), id);
      if (this.aboveRow >= 0) this.document.above?.learn(this.aboveRow, id);
      if (this.echoRow >= 0) this.document.echoConfidence?.learn(this.echoRow, this.echoGuess.id === id);
      const contexts = this.document.startContexts?.(this.parts.notesReaders!.contexts!);
      const context = this.contextOf(before.state);
      contexts?.learnAt(context, context.length, this.wordSlotOf(before.state), id);
    } else {
      online.learn(this.online, online.mix(this.online, new Float32Array(this.vocabulary.size)), id);
    }
    this.document.taught?.();
    this.document.words?.learnAt(this.wordSlotOf(before.state), id);
    this.adaptation?.observe(before.state.subarray(0, this.lstmSize), id);
  }

  get adaptationPending(): boolean {
    return this.adaptation?.pending ?? false;
  }

  adaptLstm(): Promise<void> {
    return this.adaptation?.adaptNext() ?? Promise.resolve();
  }

  nameUnknown(completion: string): { codePoint: number; nats: number } | undefined {
    const previous = completion.length > 0 ? lastCodePointOf(completion) : this.document.lastCodePoint;
    return this.document.escape?.likeliest(previous);
  }

  /** The next-character log-probabilities at `state`, given the LSTM's there; into `out`. */
  private mix(
    state: Float32Array,
    lstmLogProbs: Float32Array | undefined,
    out: Float32Array,
    exploring = false,
  ): Float32Array {
    const online = this.document.online;
    if (!online)
      return this.mixOffline(
        this.contextOf(state),
        lstmLogProbs,
        state.subarray(this.openerStart, this.matchStart),
        out,
      );
    this.readOnlineInputs(state, lstmLogProbs);
    const lastStage = this.lastStage();
    if (!lastStage) return online.mix(this.online, out);
    online.mix(this.online, this.onlineMixture);
    const notesNodes = this.readContextNodes(state, exploring);
    return lastStage.mix(this.lastStageInputs(notesNodes), this.lastStageSelectors(), out);
  }

  /** Leaves the online stage's inputs at `state` in `online`, the gate's mixture among them. */
  private readOnlineInputs(state: Float32Array, lstmLogProbs: Float32Array | undefined): void {
    const context = this.contextOf(state);
    const known = context.length;
    const opener = state.subarray(this.openerStart, this.matchStart);
    const inputs = this.online;
    this.mixOffline(context, lstmLogProbs, opener, inputs.mixture);
    inputs.lstm = lstmLogProbs ?? this.uniformLog;
    logInto(this.notesProbs, inputs.notes);
    logInto(this.documentProbs, inputs.document);
    if (this.document.match)
      this.document.match.predict(state.subarray(this.matchStart, this.notesMatchStart), inputs.match);
    else inputs.match.length = 0;
    if (this.parts.notesReaders)
      this.parts.notesReaders.match.predict(state.subarray(this.notesMatchStart, this.wordStart), inputs.notesMatch);
    else inputs.notesMatch.length = 0;
    inputs.previous = known > 0 ? this.classOf[context[known - 1]] : previousClass(undefined);
    inputs.previousId = known > 0 ? context[known - 1] : -1;
    inputs.twoBeforeId = known > 1 ? context[known - 2] : -1;
    inputs.nesting = nesting(this.wordSlotOf(state));
    const lines = state.subarray(this.linesStart);
    const mixedBitwise = this.lastStage() !== undefined;
    this.aboveRow = mixedBitwise ? (this.document.above?.rowAt(lines, inputs.previousId) ?? -1) : -1;
    this.anchorGuess = mixedBitwise ? this.anchors.guess(lines) : -1;
    if (mixedBitwise) this.echo.guess(lines, this.echoGuess);
    else this.echoGuess.typed = 0;
    const confidence = this.document.echoConfidence;
    this.echoRow = this.echoGuess.typed > 0 && confidence ? confidence.rowOf(this.echoGuess) : -1;
    // Where the word models have not seen the words, zeros: the online stage's product ignores them and learns nothing.
    inputs.wordsSeen = wordsDistribution(
      this.wordSlotOf(state),
      [this.parts.notesReaders?.words, this.document.words],
      inputs.mixture,
      inputs.words,
      this.wordsScratch,
    );
    if (!inputs.wordsSeen) inputs.words.fill(0);
  }

  /**
   * Leaves the context mixings' node probabilities at `state` for the last stage, once the online stage has mixed
   * into onlineMixture; returns the nodes that stand in the notes' place. Given `onPathOf`, only that id's path is
   * read, which is all that learning it reads.
   */
  private readContextNodes(state: Float32Array, exploring: boolean, onPathOf?: number): Float32Array {
    const context = this.contextOf(state);
    const known = context.length;
    const words = this.wordSlotOf(state);
    const likely = massBefore(this.onlineMixture, this.onlineMassBefore);
    // A step that extends a completion reads the document's context mixing alone, where there is one, in the notes'
    // place too: it reads the notes' table wherever the document has not taught it a context, so it stands in for
    // the notes' model, which would cost as much again; left out instead, the weights learnt for it would go unused.
    const documentOnly = exploring && this.document.contexts !== undefined;
    const notesNodes = documentOnly ? this.documentContextsNodes : this.notesContextsNodes;
    if (!documentOnly)
      this.parts.notesReaders!.contexts!.nodeProbabilitiesAt(context, known, words, notesNodes, likely, onPathOf);
    this.document.contexts?.nodeProbabilitiesAt(context, known, words, this.documentContextsNodes, likely, onPathOf);
    return notesNodes;
  }

  /** The words before `state`'s position (word-model.ts), as its slot; a view. */
  private wordSlotOf(state: Float32Array): Float32Array {
    return state.subarray(this.wordStart, this.linesStart);
  }

  /** The characters before `state`'s position that it keeps (ids, most recent last), as many as are known. */
  private contextOf(state: Float32Array): Float32Array {
    return state.subarray(this.openerStart - state[this.lstmSize], this.openerStart);
  }

  /** The document's last stage, where there is one and the notes' context mixing to feed it. */
  private lastStage(): BitwiseMixer | undefined {
    return this.parts.notesReaders?.contexts ? this.document.lastStage : undefined;
  }

  /** The last stage's inputs, in LAST_STAGE_INPUTS order, as mix() left them; `notesNodes` stands in the notes' place. */
  private lastStageInputs(notesNodes = this.notesContextsNodes): BitwiseInput[] {
    return [
      { logProbs: this.onlineMixture },
      { nodes: notesNodes },
      this.document.contexts ? { nodes: this.documentContextsNodes } : undefined,
      { logProbs: this.online.lstm },
      this.matchInput(this.online.match, this.documentMatchNodes),
      this.matchInput(this.online.notesMatch, this.notesMatchNodes),
      this.aboveRow >= 0 ? { nodes: this.document.above!.nodesOf(this.aboveRow) } : undefined,
      this.anchorGuess >= 0
        ? { nodes: anchorNodeProbabilities(this.anchorGuess, this.bits, this.anchorNodes) }
        : undefined,
      this.echoRow >= 0
        ? {
            nodes: guessNodeProbabilities(
              this.echoGuess.id,
              this.document.echoConfidence!.sureness(this.echoRow),
              this.bits,
              this.echoNodes,
            ),
          }
        : undefined,
    ];
  }

  private matchInput(match: MatchPrediction, nodes: Float32Array): BitwiseInput {
    return match.length > 0 ? { nodes: matchNodeProbabilities(match, this.bits, nodes) } : undefined;
  }

  /**
   * The contexts that select the last stage's weights where readOnlineInputs() last read: how long a match there is,
   * how the two stand, and the class of the character before; and the Markdown spans it is in, where it is in any.
   */
  private lastStageSelectors(): Int32Array {
    const { match, notesMatch } = this.online;
    const length = Math.max(match.length, notesMatch.length);
    const bucket = length === 0 ? 0 : Math.min(LAST_STAGE_MATCH_BUCKETS - 1, 1 + Math.floor(Math.log2(length)));
    const selectors = this.lastStageSelected;
    selectors[0] =
      (bucket * MATCHES_STANDING + matchesStanding(match, notesMatch)) * PREVIOUS_CLASSES + this.online.previous;
    selectors[1] = this.online.nesting - 1;
    return selectors;
  }

  /** The gate's mixture of the next character after `context` (ids, most recent last), as log-probabilities into `out`. */
  private mixOffline(
    context: ArrayLike<number>,
    lstmLogProbs: Float32Array | undefined,
    opener: Float32Array,
    out: Float32Array,
  ): Float32Array {
    const V = this.vocabulary.size;
    let lstmMax = 1 / V;
    if (lstmLogProbs) {
      lstmMax = 0;
      for (let i = 0; i < V; i++) {
        const p = Math.exp(lstmLogProbs[i]);
        this.lstmProbs[i] = p;
        if (p > lstmMax) lstmMax = p;
      }
    }
    this.parts.notes.distribution(context, this.notesProbs, this.notesConfidence);
    this.document.model.distribution(context, this.documentProbs, this.documentConfidence);
    mixtureFeatures(this.notesConfidence, lstmMax, this.documentConfidence, this.features);
    const mixed = this.parts.mixer.mixLog([this.lstmProbs, this.notesProbs, this.documentProbs], this.features, out);
    const share = this.openerShare(opener);
    if (share > 0)
      for (let i = 0; i < V; i++) mixed[i] = Math.log((1 - share) * Math.exp(mixed[i]) + share * this.openerProbs[i]);
    return mixed;
  }

  /**
   * The openers' n-gram's share at this position, its distribution left in openerProbs: 0 outside
   * a paragraph's opener, or where it did not match back past the separator into the opener before.
   */
  private openerShare(slot: Float32Array): number {
    const opener = this.document.openers && this.openerReader.context(slot);
    if (!opener) return 0;
    const confidence = this.openerConfidence;
    this.document.openers!.distribution(opener.ids, this.openerProbs, confidence);
    if (confidence.order <= opener.typed + 1) return 0;
    return confidence.contextCount / (confidence.contextCount + confidence.successors);
  }

  dispose(): void {
    // The parts are shared by every document's predictor; their owner disposes them.
  }
}

function logInto(probs: Float32Array, out: Float32Array): void {
  for (let i = 0; i < probs.length; i++) out[i] = Math.log(probs[i]);
}
