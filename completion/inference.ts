// Inference for completions: a frozen model stepped with plain Float32Array states, a per-document
// cache of those states so a keystroke feeds only new characters, and beam search or sampling
// with stopping and confidence rules. No editor or LSP concepts here.
import * as tf from '@tensorflow/tfjs';
import type { SavedModel } from '../model/format';
import { CharLstm, LstmState, parametersFromWeights } from '../model/network';
import { Vocabulary } from '../model/vocab';
import { NetworkConfig, parameterShapes } from '../model/architecture';

export type StopAt = 'word' | 'line' | 'none';
export type Mode = 'beam' | 'sample';

export interface CompletionOptions {
  mode: Mode;
  beamWidth: number;
  temperature: number;
  topK: number;
  topP: number;
  maxChars: number;
  stopAt: StopAt;
  /** Nothing less likely than this to be what is typed next is offered (probability of the whole completion). */
  minConfidence: number;
  seed: number;
}

/**
 * minConfidence 0.1: a suggestion less than 10% likely to be right is noise. Measured on
 * tiny-shakespeare (npm run eval, first 20,000 held-out characters), suggestions between 5% and
 * 10% likely saved 0.04 keystrokes each on average: raising the threshold from 0.05 to 0.1 hides a
 * quarter of them at a cost of 0.7 points of keystroke savings, where 0.2 would cost 2.6 points.
 */
export const COMPLETION_DEFAULTS: CompletionOptions = {
  mode: 'beam', beamWidth: 4, temperature: 0.8, topK: 0, topP: 0.95, maxChars: 32, stopAt: 'word', minConfidence: 0.1, seed: 1,
};

export interface Completion {
  text: string;
  /** The model's probability that the text typed next starts with this completion. */
  confidence: number;
  /** The model snapshots after each character of text (possibly fewer than its characters). */
  path?: Snapshot[];
}

/** A model state plus the distribution of the character that follows it. */
export interface Snapshot {
  state: Float32Array;
  logProbs: Float32Array;
}

/** The frozen model, stepped for a batch of states held as Float32Arrays. */
export class Predictor {
  readonly vocabulary: Vocabulary;
  private readonly model: CharLstm;
  private readonly stateSize: number;

  /** Takes what a saved model holds; metadata is not needed. */
  constructor(saved: Pick<SavedModel, 'config' | 'vocabulary' | 'weights'>) {
    this.vocabulary = saved.vocabulary;
    this.model = new CharLstm(saved.config, parametersFromWeights(saved.config, saved.weights));
    this.model.freeze();
    this.stateSize = 2 * saved.config.layers * saved.config.hidden;
  }

  get config() {
    return this.model.config;
  }

  zeroState(): Float32Array {
    return new Float32Array(this.stateSize);
  }

