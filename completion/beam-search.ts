// Beam search for the completion that saves the most keystrokes in expectation.
import type { Predictor, Snapshot } from '../model/predictor';
import { UNKNOWN_ID, type Vocabulary, WORD_CHAR, WORD_CHARS } from '../model/vocab';
import {
  Completion,
  CompletionOptions,
  CompletionSite,
  endsVisibly,
  PassedOver,
  sameSuggestion,
  stopsBefore,
} from './options';

/**
 * How much less likely a suggestion is once the user has typed its first character instead of
 * accepting it. Someone who saw the right completion would often have pressed Tab, so typing on
 * is evidence against it (Bayes: the odds shrink by the chance they would have accepted); but
 * people also type on through right suggestions they did not look at, so it is quartered, not
 * dropped, and a suggestion the model is much surer of than of any other still stays. The README
 * gives what it is worth.
 */
const PASSED_OVER_FACTOR = 0.25;

/**
 * The keys a completion would save count for less the more of them there are: its value is
 * P × (length − 1)^this, not the expectation itself. An accepted completion is followed by another
 * from where it ends, so a short likely one loses little of a longer one's keys, while a longer,
 * less likely one that is wrong saves none. The README gives the sweep that chose it.
 */
const SAVED_KEYS_EXPONENT = 0.7;

/**
 * Under stopAt word, a completion still runs on past the end of a word while the model gives all
 * of it, the separator included, at least this probability: a phrase or a line of boilerplate it
 * is sure of comes in one Tab, while an ordinary word stops at its end. The README gives what it
 * is worth.
 */
const SURE_PAST_WORD = 0.7;

/**
 * Asked for the other suggestions, the user has seen the best and wants the next ones, which are
 * offered down to this share of minConfidence: after a word the next one is seldom 10% likely,
 * whichever it is. The best itself still needs minConfidence.
 */
const ALTERNATIVES_CONFIDENCE_SHARE = 0.25;

interface Beam {
  text: string;
  /** Characters in text (code points). */
  length: number;
  /** Log-probability of text. */
  score: number;
  snapshot: Snapshot;
  /** Snapshots after each character of text, in order. */
  path: Snapshot[];
  /**
   * A punctuation mark stepped outside the width only to learn what follows it: the beam offers the mark with the
   * space or line break after it, and goes no further.
   */
  closing?: boolean;
}

interface Candidate {
  beam: Beam;
  id: number;
  char: string;
  score: number;
  closing?: boolean;
}

/**
 * The completion that saves the most keystrokes: P(it is what comes next) × (its length − 1), the
 * one key being the Tab that accepts it, the keys discounted by SAVED_KEYS_EXPONENT. The
 * probability is of the completion as a prefix of what follows, so "and" is right whenever "and"
 * or "andromeda" comes; a completion may stop inside its first word where the model is sure of the
 * letters so far and torn about the rest, as a shell completes the common prefix. Mean
 * log-probability per character, the usual beam score, favours long unlikely words and short sure
 * ones alike and saved fewer keystrokes.
 *
 * A completion that ends a word may take the separator after it, a space, a line break or
 * punctuation, when the model is sure enough of it that it pays (its value with the separator is
 * higher): after an accepted word the next key is almost always the space, and a Tab that types it
 * too saves that key, as phone keyboards do. A punctuation mark may take a space or line break
 * after it in turn ("sir, ", "PETRUCHIO:⏎"): each beam steps its marks once more, outside the
 * width, to learn what follows them. The README gives what each is worth.
 * Under stopAt word a completion runs into the next word only where the model is sure of
 * everything up to it (SURE_PAST_WORD), and never past a line's end. Where the line goes on after
 * the cursor, no completion ends with a line break.
 *
 * A completion may hold a character outside the vocabulary, one the document has shown: the model
 * predicts UNKNOWN, and the predictor names the character it most likely is (a name or term in
 * another script, typed again).
 *
 * Beams are stepped as one batch; each keeps the snapshots along its text, so that accepting the
 * completion costs no model steps (DocumentStates.expect).
 */
