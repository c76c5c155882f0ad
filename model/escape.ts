// What a character outside the vocabulary costs. The LSTM and the n-grams predict UNKNOWN (id 0)
// for every such character; this model then says which one it is, so that bits/char charges a
// rare or novel character in full rather than as one cheap shared symbol.
//
// Two levels, as in Witten-Bell smoothing: the training text's own characters that map to UNKNOWN,
// by their counts, with an escape (weighted by how many distinct ones there were) to a model of
// all Unicode: a 256-code-point page, weighted by how many distinct characters of the training
// text lie in it plus one, then any code point of that page the vocabulary does not hold. Both
// levels are proper distributions over the code points that map to UNKNOWN (U+FFFD itself among
// them), so the whole sums to one over them.
import { UNKNOWN, Vocabulary } from './vocab';

const CODE_POINTS = 0x110000;
const PAGE_SIZE = 256;
const PAGE_COUNT = CODE_POINTS / PAGE_SIZE;

export class EscapeFormatError extends Error {}

/** The model's parameters as model.json keeps them: [code point, count] and [page, count] pairs, ascending. */
export interface EscapeJSON {
  /** The training text's characters that map to UNKNOWN, with how often each occurs there. */
  unknown: Array<[number, number]>;
  /** How many distinct characters of the training text lie in each 256-code-point page that has any. */
  pages: Array<[number, number]>;
}

/** The code points the vocabulary gives an id of their own: every entry but UNKNOWN. */
function vocabularyCodePoints(vocabulary: Vocabulary): Set<number> {
  const codePoints = new Set<number>();
  for (const c of vocabulary.chars) if (c !== UNKNOWN) codePoints.add(c.codePointAt(0) as number);
  return codePoints;
}

export class EscapeModel {
  private readonly inVocabulary: Set<number>;
  private readonly unknown: Map<number, number>;
  private readonly unknownTotal: number;
  /** The share of the probability that goes past the counted characters to the model of all Unicode. */
  private readonly escapeShare: number;
  /** Per page, the probability of each code point there that maps to UNKNOWN, given the escape. */
  private readonly perCodePoint: Float64Array;

  private constructor(
    readonly vocabulary: Vocabulary,
    unknown: Map<number, number>,
    private readonly pages: Map<number, number>,
  ) {
    this.inVocabulary = vocabularyCodePoints(vocabulary);
    this.unknown = unknown;
    this.unknownTotal = [...unknown.values()].reduce((sum, n) => sum + n, 0);
    this.escapeShare = this.unknownTotal === 0 ? 1 : unknown.size / (this.unknownTotal + unknown.size);
    const free = new Int32Array(PAGE_COUNT).fill(PAGE_SIZE);
    for (const codePoint of this.inVocabulary) free[Math.floor(codePoint / PAGE_SIZE)]--;
    // A page the vocabulary fills has no code point left to give its share to, so it gets none.
    let totalWeight = 0;
    for (let page = 0; page < PAGE_COUNT; page++) if (free[page] > 0) totalWeight += (pages.get(page) ?? 0) + 1;
    this.perCodePoint = new Float64Array(PAGE_COUNT);
    for (let page = 0; page < PAGE_COUNT; page++)
      if (free[page] > 0) this.perCodePoint[page] = ((pages.get(page) ?? 0) + 1) / totalWeight / free[page];
  }

  /** Learnt from the training text the vocabulary was built from. */
  static fromText(text: string, vocabulary: Vocabulary): EscapeModel {
    const inVocabulary = vocabularyCodePoints(vocabulary);
    const unknown = new Map<number, number>();
    const distinct = new Set<number>();
    for (const c of text) {
      const codePoint = c.codePointAt(0) as number;
      distinct.add(codePoint);
      if (!inVocabulary.has(codePoint)) unknown.set(codePoint, (unknown.get(codePoint) ?? 0) + 1);
    }
    return new EscapeModel(vocabulary, unknown, pageCounts(distinct));
  }

