// Temperature sampling with top-k and nucleus truncation, from a seeded generator so that samples are reproducible.
import type { Predictor, Snapshot } from '../model/predictor';
import { seededRandom } from '../model/random';
import { UNKNOWN_ID } from '../model/vocab';
import { Completion, CompletionOptions, CompletionSite, endsVisibly, stopsBefore } from './options';

export async function sample(
  predictor: Predictor,
  start: Snapshot,
  options: CompletionOptions,
  cancelled: () => boolean,
  site: CompletionSite = {},
): Promise<Completion | undefined> {
  const vocabulary = predictor.vocabulary;
  const random = seededRandom(options.seed);
  let snapshot = start;
  let text = '';
  let score = 0;
  for (let depth = 0; depth < options.maxChars; depth++) {
    if (cancelled()) return undefined;
    // UNKNOWN is drawn only as a character the document has shown, at its share times that character's.
    const named = predictor.nameUnknown?.(text);
    const logProbs = Float32Array.from(snapshot.logProbs);
    logProbs[UNKNOWN_ID] = named ? logProbs[UNKNOWN_ID] - named.nats : -Infinity;
    const id = drawId(logProbs, options, random);
    const char = id === UNKNOWN_ID ? String.fromCodePoint(named!.codePoint) : vocabulary.chars[id];
    if (stopsBefore(options.stopAt, char, text, site)) {
      // A drawn line break ends a line the completion has written, as the search's may, unless it would split the line.
      if (char === '\n' && !site.lineGoesOn && endsVisibly(text)) {
        score += logProbs[id];
        text += char;
      }
      break;
    }
    score += logProbs[id];
    text += char;
    snapshot = (await predictor.step([snapshot.state], [id], true))[0];
  }
  return { text, confidence: Math.exp(score) };
}

/** Temperature, then top-k, then nucleus (top-p) truncation. */
function drawId(logProbs: Float32Array, options: CompletionOptions, random: () => number): number {
  const t = Math.max(options.temperature, 1e-4);
  let ids = Array.from({ length: logProbs.length }, (_, i) => i)
    .filter((id) => logProbs[id] > -Infinity)
    .sort((a, b) => logProbs[b] - logProbs[a]);
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