export async function beamSearch(
  predictor: Predictor,
  start: Snapshot,
  options: CompletionOptions,
  cancelled: () => boolean,
  site: CompletionSite = {},
): Promise<Completion | undefined> {
  const { passedOver, lineGoesOn = false, alternativesWanted = false } = site;
  const vocabulary = predictor.vocabulary;
  const separators = separatorsOf(vocabulary);
  const { punctuation, space, lineBreak } = separators;
  const width = Math.max(1, options.beamWidth);
  let beams: Beam[] = [{ text: '', length: 0, score: 0, snapshot: start, path: [] }];
  let best: Offer | undefined;
  /** Every completion offered, each text once with its best value, for the alternatives. */
  const offers = new Map<string, Offer>();
  const floor = options.minConfidence * (alternativesWanted ? ALTERNATIVES_CONFIDENCE_SHARE : 1);
  const offer = (text: string, logP: number, length: number, path: Snapshot[]) => {
    // One character saves nothing: the Tab that accepts it is a key too.
    if (length < 2) return;
    if (passedOver) logP = afterPassingOver(passedOver, text, logP);
    const p = Math.exp(logP);
    if (p < floor) return;
    const value = p * (length - 1) ** SAVED_KEYS_EXPONENT;
    const offered: Offer = { text, logP, value, path };
    const previous = offers.get(text);
    if (!previous || value > previous.value) offers.set(text, offered);
    if (p >= options.minConfidence && (!best || value > best.value)) best = offered;
  };
  // A beam's probability only falls as it grows, so one that cannot reach the bar even if accepted whole at its
  // longest, or is already below the floor, is dropped. The bar is the best's value, or, where the alternatives
  // are wanted, the value of the last of the width best distinct offers once there are that many.
  let bar = 0;
  const raiseBar = () => {
    if (!best) return;
    if (!alternativesWanted) return void (bar = best.value);
    const kept = distinctOffers(best, [...offers.values()], width - 1);
    if (kept.length === width) bar = kept[width - 1].value;
  };
  const hopeless = (logP: number, longest = options.maxChars) => {
    const p = Math.exp(logP);
    return p < floor || p * (longest - 1) ** SAVED_KEYS_EXPONENT <= bar;
  };
  const offerSpaceOrBreak = (beam: Beam) => {
    const lp = beam.snapshot.logProbs;
    if (space > 0) offer(beam.text + ' ', beam.score + lp[space], beam.length + 1, beam.path);
    if (lineBreak > 0 && !lineGoesOn) offer(beam.text + '\n', beam.score + lp[lineBreak], beam.length + 1, beam.path);
  };
  // Offered, and stepped past its last character, where it may end.
  const offerable = (beam: Beam) => endsVisibly(beam.text);
  const surePastWord = Math.log(SURE_PAST_WORD);
  const stops = (char: string, soFar: string, score: number) =>
    stopsBefore(options.stopAt, char, soFar, site) &&
    !(options.stopAt === 'word' && char !== '\n' && score >= surePastWord);
  for (let depth = 0; ; depth++) {
    if (cancelled()) return undefined;
    for (const beam of beams) {
      if (beam.closing) {
        // The mark alone was offered by the beam before it.
        offerSpaceOrBreak(beam);
        continue;
      }
      if (!offerable(beam)) continue;
      if (!insideLaterWord(beam, separators)) offer(beam.text, beam.score, beam.length, beam.path);
      if (beam.length >= options.maxChars) continue;
      const lp = beam.snapshot.logProbs;
      for (const id of punctuation)
        offer(beam.text + vocabulary.chars[id], beam.score + lp[id], beam.length + 1, beam.path);
      offerSpaceOrBreak(beam);
    }
    if (depth >= options.maxChars) break;
    raiseBar();
    beams = beams.filter((b) => !hopeless(b.score));
    const candidates: Candidate[] = [];
    const closing: Candidate[] = [];
    for (const beam of beams) {
      if (beam.closing) continue;
      const lp = beam.snapshot.logProbs;
      if (offerable(beam) && beam.length + 2 <= options.maxChars)
        for (const id of punctuation) {
          const score = beam.score + lp[id];
          if (!hopeless(score, beam.length + 2))
            closing.push({ beam, id, char: vocabulary.chars[id], score, closing: true });
        }
      for (const id of topIds(lp, width)) {
        const char = vocabulary.chars[id];
        const score = beam.score + lp[id];
        if (stops(char, beam.text, score)) continue;
        candidates.push({ beam, id, char, score });
      }
      const named = predictor.nameUnknown?.(beam.text);
      if (!named) continue;
      const char = String.fromCodePoint(named.codePoint);
      const score = beam.score + lp[UNKNOWN_ID] - named.nats;
      if (!stops(char, beam.text, score)) candidates.push({ beam, id: UNKNOWN_ID, char, score });
    }
    candidates.sort((a, b) => b.score - a.score);
    const continuing = candidates.slice(0, width).filter((c) => !hopeless(c.score));
    // A mark that goes on within the width offers its space or line break from there.
    for (const c of closing) if (!continuing.some((d) => d.beam === c.beam && d.id === c.id)) continuing.push(c);
    if (continuing.length === 0) break;
    const stepped = await predictor.step(
      continuing.map((c) => c.beam.snapshot.state),
      continuing.map((c) => c.id),
      true,
    );
    beams = continuing.map((c, i) => ({
      text: c.beam.text + c.char,
      length: c.beam.length + 1,
      score: c.score,
      snapshot: stepped[i],
      path: [...c.beam.path, stepped[i]],
      closing: c.closing,
    }));
  }
  if (!best) return undefined;
  const alternatives = distinctAlternatives(best, [...offers.values()], width - 1);
  return { text: best.text, confidence: Math.exp(best.logP), path: best.path, alternatives };
}

