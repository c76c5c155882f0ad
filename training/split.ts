// Splits a corpus into training and validation text, deterministically (hash-ordered hold-out), so
// that retraining on the same notes gives the same split and comparable validation losses.
import { Corpus, CorpusDocument, DOCUMENT_SEPARATOR } from './corpus';
import { codePointLength, isHighSurrogate, isLowSurrogate } from '../model/vocab';

// FNV-1a over UTF-16 units: a stable, dependency-free hash, so the held-out files depend only on
// their names and not on the order the filesystem happened to list them in.
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// Holding out a file that would make validation the majority of the data would starve training.
const MAX_HELD_OUT_SHARE = 0.5;

function percent(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(3))}%`;
}

/** Head/tail split of one text at floor(n * (1 - fraction)) code points. */
function tailSplit(text: string, validationFraction: number): { head: string; tail: string } {
  const n = codePointLength(text);
  let cut = Math.floor(n * (1 - validationFraction));
  // Keep both sides non-empty when possible, so a tiny file still yields some validation text.
  if (n >= 2) cut = Math.min(Math.max(cut, 1), n - 1);
  const offset = codePointOffset(text, cut);
  return { head: text.slice(0, offset), tail: text.slice(offset) };
}

export interface CorpusSplit {
  train: string;
  validation: string;
  how: string;
  /** Every note, in the corpus's order: what the model's memory of the notes (n-gram, match and context models) reads. */
  whole: string;
  /** The files held out whole, in the corpus's order, which `validation` joins; none where the split took tails. */
  heldOut: CorpusDocument[];
}

export function splitCorpus(corpus: Corpus, validationFraction: number): CorpusSplit {
  if (!(validationFraction > 0 && validationFraction < 1)) {
    throw new Error(`corpus: validation fraction must be between 0 and 1 (exclusive), got ${validationFraction}`);
  }
  const docs = corpus.documents;
  if (docs.length === 0) throw new Error('corpus: no documents to split');
  const whole = docs.map((d) => d.text).join(DOCUMENT_SEPARATOR);

  if (docs.length === 1) {
    const { head, tail } = tailSplit(docs[0].text, validationFraction);
    return {
      train: head,
      validation: tail,
      how: `last ${percent(validationFraction)} of ${docs[0].path}`,
      whole,
      heldOut: [],
    };
  }

  // Whole files are held out so validation measures how well the model generalises to a note it
  // has never seen, rather than to the continuation of one it has.
  const lengths = docs.map((d) => codePointLength(d.text));
  const total = lengths.reduce((a, b) => a + b, 0);
  const order = docs
    .map((d, i) => ({ i, h: fnv1a(d.path) }))
    .sort(
      (a, b) => a.h - b.h || (docs[a.i].path < docs[b.i].path ? -1 : docs[a.i].path > docs[b.i].path ? 1 : a.i - b.i),
    );
  const target = validationFraction * total;
  const heldOut = new Set<number>();
  let held = 0;
  for (const { i } of order) {
    if (held >= target || heldOut.size >= docs.length - 1) break;
    // A file too big to hold out is passed over rather than ending the search, so one large
    // file early in hash order does not force the weaker tail split on everything.
    if (held + lengths[i] > MAX_HELD_OUT_SHARE * total) continue;
    heldOut.add(i);
    held += lengths[i];
  }

  if (total > 0 && held >= target) {
    const train = docs.filter((_, i) => !heldOut.has(i)).map((d) => d.text);
    const validation = docs.filter((_, i) => heldOut.has(i));
    return {
      train: train.join(DOCUMENT_SEPARATOR),
      validation: validation.map((d) => d.text).join(DOCUMENT_SEPARATOR),
      how: `${heldOut.size} of ${docs.length} files held out (${percent(held / total)} of ${total} chars)`,
      whole,
      heldOut: validation,
    };
  }

  const heads: string[] = [];
  const tails: string[] = [];
  for (const d of docs) {
    const { head, tail } = tailSplit(d.text, validationFraction);
    if (head) heads.push(head);
    if (tail) tails.push(tail);
  }
  return {
    train: heads.join(DOCUMENT_SEPARATOR),
    validation: tails.join(DOCUMENT_SEPARATOR),
    how: `last ${percent(validationFraction)} of each of ${docs.length} files (no whole-file hold-out fits)`,
    whole,
    heldOut: [],
  };
}

/** UTF-16 offset of the code point with index cpIndex (or text.length past the end). */
function codePointOffset(text: string, cpIndex: number): number {
  let i = 0;
  for (let cp = 0; cp < cpIndex && i < text.length; cp++) {
    const hi = text.charCodeAt(i);
    if (isHighSurrogate(hi) && i + 1 < text.length) {
      const lo = text.charCodeAt(i + 1);
      i += isLowSurrogate(lo) ? 2 : 1;
    } else {
      i++;
    }
  }
  return i;
}