  /** Feeds one character to each state; returns the new states and next-character log-probabilities. */
  async step(states: Float32Array[], ids: ArrayLike<number>): Promise<Snapshot[]> {
    const { layers, hidden: H, vocabSize: V } = this.model.config;
    const B = states.length;
    const pack = (part: number) => Array.from({ length: layers }, (_, l) => {
      const buffer = new Float32Array(B * H);
      for (let b = 0; b < B; b++) buffer.set(states[b].subarray((2 * l + part) * H, (2 * l + part + 1) * H), b * H);
      return tf.tensor2d(buffer, [B, H]);
    });
    const input: LstmState = { h: pack(0), c: pack(1) };
    // Logits and every new state in one tensor, so a GPU pays for one read back per step, not 2L+1.
    const packed = tf.tidy(() => {
      const { logits, state } = this.model.step(Int32Array.from(ids), input);
      return tf.concat([logits, ...state.h.flatMap((h, l) => [h, state.c[l]])], 1);
    });
    tf.dispose([...input.h, ...input.c]);
    const values = (await packed.data()) as Float32Array;
    packed.dispose();
    const row = V + this.stateSize;
    return Array.from({ length: B }, (_, b) => ({
      state: values.slice(b * row + V, (b + 1) * row),
      logProbs: logSoftmax(values.subarray(b * row, b * row + V)),
    }));
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * What auto backend selection times for serving: the steps of one completion, a few characters
 * fed at batch 1 and a beam search's steps at the beam width, with random weights of the model's size.
 */
export function completionProbe(config: NetworkConfig, beamWidth: number): () => Promise<void> {
  return async () => {
    const vocabulary = Vocabulary.fromText(String.fromCodePoint(...Array.from({ length: config.vocabSize - 1 }, (_, i) => 0x100 + i)), config.vocabSize);
    const weights = new Map(parameterShapes(config).map(([name, shape]) => [name, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01)]));
    const predictor = new Predictor({ config, vocabulary, weights });
    let states = [predictor.zeroState()];
    for (let k = 0; k < 4; k++) states = (await predictor.step(states, [1])).map((s) => s.state);
    let beams = Array.from({ length: beamWidth }, () => states[0]);
    for (let k = 0; k < 8; k++) beams = (await predictor.step(beams, beams.map((_, b) => 1 + b))).map((s) => s.state);
    predictor.dispose();
  };
}

function logSoftmax(logits: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  return Float32Array.from(logits, (x) => x - lse);
}

/** How far back a cold start reads, and how far the cache may run ahead of a fresh start (UTF-16 units). */
export const COLD_CONTEXT_CHARS = 256;
export const MAX_CACHED_CHARS = 8192;
const CHECKPOINT_EVERY = 32;

/**
 * The model state along one document. Feeding starts at an anchor offset; a request rewinds to
 * the last checkpoint inside the text that is unchanged since, and feeds the rest. A keystroke
 * costs one step however long the document is, and a cold start at most COLD_CONTEXT_CHARS.
 */
export class DocumentStates {
  private anchor = -1;
  /** The text fed since the anchor. */
  private fed = '';
  /** Snapshots after feeding fed.slice(0, length), in increasing length; the first is the start. */
  private checkpoints: Array<{ length: number; snapshot: Snapshot }> = [];
  private last: Snapshot | undefined;
  /** The states along the last completion offered, keyed by its end offset in UTF-16 units after fed.slice(0, from). */
  private ahead: { from: number; text: string; byEnd: Map<number, Snapshot> } | undefined;

  constructor(private readonly predictor: Predictor) {}

  /** Requests for one document take turns: a step awaits the backend, and two must not interleave. */
  private turn: Promise<unknown> = Promise.resolve();
  /**
   * Remembers the states that beam search computed along a completion offered at `cursor`, so
   * that accepting it, or typing it out, costs no model steps: right after Tab, the next request
   * would otherwise feed the whole accepted text one step at a time before it could search.
   */
  expect(cursor: number, completion: Completion): void {
    this.turn = this.turn.then(() => this.remember(cursor, completion));
  }

  private remember(cursor: number, completion: Completion): void {
    if (!completion.path || this.anchor < 0 || cursor !== this.anchor + this.fed.length) return;
    const byEnd = new Map<number, Snapshot>();
    let end = 0;
    let i = 0;
    for (const char of completion.text) {
      const snapshot = completion.path[i++];
      if (!snapshot) break;
      end += char.length;
      byEnd.set(end, snapshot);
    }
    this.ahead = { from: this.fed.length, text: completion.text, byEnd };
  }

  /** The snapshot after text.slice(0, cursor); undefined if cancelled on the way. */
  at(text: string, cursor: number, cancelled: () => boolean = () => false): Promise<Snapshot | undefined> {
    const result = this.turn.then(() => this.advance(text, cursor, cancelled));
    this.turn = result.catch(() => undefined);
    return result;
  }

  private async advance(text: string, cursor: number, cancelled: () => boolean): Promise<Snapshot | undefined> {
    if (this.anchor < 0 || this.anchor > cursor || cursor - this.anchor > MAX_CACHED_CHARS) await this.restart(text, cursor);
    let same = 0;
    const limit = Math.min(this.fed.length, cursor - this.anchor);
    while (same < limit && this.fed.charCodeAt(same) === text.charCodeAt(this.anchor + same)) same++;
    if (this.ahead && same < this.ahead.from) this.ahead = undefined;
    if (same < this.fed.length) {
      while (this.checkpoints.length > 1 && this.checkpoints[this.checkpoints.length - 1].length > same) this.checkpoints.pop();
      const checkpoint = this.checkpoints[this.checkpoints.length - 1];
      this.fed = this.fed.slice(0, checkpoint.length);
      this.last = checkpoint.snapshot;
    }
    const vocabulary = this.predictor.vocabulary;
    let i = this.anchor + this.fed.length;
    while (i < cursor) {
      if (cancelled()) return undefined;
      const code = text.codePointAt(i)!;
      const char = String.fromCodePoint(code);
      const ahead = this.ahead;
      const k = ahead ? this.fed.length - ahead.from : -1;
      let known: Snapshot | undefined;
      if (ahead && k >= 0) {
        known = ahead.text.startsWith(char, k) ? ahead.byEnd.get(k + char.length) : undefined;
        if (!known) this.ahead = undefined;
      }
      this.last = known ?? (await this.predictor.step([this.last!.state], [vocabulary.id(char)]))[0];
      this.fed += char;
      i += char.length;
      if (this.fed.length - this.checkpoints[this.checkpoints.length - 1].length >= CHECKPOINT_EVERY) {
        this.checkpoints.push({ length: this.fed.length, snapshot: this.last });
      }
    }
    return this.last;
  }

