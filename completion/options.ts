// What a user can tune about completions, once: the types, defaults and ranges that the server's settings, the manifest
// and the tools all follow.
import type { Snapshot } from '../model/predictor';
import { WORD_CHAR, WORD_CHARS } from '../model/vocab';

export const MODES = ['beam', 'sample'] as const;
export type Mode = (typeof MODES)[number];
export const STOP_ATS = ['word', 'line', 'none'] as const;
export type StopAt = (typeof STOP_ATS)[number];

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
 * minConfidence 0.1: a suggestion less than 10% likely to be right is noise; the README's
 * keystroke-savings figures show what raising or lowering it costs.
 */
export const COMPLETION_DEFAULTS: CompletionOptions = {
  mode: 'beam',
  beamWidth: 4,
  temperature: 0.8,
  topK: 0,
  topP: 0.95,
  maxChars: 32,
  stopAt: 'word',
  minConfidence: 0.1,
  seed: 1,
};

/** [minimum, maximum, integer] for each numeric option; settings outside are clamped. */
export const COMPLETION_RANGES = {
  temperature: [0.05, 2, false],
  beamWidth: [1, 16, true],
  maxChars: [1, 256, true],
  minConfidence: [0, 1, false],
  topK: [0, 1000, true],
  topP: [0, 1, false],
  seed: [0, 2 ** 31 - 1, true],
} as const satisfies Partial<Record<keyof CompletionOptions, readonly [number, number, boolean]>>;

/** The languages that get completions unless the user says otherwise. */
export const DEFAULT_LANGUAGES = ['markdown', 'plaintext', 'restructuredtext', 'org', 'latex', 'asciidoc'] as const;

/** The word characters just before the end of a string. Only ever run it over a bounded slice: it is quadratic in a run of word characters. */
export const TRAILING_WORD = new RegExp(`[${WORD_CHARS}]*$`, 'u');
/** Longer "words" (base64, a run of one key) are not words anyone will want completed. */
export const MAX_WORD_CHARS = 48;

/** The typed part of the word that ends at `end` (at most MAX_WORD_CHARS back). */
export function wordBefore(text: string, end: number): string {
  return TRAILING_WORD.exec(text.slice(Math.max(0, end - MAX_WORD_CHARS), end))![0];
}

export interface Completion {
  text: string;
  /** The model's probability that the text typed next starts with this completion. */
  confidence: number;
  /** The model snapshots after each character of text (possibly fewer than its characters). */
  path?: Snapshot[];
  /** Other completions worth offering after this one, best first, each distinct from it and from each other. */
  alternatives?: Array<{ text: string; confidence: number }>;
}

/** What remained of a suggestion the user typed past instead of accepting it. */
export interface PassedOver {
  text: string;
  /** Its log-probability where the search that offered it knew it, from just after the typed character. */
  logP?: number;
}

/** What a completion must respect where it is asked for, beyond the model's state there. */
export interface CompletionSite {
  passedOver?: PassedOver;
  /** Text follows the cursor on its line, so a completion may not end with a line break: that would split the line. */
  lineGoesOn?: boolean;
  /**
   * The cursor stands on an empty line below a written one, so a completion may begin with the line break that
   * leaves this line blank: the next paragraph or speech comes with it.
   */
  opensParagraph?: boolean;
  /**
   * The user asked for the other suggestions here (Alt+] in VS Code): the search keeps every beam that could still
   * make one of the width best distinct suggestions, not only the ones that could beat the best.
   */
  alternativesWanted?: boolean;
}

/** Whether two suggestions say the same: the words of one begin the other's, whatever punctuation or space ends them. */
export function sameSuggestion(a: string, b: string): boolean {
  const core = (text: string) => text.replace(/[^\p{L}\p{N}_]+$/u, '');
  const [x, y] = [core(a), core(b)];
  return x.startsWith(y) || y.startsWith(x);
}

/** Whether a completion may end where `text` does: it holds a word, and does not end in whitespace (that would be invisible). */
export function endsVisibly(text: string): boolean {
  return WORD_CHAR.test(text) && !/\s$/u.test(text);
}

/**
 * Whether appending `char` ends the completion under the stop rule (the char itself is not kept); a line break may
 * begin one that opens a paragraph.
 */
export function stopsBefore(stopAt: StopAt, char: string, soFar: string, site: CompletionSite = {}): boolean {
  if (char === '\n') return stopAt !== 'none' && !(site.opensParagraph && soFar === '');
  if (stopAt !== 'word') return false;
  return !WORD_CHAR.test(char) && [...soFar].some((c) => WORD_CHAR.test(c));
}