  /**
   * For a model saved without one: no counted characters, and pages weighted by the vocabulary's
   * characters, which are the training text's commonest.
   */
  static fromVocabulary(vocabulary: Vocabulary): EscapeModel {
    return new EscapeModel(vocabulary, new Map(), pageCounts(vocabularyCodePoints(vocabulary)));
  }

  /** Whether `codePoint` is one this model prices: a Unicode code point that maps to UNKNOWN. */
  covers(codePoint: number): boolean {
    return (
      Number.isInteger(codePoint) && codePoint >= 0 && codePoint < CODE_POINTS && !this.inVocabulary.has(codePoint)
    );
  }

  /** −ln P(code point | UNKNOWN); Infinity for a code point the vocabulary holds, which never maps to UNKNOWN. */
  nats(codePoint: number): number {
    if (!this.covers(codePoint)) return Infinity;
    const counted =
      this.unknownTotal === 0 ? 0 : (this.unknown.get(codePoint) ?? 0) / (this.unknownTotal + this.unknown.size);
    return -Math.log(counted + this.escapeShare * this.perCodePoint[Math.floor(codePoint / PAGE_SIZE)]);
  }

  toJSON(): EscapeJSON {
    const ascending = (map: Map<number, number>) => [...map.entries()].sort((a, b) => a[0] - b[0]);
    return { unknown: ascending(this.unknown), pages: ascending(this.pages) };
  }

  /** Checks everything, since model.json may come from another version or be damaged; throws EscapeFormatError. */
  static fromJSON(json: unknown, vocabulary: Vocabulary): EscapeModel {
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      throw new EscapeFormatError('escape model: expected an object with "unknown" and "pages" arrays');
    const { unknown, pages } = json as { unknown?: unknown; pages?: unknown };
    const inVocabulary = vocabularyCodePoints(vocabulary);
    const unknownCounts = pairs(unknown, 'unknown', CODE_POINTS - 1, Number.MAX_SAFE_INTEGER);
    for (const codePoint of unknownCounts.keys())
      if (inVocabulary.has(codePoint))
        throw new EscapeFormatError(
          `escape model: "unknown" counts U+${codePoint.toString(16).toUpperCase()}, which the vocabulary holds`,
        );
    return new EscapeModel(vocabulary, unknownCounts, pairs(pages, 'pages', PAGE_COUNT - 1, PAGE_SIZE));
  }
}

const blockOf = (codePoint: number): number => Math.floor(codePoint / BLOCK_SIZE);

function pageCounts(codePoints: Iterable<number>): Map<number, number> {
  const counts = new Map<number, number>();
  for (const codePoint of codePoints) {
    const page = Math.floor(codePoint / PAGE_SIZE);
    counts.set(page, (counts.get(page) ?? 0) + 1);
  }
  return counts;
}

function pairs(value: unknown, field: string, maxKey: number, maxCount: number): Map<number, number> {
  if (!Array.isArray(value)) throw new EscapeFormatError(`escape model: "${field}" must be an array`);
  const map = new Map<number, number>();
  const isIn = (n: unknown, min: number, max: number) =>
    Number.isInteger(n) && (n as number) >= min && (n as number) <= max;
  value.forEach((entry: unknown, i: number) => {
    if (!Array.isArray(entry) || entry.length !== 2 || !isIn(entry[0], 0, maxKey) || !isIn(entry[1], 1, maxCount))
      throw new EscapeFormatError(
        `escape model: "${field}" entry ${i} must be [an integer in 0..${maxKey}, a count in 1..${maxCount}]`,
      );
    if (map.has(entry[0])) throw new EscapeFormatError(`escape model: "${field}" entry ${i} repeats ${entry[0]}`);
    map.set(entry[0] as number, entry[1] as number);
  });
  return map;
}

/** What the characters of `text` outside the vocabulary cost beyond UNKNOWN's own probability: nats in all, and how many. */
export function escapeNats(model: EscapeModel, text: string, vocabulary: Vocabulary): { total: number; count: number } {
  let total = 0;
  let count = 0;
  for (const c of text) {
    if (vocabulary.id(c) !== 0) continue;
    total += model.nats(c.codePointAt(0) as number);
    count++;
  }
  return { total, count };
}

