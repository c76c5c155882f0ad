// Inference for completions: a frozen model stepped with plain Float32Array states, a per-document
// cache of those states so a keystroke feeds only new characters, and beam search or sampling
// with stopping and confidence rules. No editor or LSP concepts here.
import * as tf from '@tensorflow/tfjs';
import type { SavedModel } from './format';
import { CharLstm, LstmState, parametersFromWeights } from './network';
import { Vocabulary } from './vocab';
import { NetworkConfig, parameterShapes } from './architecture';

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
  /** Geometric-mean probability per character below which nothing is offered. */
  minConfidence: number;
  seed: number;
}

export const COMPLETION_DEFAULTS: CompletionOptions = {
  mode: 'beam', beamWidth: 4, temperature: 0.8, topK: 0, topP: 0.95, maxChars: 32, stopAt: 'word', minConfidence: 0.35, seed: 1,
};

export interface Completion {
  text: string;
  confidence: number;
}

/** A model state plus the distribution of the character that follows it. */
interface Snapshot {
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

  constructor(private readonly predictor: Predictor) {}

  /** Requests for one document take turns: a step awaits the backend, and two must not interleave. */
  private turn: Promise<unknown> = Promise.resolve();

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
      this.last = (await this.predictor.step([this.last!.state], [vocabulary.id(char)]))[0];
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

interface Beam {
  ids: number[];
  text: string;
  score: number;
  snapshot: Snapshot;
}

/** Completes from a snapshot by beam search or sampling; undefined when nothing is confident enough. */
export async function complete(predictor: Predictor, start: Snapshot, options: CompletionOptions, cancelled: () => boolean = () => false): Promise<Completion | undefined> {
  const found = await (options.mode === 'beam' ? beamSearch(predictor, start, options, cancelled) : sample(predictor, start, options, cancelled));
  if (!found || found.text.length === 0 || found.confidence < options.minConfidence) return undefined;
  return found;
}

async function beamSearch(predictor: Predictor, start: Snapshot, options: CompletionOptions, cancelled: () => boolean): Promise<Completion | undefined> {
  const vocabulary = predictor.vocabulary;
  const width = Math.max(1, options.beamWidth);
  let beams: Beam[] = [{ ids: [], text: '', score: 0, snapshot: start }];
  const finished: Array<{ text: string; score: number; length: number }> = [];
  const mean = (f: { score: number; length: number }) => f.score / f.length;
  for (let depth = 0; depth < options.maxChars && beams.length > 0 && finished.length < width; depth++) {
    if (cancelled()) return undefined;
    // Stop once a finished completion beats every open beam's mean log-probability so far: a
    // longer continuation rarely raises its mean, and each extra depth costs a model step.
    const bestFinished = Math.max(-Infinity, ...finished.filter((f) => f.text.length > 0).map(mean));
    if (beams.every((b) => mean({ score: b.score, length: Math.max(1, b.ids.length) }) < bestFinished)) break;
    const candidates: Array<{ beam: Beam; id: number; score: number }> = [];
    for (const beam of beams) {
      for (const id of topIds(beam.snapshot.logProbs, width)) candidates.push({ beam, id, score: beam.score + beam.snapshot.logProbs[id] });
    }
    candidates.sort((a, b) => b.score - a.score);
    const continuing: Array<{ beam: Beam; id: number; score: number }> = [];
    for (const candidate of candidates) {
      if (continuing.length + finished.length >= width) break;
      const char = vocabulary.chars[candidate.id];
      // The stop character's probability counts: it says the word or line really ends here.
      if (stopsBefore(options.stopAt, char, candidate.beam.text)) finished.push({ text: candidate.beam.text, score: candidate.score, length: candidate.beam.ids.length + 1 });
      else continuing.push(candidate);
    }
    if (continuing.length === 0) break;
    const stepped = await predictor.step(continuing.map((c) => c.beam.snapshot.state), continuing.map((c) => c.id));
    beams = continuing.map((c, i) => ({
      ids: [...c.beam.ids, c.id], text: c.beam.text + vocabulary.chars[c.id], score: c.score, snapshot: stepped[i],
    }));
  }
  for (const beam of beams) finished.push({ text: beam.text, score: beam.score, length: Math.max(1, beam.ids.length) });
  let best: { text: string; score: number; length: number } | undefined;
  for (const f of finished) if (f.text.length > 0 && (!best || mean(f) > mean(best))) best = f;
  return best && { text: best.text, confidence: Math.exp(best.score / best.length) };
}

async function sample(predictor: Predictor, start: Snapshot, options: CompletionOptions, cancelled: () => boolean): Promise<Completion | undefined> {
  const vocabulary = predictor.vocabulary;
  const random = seededRandom(options.seed);
  let snapshot = start;
  let text = '';
  let score = 0;
  let length = 0;
  for (let depth = 0; depth < options.maxChars; depth++) {
    if (cancelled()) return undefined;
    const id = drawId(snapshot.logProbs, options, random);
    score += snapshot.logProbs[id];
    length++;
    const char = vocabulary.chars[id];
    if (stopsBefore(options.stopAt, char, text)) break;
    text += char;
    snapshot = (await predictor.step([snapshot.state], [id]))[0];
  }
  return { text, confidence: Math.exp(score / Math.max(1, length)) };
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
