// Character vocabulary for the LSTM. Entries are Unicode code points rather than UTF-16 units so
// that an emoji or a rare CJK character is one prediction step, and sampling can never emit
// half of a surrogate pair.

/** The unknown-character symbol; always id 0 so that out-of-vocabulary input has a fixed slot. */
export const UNKNOWN = '\uFFFD';
export const UNKNOWN_ID = 0;

/** The characters words are made of: for stopping a completion at a word's end, a paragraph's first word, and the word a list completion replaces. */
export const WORD_CHARS = "\\p{L}\\p{N}_'’-";
export const WORD_CHAR = new RegExp(`[${WORD_CHARS}]`, 'u');

/**
 * The offset itself, or one less when it falls between the two halves of a surrogate pair: where
 * text may be cut, or a cursor placed, without splitting a character.
 */
export function characterStart(text: string, offset: number): number {
  return offset > 0 && isLowSurrogate(text.charCodeAt(offset)) && isHighSurrogate(text.charCodeAt(offset - 1))
    ? offset - 1
    : offset;
}

/** The first UTF-16 unit of a surrogate pair. */
export function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/** The second UTF-16 unit of a surrogate pair. */
export function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * Counts code points, a lone surrogate as one as the vocabulary reads it, without allocating an
 * iterator per character.
 */
export function codePointLength(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    const hi = text.charCodeAt(i);
    if (isHighSurrogate(hi)) {
      const lo = text.charCodeAt(i + 1);
      if (isLowSurrogate(lo)) {
        n--;
        i++;
      }
    }
  }
  return n;
}

function isSingleCodePoint(s: string): boolean {
  if (s.length === 0 || s.length > 2) return false;
  const cp = s.codePointAt(0) as number;
  return s.length === (cp > 0xffff ? 2 : 1);
}

function byCodePoint(a: string, b: string): number {
  return (a.codePointAt(0) as number) - (b.codePointAt(0) as number);
}

export class Vocabulary {
  readonly chars: string[];
  private readonly ids: Map<string, number>;

  // Private so every instance has passed the invariants checked in fromJSON / built by fromText.
  private constructor(chars: string[]) {
    // Frozen because ids is derived from chars; mutating one would silently desynchronise them.
    this.chars = Object.freeze(chars.slice()) as string[];
    this.ids = new Map(this.chars.map((c, i) => [c, i]));
  }

  get size(): number {
    return this.chars.length;
  }

  /**
   * UNKNOWN and the most frequent characters of `text`, up to maxSize entries in all. With
   * minCount 2 the characters seen once are left to UNKNOWN, so that a model trained on `text`
   * learns how often a character it has never seen comes next (Good-Turing); if no character is
   * that frequent, every character is kept rather than none.
   */
  static fromText(text: string, maxSize: number, minCount = 1): Vocabulary {
    if (!Number.isInteger(maxSize) || maxSize < 2) {
      throw new Error(`vocabulary: maxSize must be an integer >= 2, got ${maxSize}`);
    }
    if (!Number.isInteger(minCount) || minCount < 1) {
      throw new Error(`vocabulary: minCount must be an integer >= 1, got ${minCount}`);
    }
    const counts = new Map<string, number>();
    for (const c of text) {
      // UNKNOWN already owns id 0; counting it would waste a slot on a duplicate.
      if (c === UNKNOWN) continue;
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    if (counts.size === 0) {
      throw new Error('vocabulary: cannot build a vocabulary from text with no characters');
    }
    const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || byCodePoint(a[0], b[0]));
    const frequent = ranked.filter(([, count]) => count >= minCount);
    const kept = (frequent.length > 0 ? frequent : ranked).slice(0, maxSize - 1).map(([c]) => c);
    // Re-sorting by code point makes ids independent of exact frequencies, so two corpora with
    // the same character set produce the same ids.
    kept.sort(byCodePoint);
    return new Vocabulary([UNKNOWN, ...kept]);
  }

  encode(text: string): Int32Array {
    // text.length is an upper bound on the code point count, which avoids a counting pass.
    const out = new Int32Array(text.length);
    let n = 0;
    for (const c of text) out[n++] = this.ids.get(c) ?? 0;
    return n === out.length ? out : out.slice(0, n);
  }

  decode(ids: ArrayLike<number>): string {
    const parts: string[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const c = this.chars[id];
      // An id outside the table means the model and vocabulary disagree; failing loudly beats
      // quietly showing replacement characters as a completion.
      if (c === undefined || !Number.isInteger(id)) {
        throw new RangeError(`vocabulary: id ${id} is out of range for a vocabulary of size ${this.size}`);
      }
      parts[i] = c;
    }
    return parts.join('');
  }

  id(char: string): number {
    return this.ids.get(char) ?? 0;
  }

  toJSON(): { chars: string[] } {
    return { chars: this.chars.slice() };
  }

  static fromJSON(json: unknown): Vocabulary {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new Error('vocabulary: expected an object with a "chars" array');
    }
    const chars = (json as { chars?: unknown }).chars;
    if (!Array.isArray(chars)) {
      throw new Error('vocabulary: "chars" must be an array of strings');
    }
    if (chars.length < 2) {
      throw new Error(`vocabulary: needs at least 2 entries (UNKNOWN plus one character), got ${chars.length}`);
    }
    const seen = new Set<string>();
    chars.forEach((c: unknown, i: number) => {
      if (typeof c !== 'string') {
        throw new Error(`vocabulary: entry ${i} is not a string`);
      }
      if (!isSingleCodePoint(c)) {
        throw new Error(`vocabulary: entry ${i} (${JSON.stringify(c)}) is not exactly one code point`);
      }
      if (seen.has(c)) {
        throw new Error(`vocabulary: entry ${i} (${JSON.stringify(c)}) is a duplicate`);
      }
      seen.add(c);
    });
    if (chars[0] !== UNKNOWN) {
      throw new Error(`vocabulary: entry 0 must be the unknown symbol U+FFFD, got ${JSON.stringify(chars[0])}`);
    }
    return new Vocabulary(chars as string[]);
  }
}

/** The last code point of `text`, or undefined when it is empty. */
export function lastCodePointOf(text: string): number | undefined {
  return text.length === 0 ? undefined : text.codePointAt(characterStart(text, text.length - 1));
}

/** Line breaks as the notes are read and learnt: a CR LF, or a CR alone, becomes an LF. */
export function withLfLineEnds(text: string): string {
  return text.replace(/\r\n?/gu, '\n');
}

/** A file's text as the trainer reads it, and the notes learnt from saves with it: no byte-order mark, LF line ends. */
export function asNotesText(text: string): string {
  return withLfLineEnds(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
}

/**
 * `make`, made once per vocabulary: the tables and readers that every document's predictor reads alike are built
 * the first time one asks and shared after.
 */
export function oncePerVocabulary<T>(make: (vocabulary: Vocabulary) => T): (vocabulary: Vocabulary) => T {
  const made = new WeakMap<Vocabulary, T>();
  return (vocabulary) => {
    let value = made.get(vocabulary);
    if (value === undefined) made.set(vocabulary, (value = make(vocabulary)));
    return value;
  };
}
