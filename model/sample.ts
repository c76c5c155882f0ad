// Generating text from a model: the sample printed at the end of training.
import { CharLstm, disposeState, zeroState } from './network';
import type { Vocabulary } from './vocab';

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

/** Draws an index from logits softened or sharpened by temperature; never the unknown symbol (id 0). */
export function sampleFromLogits(logits: ArrayLike<number>, temperature: number, random: () => number): number {
  let max = -Infinity;
  for (let i = 1; i < logits.length; i++) max = Math.max(max, logits[i]);
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 1; i < logits.length; i++) {
    weights[i] = Math.exp((logits[i] - max) / Math.max(temperature, 1e-6));
    total += weights[i];
  }
  let r = random() * total;
  for (let i = 1; i < logits.length; i++) {
    r -= weights[i];
    if (r <= 0) return i;
  }
  return logits.length - 1;
}

/** Continues prompt by length characters. */
export function generate(model: CharLstm, vocabulary: Vocabulary, prompt: string, length: number, temperature: number, seed: number): string {
  const random = seededRandom(seed);
  let state = zeroState(model.config, 1);
  let next = 0;
  const feed = (id: number) => {
    const { logits, state: after } = model.step(Int32Array.of(id), state);
    disposeState(state);
    state = after;
    next = sampleFromLogits(logits.dataSync(), temperature, random);
    logits.dispose();
  };
  for (const id of vocabulary.encode(prompt.length > 0 ? prompt : '\n')) feed(id);
  const out: number[] = [];
  for (let i = 0; i < length; i++) {
    out.push(next);
    feed(next);
  }
  disposeState(state);
  return vocabulary.decode(out);
}