/**
 * The log-probability that `text` comes next and that the user, had it been right, would still
 * have typed on past `passedOver` (Bayes, the accepting chance being 1 − PASSED_OVER_FACTOR). A
 * text that extends the suggestion is right only where it was, so it takes the whole factor; one
 * the suggestion extends may be right where the suggestion ran on wrongly, and only the share of
 * its probability that the suggestion holds takes it. Where that share is not known, it takes the
 * whole factor too.
 */
function afterPassingOver(passedOver: PassedOver, text: string, logP: number): number {
  if (text.startsWith(passedOver.text) || (passedOver.text.startsWith(text) && passedOver.logP === undefined))
    return logP + Math.log(PASSED_OVER_FACTOR);
  if (!passedOver.text.startsWith(text)) return logP;
  const p = Math.exp(logP);
  const held = Math.min(p, Math.exp(passedOver.logP!));
  return Math.log(p - (1 - PASSED_OVER_FACTOR) * held);
}

/** A word at the end with another word before it. */
const LATER_WORD_AT_END = new RegExp(`[${WORD_CHARS}][^${WORD_CHARS}]+[${WORD_CHARS}]+$`, 'u');

/**
 * Whether `beam` stops inside a word after its first, where the model expects the word to go on.
 * It is not offered: a ghost text ending "over the l" reads as a mistake (maxChars cut it, or the
 * model is torn about the rest), and the words up to "the " are offered anyway. Within the first
 * word a completion may stop where the model is torn, as a shell completes the common prefix.
 */
function insideLaterWord(beam: Beam, separators: Separators): boolean {
  if (!LATER_WORD_AT_END.test(beam.text)) return false;
  const lp = beam.snapshot.logProbs;
  let endsHere = Math.exp(lp[separators.space] ?? -Infinity);
  for (const id of separators.punctuation) endsHere += Math.exp(lp[id]);
  for (const id of separators.breaks) endsHere += Math.exp(lp[id]);
  return endsHere < 0.5;
}

interface Offer {
  text: string;
  logP: number;
  value: number;
  path: Snapshot[];
}

/**
 * The next-best completions, by value, that differ from the best and from each other as a person sees them: two that
 * are one word with or without its separator, or where one is the start of the other, are one suggestion, and only the
 * better is kept. Editors cycle through these (Alt+] in VS Code).
 */
function distinctAlternatives(best: Offer, offers: Offer[], most: number): Array<{ text: string; confidence: number }> {
  return distinctOffers(best, offers, most)
    .slice(1)
    .map((offer) => ({ text: offer.text, confidence: Math.exp(offer.logP) }));
}

/** The best, then up to `most` others by value, each saying something the ones before it do not. */
function distinctOffers(best: Offer, offers: Offer[], most: number): Offer[] {
  const kept = [best];
  for (const offer of offers.sort((a, b) => b.value - a.value)) {
    if (kept.length > most) break;
    if (kept.some((k) => sameSuggestion(k.text, offer.text))) continue;
    kept.push(offer);
  }
  return kept;
}

/** The k most likely ids, never the unknown symbol (id 0). */
function topIds(logProbs: Float32Array, k: number): number[] {
  // One pass keeping the k best in order: sorting the whole vocabulary per beam per step costs
  // milliseconds once it holds thousands of characters, as a Chinese one does.
  const ids: number[] = [];
  for (let id = UNKNOWN_ID + 1; id < logProbs.length; id++) {
    const p = logProbs[id];
    if (ids.length === k && p <= logProbs[ids[k - 1]]) continue;
    let at = ids.length === k ? k - 1 : ids.length;
    while (at > 0 && logProbs[ids[at - 1]] < p) {
      ids[at] = ids[at - 1];
      at--;
    }
    ids[at] = id;
  }
  return ids;
}

interface Separators {
  /** Visible separators, which a completion may end with after a word. */
  punctuation: Int32Array;
  /** The space, which it may end with too (-1 if absent). */
  space: number;
  /** The line break, which it may end with too (-1 if absent). */
  lineBreak: number;
  /** Whitespace other than the space, the line break included: each ends a word. */
  breaks: Int32Array;
}

const separatorCache = new WeakMap<Vocabulary, Separators>();
function separatorsOf(vocabulary: Vocabulary): Separators {
  let separators = separatorCache.get(vocabulary);
  if (!separators) {
    const punctuation: number[] = [];
    const breaks: number[] = [];
    vocabulary.chars.forEach((c, id) => {
      if (id === 0 || WORD_CHAR.test(c)) return;
      if (!/\s/u.test(c)) punctuation.push(id);
      else if (c !== ' ') breaks.push(id);
    });
    const space = vocabulary.chars.indexOf(' ');
    const lineBreak = vocabulary.chars.indexOf('\n');
    separators = { punctuation: Int32Array.from(punctuation), space, lineBreak, breaks: Int32Array.from(breaks) };
    separatorCache.set(vocabulary, separators);
  }
  return separators;
}
