// The document's own words, counted in tries, and how they are mixed into the model's next-character distribution.
import type { Vocabulary } from '../model/vocab';
import { MAX_WORD_CHARS, WORD_CHAR, WORD_CHARS, wordBefore } from './options';

export interface WordNode {
  /** Words (with repeats) that start with this prefix. */
  n: number;
  /** Words that are exactly this prefix. */
  end: number;
  children: Map<string, WordNode>;
}

const newNode = (): WordNode => ({ n: 0, end: 0, children: new Map() });
const WORDS_OR_BLANK_LINES = new RegExp(`[${WORD_CHARS}]+|\\n[^\\S\\n]*\\n`, 'gu');
/** Prefixes the key of a paragraph context in WordCache.after; no word holds a line break. */
const PARAGRAPH = '\n\n';
/**
 * How much text before the cursor a rebuilt word cache reads (UTF-16 units). A rebuild (the first
 * request in a document, an edit before the words indexed, or a jump forward past this much text)
 * blocks that request: 20,000 characters take 8 to 13 ms once warm (26 ms the first time) and
 * about 5 MB.
 */
export const WORD_CACHE_CHARS = 20_000;
/** Typing on grows the cache a few words per request; past this it is rebuilt to WORD_CACHE_CHARS, so its memory stays bounded. */
export const MAX_INDEXED_CHARS = 2 * WORD_CACHE_CHARS;

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
    const partial = wordBefore(text, cursor);
    const wordStart = cursor - partial.length;
    // Comparing the indexed text is a memory compare, far cheaper than reading it again. Text
    // further back than WORD_CACHE_CHARS is never read, however the cursor got where it is.
    const rebuild =
      wordStart < this.upTo || wordStart - this.upTo > WORD_CACHE_CHARS || wordStart - this.start > MAX_INDEXED_CHARS;
    if (rebuild || text.slice(this.start, this.upTo) !== this.indexed) {
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

/** Where a beam stands among the document's words. */
export interface WordPlace {
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

export function placeAfter(cache: WordCache, place: WordPlace, char: string): WordPlace {
  if (WORD_CHAR.test(char)) {
    return {
      word: place.word + char,
      previous: place.previous,
      unigram: place.unigram?.children.get(char),
      bigram: place.bigram?.children.get(char),
      folded: place.folded?.children.get(char.toLowerCase()),
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
export function mixWithWords(
  logProbs: Float32Array,
  node: WordNode | undefined,
  wittenBell: boolean,
  boundary: Int32Array,
  wordIds: Uint8Array,
  keys: ReadonlyArray<string | null>,
): Float32Array {
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
export function classesOf(vocabulary: Vocabulary): VocabularyClasses {
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
    classes = {
      wordIds,
      boundary: Int32Array.from(boundary),
      punctuation: Int32Array.from(punctuation),
      space: vocabulary.chars.indexOf(' '),
      lowerKeys,
      upperKeys,
    };
    vocabularyClasses.set(vocabulary, classes);
  }
  return classes;
}
