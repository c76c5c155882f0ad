// Beam search for the completion that saves the most keystrokes in expectation.
import type { Predictor, Snapshot } from '../model/predictor';
import { Completion, CompletionOptions, stopsBefore, WORD_CHAR } from './options';
import { classesOf, mixWithWords, placeAfter, WordCache, WordPlace } from './words';

/** What the editor knows beyond the model state: the document's words, and what the user passed over. */
export interface CompletionContext {
  /** The document's words, brought up to the cursor by update(), which also gives `partial`. */
  words?: WordCache;
  /** The typed part of the word at the cursor. */
  partial?: string;
  /** What remained of a suggestion the user typed past instead of accepting. */
  passedOver?: string;
}

/**
 * How much less likely a suggestion is once the user has typed its first character instead of
 * accepting it. Someone who saw the right completion would often have pressed Tab, so typing on
 * is evidence against it (Bayes: the odds shrink by the chance they would have accepted); but
 * people also type on through right suggestions they did not look at, so it is quartered, not
 * dropped, and a suggestion the model is much surer of than of any other still stays. The README
 * gives what it is worth.
 */
const PASSED_OVER_FACTOR = 0.25;

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
export async function beamSearch(
  predictor: Predictor,
  start: Snapshot,
  options: CompletionOptions,
  cancelled: () => boolean,
  context: CompletionContext,
): Promise<Completion | undefined> {
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
      const capitals =
        place.word.length > 1 && place.word === place.word.toUpperCase() && place.word !== place.word.toLowerCase();
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
  let beams: Beam[] = [
    {
      text: '',
      length: 0,
      score: 0,
      snapshot: start,
      path: [],
      place: startPlace,
      logProbs: mix(start.logProbs, startPlace),
    },
  ];
  let best: { text: string; logP: number; value: number; path: Snapshot[] } | undefined;
  const offer = (text: string, logP: number, length: number, path: Snapshot[]) => {
    // One character saves nothing: the Tab that accepts it is a key too.
    if (length < 2) return;
    // The user passed over the whole suggestion, which showed its beginnings too.
    if (passedOver && (text.startsWith(passedOver) || passedOver.startsWith(text)))
      logP += Math.log(PASSED_OVER_FACTOR);
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
      for (const id of punctuation)
        offer(beam.text + vocabulary.chars[id], beam.score + lp[id], beam.length + 1, beam.path);
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
    const stepped = await predictor.step(
      continuing.map((c) => c.beam.snapshot.state),
      continuing.map((c) => c.id),
    );
    beams = continuing.map((c, i) => {
      const char = vocabulary.chars[c.id];
      const place = words && c.beam.place && placeAfter(words, c.beam.place, char);
      return {
        text: c.beam.text + char,
        length: c.beam.length + 1,
        score: c.score,
        snapshot: stepped[i],
        path: [...c.beam.path, stepped[i]],
        place,
        logProbs: mix(stepped[i].logProbs, place),
      };
    });
  }
  return best && { text: best.text, confidence: Math.exp(best.logP), path: best.path };
}

/** The k most likely ids, never the unknown symbol (id 0). */
function topIds(logProbs: Float32Array, k: number): number[] {
  const ids = Array.from({ length: logProbs.length - 1 }, (_, i) => i + 1);
  ids.sort((a, b) => logProbs[b] - logProbs[a]);
  return ids.slice(0, k);
}