/** Per character of `text`, as vocabulary.encode(text) lays them out: its escape nats, or 0 inside the vocabulary. */
export function escapeNatsPerCharacter(model: EscapeModel, text: string, vocabulary: Vocabulary): Float64Array {
  const nats = new Float64Array(text.length);
  let n = 0;
  for (const c of text) nats[n++] = vocabulary.id(c) === 0 ? model.nats(c.codePointAt(0) as number) : 0;
  return n === nats.length ? nats : nats.slice(0, n);
}

/**
 * Code points to a block. A character outside the vocabulary is often in the block of the one before it (the next
 * letter of a Cyrillic or Greek word), as a compressor reading UTF-8 sees from the lead byte: 64 code points are
 * what a two-byte sequence's last byte spans.
 */
const BLOCK_SIZE = 64;
/** Below this, a character says nothing of its own block's: ASCII's blocks are the vocabulary's and control characters. */
const FIRST_SCRIPT_CODE_POINT = 0x80;
/**
 * The block level's weight never leaves [this, 1 − this], so that a document can still turn to it or from it. A
 * Chinese character is seldom in its predecessor's block, and there the level would only cost.
 */
const MIN_BLOCK_TRUST = 0.05;

/**
 * The escape model, learning as it reads: a character outside the vocabulary that has come before
 * is far likelier to come again than the training text's counts say (a name, a technical term), and one that has
 * not is likelier in a block of code points that followed the previous character's block before.
 * Interpolated Witten-Bell over the characters that mapped to UNKNOWN so far, after the same previous character,
 * then after any; below them the trained model, mixed with the blocks that followed the previous character's block
 * (each block's share spread evenly over its code points outside the vocabulary) as far as that has paid. Each
 * level is a distribution over the code points that map to UNKNOWN, so the whole still sums to one over them.
 */
export class AdaptiveEscape {
  private readonly seen = new CharacterCounts();
  private readonly after = new Map<number, CharacterCounts>();
  private readonly blocksAfter = new Map<number, CharacterCounts>();
  /** Per block the vocabulary holds code points of, how many of its code points it leaves to UNKNOWN. */
  private readonly unknownInBlock = new Map<number, number>();
  /** The block level's weight against the trained model alone: its posterior, from what came. */
  private trust = 0.5;

  constructor(readonly base: EscapeModel) {
    for (const c of base.vocabulary.chars) {
      if (c === UNKNOWN) continue;
      const block = blockOf(c.codePointAt(0) as number);
      this.unknownInBlock.set(block, (this.unknownInBlock.get(block) ?? BLOCK_SIZE) - 1);
    }
  }

  /** How far the blocks that followed the previous character's block are trusted, from what came. */
  get blockTrust(): number {
    return this.trust;
  }

  /** −ln P(code point | UNKNOWN, the character before); Infinity for one the vocabulary holds. */
  nats(codePoint: number, previous: number | undefined): number {
    const trained = this.base.nats(codePoint);
    if (trained === Infinity) return trained;
    const p = Math.exp(-trained);
    const blockTrust = this.trust;
    return -Math.log(
      this.byCharacter(codePoint, previous, blockTrust * this.byBlock(codePoint, previous, p) + (1 - blockTrust) * p),
    );
  }

  /** P(code point) from the characters that came before, given the levels below's. */
  private byCharacter(codePoint: number, previous: number | undefined, lower: number): number {
    const anywhere = this.seen.interpolate(codePoint, lower);
    const context = previous === undefined ? undefined : this.after.get(previous);
    return context ? context.interpolate(codePoint, anywhere) : anywhere;
  }

  /** P(code point) from the blocks that followed the previous character's block, given the trained model's. */
  private byBlock(codePoint: number, previous: number | undefined, trained: number): number {
    if (previous === undefined) return trained;
    const block = blockOf(codePoint);
    const context = this.blocksAfter.get(blockOf(previous)) ?? this.untaughtBlockContext(previous);
    return context.interpolateGroup(block, 1 / this.unknownIn(block), trained);
  }