  private async restart(text: string, cursor: number): Promise<void> {
    let anchor = Math.max(0, cursor - COLD_CONTEXT_CHARS);
    // Never start in the middle of a surrogate pair.
    if (anchor > 0 && (text.charCodeAt(anchor) & 0xfc00) === 0xdc00) anchor--;
    this.anchor = anchor;
    this.fed = '';
    this.ahead = undefined;
    // Every start reads as if after a line break, as most text in notes does.
    this.last = (await this.predictor.step([this.predictor.zeroState()], [this.predictor.vocabulary.id('\n')]))[0];
    this.checkpoints = [{ length: 0, snapshot: this.last }];
  }
}

const WORD_CHAR = /[\p{L}\p{N}_'’-]/u;

/** Whether appending `char` ends the completion under the stop rule (the char itself is not kept). */
function stopsBefore(stopAt: StopAt, char: string, soFar: string): boolean {
  if (char === '\n') return stopAt !== 'none';
  if (stopAt !== 'word') return false;
  return !WORD_CHAR.test(char) && [...soFar].some((c) => WORD_CHAR.test(c));
}

interface WordNode {
  /** Words (with repeats) that start with this prefix. */
  n: number;
  /** Words that are exactly this prefix. */
  end: number;
  children: Map<string, WordNode>;
}

const newNode = (): WordNode => ({ n: 0, end: 0, children: new Map() });
const WORDS_OR_BLANK_LINES = /[\p{L}\p{N}_'’-]+|\n[^\S\n]*\n/gu;
/** Prefixes the key of a paragraph context in WordCache.after; no word holds a line break. */
const PARAGRAPH = '\n\n';
const PARTIAL_WORD = /[\p{L}\p{N}_'’-]*$/u;
/**
 * How much text before the cursor a rebuilt word cache reads (UTF-16 units). A rebuild (the first
 * request in a document, or after an edit before the words indexed) blocks that request: 20,000
 * characters take 8 to 13 ms once warm (26 ms the first time) and about 5 MB. Typing on grows the
 * cache without a limit, a few words per request.
 */
export const WORD_CACHE_CHARS = 20_000;
/** Longer "words" (base64, a run of one key) are not words anyone will want completed; skipping them bounds the tries. */
const MAX_WORD_CHARS = 48;

function insert(root: WordNode, word: string): void {
  let node = root;
  node.n++;
  for (const char of word) {
    let child = node.children.get(char);
    if (!child) node.children.set(char, (child = newNode()));
    child.n++;
    node = child;
  }
  node.end++;
}

/**
 * The words of a document before the word at the cursor, counted by prefix in tries: all words,
 * and for each word the words that came right after it. The model knows the notes it was trained
 * on; this is what it cannot know: the names and terms of the note being written, which recur
 * within it. Typing at the end indexes only the words finished since the last request; an edit
 * further back rebuilds from at most WORD_CACHE_CHARS before the cursor.
 *
 * The first word of a paragraph (after a blank line) follows, instead of the last word of the
 * paragraph before, that paragraph's first word: in a dialogue, a transcript or questions and
 * answers, who speaks next depends on who spoke last, not on how their sentence ended. Measured:
 * +0.5 points of keystroke savings on tiny-shakespeare, whose speeches open with the speaker.
 */
export class WordCache {
  root = newNode();
  /** The same words in lower case, for a word typed in another case than before ("The", "THE"). */
  folded = newNode();
  /** For each word (or paragraph context), a trie of the words that followed it. */
  readonly after = new Map<string, WordNode>();
  /** What the word at the cursor follows: the last word indexed, or a paragraph context. */
  previous = '';
  private start = 0;
  private upTo = 0;
  private indexed = '';
  /** The first word of the paragraph the last word indexed is in, and whether the next word starts one. */
  private paragraphFirst = '';
  private paragraphStarts = true;

  /** Brings the cache up to the word at the cursor; returns that word's typed part. */
  update(text: string, cursor: number): string {
    const partial = PARTIAL_WORD.exec(text.slice(Math.max(0, cursor - MAX_WORD_CHARS), cursor))![0];
    const wordStart = cursor - partial.length;
    // Comparing the indexed text is a memory compare, far cheaper than reading it again.
    if (wordStart < this.upTo || text.slice(this.start, this.upTo) !== this.indexed) {
      let start = Math.max(0, wordStart - WORD_CACHE_CHARS);
      // Do not count the tail of a word cut at the window's edge.
      while (start > 0 && start < wordStart && WORD_CHAR.test(text[start - 1])) start++;
      this.root = newNode();
      this.folded = newNode();
      this.after.clear();
      this.previous = '';
      this.paragraphFirst = '';
      this.paragraphStarts = start === 0;
      this.start = start;
      this.upTo = start;
    }
    if (wordStart > this.upTo) {
      // Up to the end of the last word or blank line: a line break alone may be half of a blank line.
      let end = this.upTo;
      for (const match of text.slice(this.upTo, wordStart).matchAll(WORDS_OR_BLANK_LINES)) {
        if (match[0].startsWith('\n')) {
          this.previous = PARAGRAPH + this.paragraphFirst;
          this.paragraphStarts = true;
        } else {
          this.add(match[0]);
        }
        end = this.upTo + match.index! + match[0].length;
      }
      this.upTo = end;
    }
    this.indexed = text.slice(this.start, this.upTo);
    return partial;
  }

  /** The trie node for a prefix, or undefined when no word seen starts with it. */
  node(prefix: string, from: WordNode | undefined = this.root): WordNode | undefined {
    let node: WordNode | undefined = from;
    for (const char of prefix) node = node?.children.get(char);
    return node;
  }

  private add(word: string): void {
    if (this.paragraphStarts) this.paragraphFirst = word;
    this.paragraphStarts = false;
    if (word.length > MAX_WORD_CHARS) {
      this.previous = '';
      return;
    }
    insert(this.root, word);
    insert(this.folded, word.toLowerCase());
    if (this.previous) {
      let next = this.after.get(this.previous);
      if (!next) this.after.set(this.previous, (next = newNode()));
      insert(next, word);
    }
    this.previous = word;
  }
}

/** What the editor knows beyond the model state: the document's words, and what the user passed over. */
export interface CompletionContext {
  /** The document's words, brought up to the cursor by update(), which also gives `partial`. */
  words?: WordCache;
  /** The typed part of the word at the cursor. */
  partial?: string;
  /** What remained of a suggestion the user typed past instead of accepting. */
  passedOver?: string;
}

/** Where a beam stands among the document's words. */
interface WordPlace {
  /** The word the beam is in, typed part included; '' between words. */
  word: string;
  /** The word before it. */
  previous: string;
  /** The document's words that start like this word, and those among the words that followed previous. */
  unigram: WordNode | undefined;
  bigram: WordNode | undefined;
  /** The document's words that start like this word in any case. */
  folded: WordNode | undefined;
}

function placeAfter(cache: WordCache, place: WordPlace, char: string): WordPlace {
  if (WORD_CHAR.test(char)) {
    return {
      word: place.word + char, previous: place.previous,
      unigram: place.unigram?.children.get(char), bigram: place.bigram?.children.get(char), folded: place.folded?.children.get(char.toLowerCase()),
    };
  }
  const previous = place.word || place.previous;
  return { word: '', previous, unigram: cache.root, bigram: cache.after.get(previous), folded: cache.folded };
}

/**
 * Weight of the document's words against the model: n / (n + κ·d) for a prefix that n earlier
 * words (or word pairs) share, going on in d different ways (Witten-Bell). A name used twice in
 * the note takes over from a model that has never seen it; "the" followed by forty different
 * words barely moves the model. κ = 1 for both, measured: 0.5 and 2 do no better.
 */
const WORDS_KAPPA = 1;

/**
 * Mixes a next-character distribution with what a trie of the document's words says: the share
 * of the words with this prefix that go on with each character, where a word's end is shared out
 * by the distribution's own probabilities of the separators.
 */
function mixWithWords(logProbs: Float32Array, node: WordNode | undefined, wittenBell: boolean, boundary: Int32Array, wordIds: Uint8Array, keys: ReadonlyArray<string | null>): Float32Array {
  if (!node || node.n === 0) return logProbs;
  const ways = wittenBell ? node.children.size + (node.end > 0 ? 1 : 0) : 1;
  const lambda = node.n / (node.n + WORDS_KAPPA * ways);
  let separators = 0;
  for (const id of boundary) separators += Math.exp(logProbs[id]);
  const endShare = node.end / node.n;
  const out = new Float32Array(logProbs.length);
  for (let id = 0; id < logProbs.length; id++) {
    const p = Math.exp(logProbs[id]);
    let cache = 0;
    if (wordIds[id]) cache = (node.children.get(keys[id] ?? '')?.n ?? 0) / node.n;
    else if (id > 0 && separators > 0) cache = (endShare * p) / separators;
    out[id] = Math.log((1 - lambda) * p + lambda * cache);
  }
  return out;
}

interface VocabularyClasses {
  wordIds: Uint8Array;
  boundary: Int32Array;
  punctuation: Int32Array;
  space: number;
  /** Each id's key in a lower-case trie when the word is being typed in lower (or Title) case, or in capitals; null for the other case. */
  lowerKeys: Array<string | null>;
  upperKeys: Array<string | null>;
}
const vocabularyClasses = new WeakMap<Vocabulary, VocabularyClasses>();
/** Which ids are word characters, separators, visible separators (punctuation) and the space. */
function classesOf(vocabulary: Vocabulary): VocabularyClasses {
  let classes = vocabularyClasses.get(vocabulary);
  if (!classes) {
    const wordIds = Uint8Array.from(vocabulary.chars, (c, id) => (id > 0 && WORD_CHAR.test(c) ? 1 : 0));
    const caseless = (c: string) => c.toLowerCase() === c.toUpperCase();
    const lowerKeys = vocabulary.chars.map((c) => (caseless(c) || c === c.toLowerCase() ? c : null));
    const upperKeys = vocabulary.chars.map((c) => (caseless(c) ? c : c === c.toUpperCase() ? c.toLowerCase() : null));
    const boundary: number[] = [];
    const punctuation: number[] = [];
    vocabulary.chars.forEach((c, id) => {
      if (id === 0 || wordIds[id]) return;
      boundary.push(id);
      if (!/\s/u.test(c)) punctuation.push(id);
    });
    classes = { wordIds, boundary: Int32Array.from(boundary), punctuation: Int32Array.from(punctuation), space: vocabulary.chars.indexOf(' '), lowerKeys, upperKeys };
    vocabularyClasses.set(vocabulary, classes);
  }
  return classes;
}

/**
 * How much less likely a suggestion is once the user has typed its first character instead of
 * accepting it. Someone who saw the right completion would often have pressed Tab, so typing on
 * is evidence against it (Bayes: the odds shrink by the chance they would have accepted); but
 * people also type on through right suggestions they did not look at, so it is halved, not
 * dropped. Measured on tiny-shakespeare: 0.5 gains 0.9 points of keystroke savings, dropping it
 * outright 1.2, and a suggestion the model is much surer of than of any other still stays.
 */
const PASSED_OVER_FACTOR = 0.5;

interface Beam {
  text: string;
  /** Characters in text (code points). */
  length: number;
  /** Log-probability of text, the document's words mixed in. */
  score: number;
  snapshot: Snapshot;
  /** Snapshots after each character of text, in order. */
  path: Snapshot[];
  /** The next-character log-probabilities after text, the document's words mixed in. */
  logProbs: Float32Array;
  /** Where the beam is among the document's words, when they are known. */
  place?: WordPlace;
}

/** Completes from a snapshot by beam search or sampling; undefined when nothing is confident enough. */
export async function complete(predictor: Predictor, start: Snapshot, options: CompletionOptions, cancelled: () => boolean = () => false, context: CompletionContext = {}): Promise<Completion | undefined> {
  const found = await (options.mode === 'beam' ? beamSearch(predictor, start, options, cancelled, context) : sample(predictor, start, options, cancelled));
  if (!found || found.text.length === 0 || found.confidence < options.minConfidence) return undefined;
  return found;
}

/**
 * The completion that saves the most keystrokes in expectation: P(it is what comes next) × (its
 * length − 1), the one key being the Tab that accepts it. The probability is of the completion as
 * a prefix of what follows, so "and" is right whenever "and" or "andromeda" comes; a completion
 * may stop inside a word where the model is sure of the letters so far and torn about the rest, as
 * a shell completes the common prefix. Mean log-probability per character, the usual beam score,
 * favours long unlikely words and short sure ones alike and saved fewer keystrokes.
 *
 * A completion that ends a word may take the separator after it, a space or punctuation, when the
 * model is sure enough of it that it pays (P(separator) × length > length − 1): after an accepted
 * word the next key is almost always the space, and a Tab that types it too saves that key, as
 * phone keyboards do. Measured on tiny-shakespeare this is worth 4 points of keystroke savings.
 * Only one separator is taken, so a completion never runs into the next word under stopAt word.
 *
 * Beams are stepped as one batch; each keeps the snapshots along its text, so that accepting the
 * completion costs no model steps (DocumentStates.expect).
 */
async function beamSearch(predictor: Predictor, start: Snapshot, options: CompletionOptions, cancelled: () => boolean, context: CompletionContext): Promise<Completion | undefined> {
  const vocabulary = predictor.vocabulary;
  const { wordIds, boundary, punctuation, space, lowerKeys, upperKeys } = classesOf(vocabulary);
  const width = Math.max(1, options.beamWidth);
  const { words, partial = '', passedOver } = context;
  const mix = (logProbs: Float32Array, place: WordPlace | undefined) => {
    if (!place) return logProbs;
    // Between words only the word pairs speak: which word starts next depends on the word before
    // far more than on how often each word occurs, and the model reads the context better. (Mixing
    // in all the words there, even at a third of the weight, did not help.)
    let unigram = logProbs;
    if (place.word && place.unigram && place.unigram.n > 0) {
      unigram = mixWithWords(logProbs, place.unigram, false, boundary, wordIds, vocabulary.chars);
    } else if (place.word) {
      // A word not seen in this case may have been in another: "The" after "the", "KATE" after
      // "Kate". It goes on in capitals if it is in capitals so far, else in lower case. (+0.2
      // points of keystroke savings on tiny-shakespeare, whose verse lines start with capitals.)
      const capitals = place.word.length > 1 && place.word === place.word.toUpperCase() && place.word !== place.word.toLowerCase();
      unigram = mixWithWords(logProbs, place.folded, false, boundary, wordIds, capitals ? upperKeys : lowerKeys);
    }
    return mixWithWords(unigram, place.bigram, true, boundary, wordIds, vocabulary.chars);
  };
  const startPlace: WordPlace | undefined = words && {
    word: partial,
    previous: words.previous,
    unigram: words.node(partial),
    folded: words.node(partial.toLowerCase(), words.folded),
    bigram: words.node(partial, words.after.get(words.previous)),
  };
  let beams: Beam[] = [{ text: '', length: 0, score: 0, snapshot: start, path: [], place: startPlace, logProbs: mix(start.logProbs, startPlace) }];
  let best: { text: string; logP: number; value: number; path: Snapshot[] } | undefined;
  const offer = (text: string, logP: number, length: number, path: Snapshot[]) => {
    // One character saves nothing: the Tab that accepts it is a key too.
    if (length < 2) return;
    // The user passed over the whole suggestion, which showed its beginnings too.
    if (passedOver && (text.startsWith(passedOver) || passedOver.startsWith(text))) logP += Math.log(PASSED_OVER_FACTOR);
    const p = Math.exp(logP);
    if (p < options.minConfidence) return;
    const value = p * (length - 1);
    if (!best || value > best.value) best = { text, logP, value, path };
  };
  // A beam's probability only falls as it grows, so one that cannot beat the best even if accepted
  // whole at maxChars, or is already below minConfidence, is dropped.
  const hopeless = (logP: number) => {
    const p = Math.exp(logP);
    return p < options.minConfidence || p * options.maxChars <= (best?.value ?? 0);
  };
  for (let depth = 0; ; depth++) {
    if (cancelled()) return undefined;
    for (const beam of beams) {
      // Offer what holds a word and does not end in whitespace (that would be invisible).
      if (!WORD_CHAR.test(beam.text) || /\s$/u.test(beam.text)) continue;
      offer(beam.text, beam.score, beam.length, beam.path);
      if (beam.length >= options.maxChars) continue;
      const lp = beam.logProbs;
      for (const id of punctuation) offer(beam.text + vocabulary.chars[id], beam.score + lp[id], beam.length + 1, beam.path);
      if (space > 0) offer(beam.text + ' ', beam.score + lp[space], beam.length + 1, beam.path);
    }
    if (depth >= options.maxChars) break;
    beams = beams.filter((b) => !hopeless(b.score));
    const candidates: Array<{ beam: Beam; id: number; score: number }> = [];
    for (const beam of beams) {
      for (const id of topIds(beam.logProbs, width)) {
        if (stopsBefore(options.stopAt, vocabulary.chars[id], beam.text)) continue;
        candidates.push({ beam, id, score: beam.score + beam.logProbs[id] });
      }
    }
    candidates.sort((a, b) => b.score - a.score);
    const continuing = candidates.slice(0, width).filter((c) => !hopeless(c.score));
    if (continuing.length === 0) break;
    const stepped = await predictor.step(continuing.map((c) => c.beam.snapshot.state), continuing.map((c) => c.id));
    beams = continuing.map((c, i) => {
      const char = vocabulary.chars[c.id];
      const place = words && c.beam.place && placeAfter(words, c.beam.place, char);
      return {
        text: c.beam.text + char, length: c.beam.length + 1, score: c.score, snapshot: stepped[i], path: [...c.beam.path, stepped[i]],
        place, logProbs: mix(stepped[i].logProbs, place),
      };
    });
  }
  return best && { text: best.text, confidence: Math.exp(best.logP), path: best.path };
}

async function sample(predictor: Predictor, start: Snapshot, options: CompletionOptions, cancelled: () => boolean): Promise<Completion | undefined> {
  const vocabulary = predictor.vocabulary;
  const random = seededRandom(options.seed);
  let snapshot = start;
  let text = '';
  let score = 0;
  for (let depth = 0; depth < options.maxChars; depth++) {
    if (cancelled()) return undefined;
    const id = drawId(snapshot.logProbs, options, random);
    const char = vocabulary.chars[id];
    if (stopsBefore(options.stopAt, char, text)) break;
    score += snapshot.logProbs[id];
    text += char;
    snapshot = (await predictor.step([snapshot.state], [id]))[0];
  }
  return { text, confidence: Math.exp(score) };
}

/** The k most likely ids, never the unknown symbol (id 0). */
function topIds(logProbs: Float32Array, k: number): number[] {
  const ids = Array.from({ length: logProbs.length - 1 }, (_, i) => i + 1);
  ids.sort((a, b) => logProbs[b] - logProbs[a]);
  return ids.slice(0, k);
}

/** Temperature, then top-k, then nucleus (top-p) truncation. */
function drawId(logProbs: Float32Array, options: CompletionOptions, random: () => number): number {
  const t = Math.max(options.temperature, 1e-4);
  let ids = Array.from({ length: logProbs.length - 1 }, (_, i) => i + 1).sort((a, b) => logProbs[b] - logProbs[a]);
  if (options.topK > 0) ids = ids.slice(0, options.topK);
  const weights = ids.map((id) => Math.exp((logProbs[id] - logProbs[ids[0]]) / t));
  const total = weights.reduce((a, b) => a + b, 0);
  if (options.topP > 0 && options.topP < 1) {
    let mass = 0;
    let keep = 0;
    while (keep < ids.length && mass < options.topP * total) mass += weights[keep++];
    ids = ids.slice(0, keep);
    weights.length = keep;
  }
  let r = random() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < ids.length; i++) {
    r -= weights[i];
    if (r <= 0) return ids[i];
  }
  return ids[ids.length - 1];
}

/** A small deterministic generator (mulberry32), so samples are reproducible from a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Continues prompt by up to length characters, sampled at temperature, as the trainer's closing sample. */
export async function generate(predictor: Predictor, prompt: string, length: number, temperature: number, seed: number): Promise<string> {
  const start = (await new DocumentStates(predictor).at(prompt, prompt.length))!;
  const options: CompletionOptions = { ...COMPLETION_DEFAULTS, mode: 'sample', stopAt: 'none', maxChars: length, temperature, topK: 0, topP: 1, minConfidence: 0, seed };
  return (await complete(predictor, start, options))?.text ?? '';
}