  /** What the blocks after `previous`'s say before they have learnt: after a script's character, its own block, once. */
  private untaughtBlockContext(previous: number): CharacterCounts {
    const context = new CharacterCounts();
    const block = blockOf(previous);
    if (previous >= FIRST_SCRIPT_CODE_POINT && this.unknownIn(block) > 0) context.add(block);
    return context;
  }

  private unknownIn(block: number): number {
    return this.unknownInBlock.get(block) ?? BLOCK_SIZE;
  }

  /**
   * The likeliest character outside the vocabulary after `previous` among those that came before,
   * with its cost given UNKNOWN; undefined until one has come. Only those are candidates: the
   * trained model's own guesses are spread too thin to be worth suggesting.
   */
  likeliest(previous: number | undefined): { codePoint: number; nats: number } | undefined {
    const after = previous === undefined ? undefined : this.after.get(previous)?.commonest;
    const anywhere = this.seen.commonest;
    if (anywhere === undefined) return undefined;
    const nats = this.nats(anywhere, previous);
    if (after === undefined || after === anywhere) return { codePoint: anywhere, nats };
    const afterNats = this.nats(after, previous);
    return afterNats <= nats ? { codePoint: after, nats: afterNats } : { codePoint: anywhere, nats };
  }

  /** Learns a character that came, if it is one outside the vocabulary. */
  learn(codePoint: number, previous: number | undefined): void {
    if (!this.base.covers(codePoint)) return;
    const trained = Math.exp(-this.base.nats(codePoint));
    const withBlocks = this.trust * this.byCharacter(codePoint, previous, this.byBlock(codePoint, previous, trained));
    const without = (1 - this.trust) * this.byCharacter(codePoint, previous, trained);
    this.trust = Math.min(1 - MIN_BLOCK_TRUST, Math.max(MIN_BLOCK_TRUST, withBlocks / (withBlocks + without)));
    this.seen.add(codePoint);
    if (previous === undefined) return;
    let context = this.after.get(previous);
    if (!context) this.after.set(previous, (context = new CharacterCounts()));
    context.add(codePoint);
    const previousBlock = blockOf(previous);
    let blockContext = this.blocksAfter.get(previousBlock);
    if (!blockContext) this.blocksAfter.set(previousBlock, (blockContext = this.untaughtBlockContext(previous)));
    blockContext.add(blockOf(codePoint));
  }

  /** Learns every character of `text`, as reading it would, after the code point `previous`. */
  learnText(text: string, previous?: number): void {
    for (const c of text) {
      const codePoint = c.codePointAt(0) as number;
      this.learn(codePoint, previous);
      previous = codePoint;
    }
  }
}

/** Counts of characters in one context, and Witten-Bell's interpolation with the level below. */
class CharacterCounts {
  private readonly counts = new Map<number, number>();
  private total = 0;
  /** The commonest code point so far (the first to reach the count, on a tie). */
  commonest: number | undefined;

  add(codePoint: number): void {
    const count = (this.counts.get(codePoint) ?? 0) + 1;
    this.counts.set(codePoint, count);
    this.total++;
    if (this.commonest === undefined || count > (this.counts.get(this.commonest) ?? 0)) this.commonest = codePoint;
  }

  /** P(code point) here, given the level below's: (count + distinct · lower) / (total + distinct). */
  interpolate(codePoint: number, lower: number): number {
    if (this.total === 0) return lower;
    const distinct = this.counts.size;
    return ((this.counts.get(codePoint) ?? 0) + distinct * lower) / (this.total + distinct);
  }

  /**
   * The same where this counts groups of code points (blocks): P(a member of `group`), which takes `share` of its
   * group's count, given the level below's P(member).
   */
  interpolateGroup(group: number, share: number, lower: number): number {
    if (this.total === 0) return lower;
    const distinct = this.counts.size;
    return ((this.counts.get(group) ?? 0) * share + distinct * lower) / (this.total + distinct);
  }
}
