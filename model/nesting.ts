// The Markdown spans a position is in: inline code, a link's text and its target, parentheses, quotes and a fenced
// block. Which part of the mixture to trust differs there (a link's target spells its text in lower case and
// hyphens, code follows other rules than prose), and none of the few characters just before need say so. A prediction's
// state keeps the spans as one number (word-model.ts keeps it in the word slot), moved past each character by its mark.
import { oncePerVocabulary } from './vocab';

/** What a character does to the spans; any other (mark 0) only ends a line's run of blanks and backticks. */
const MARKS = {
  lineBreak: 1,
  blank: 2,
  backtick: 3,
  openBracket: 4,
  closeBracket: 5,
  openParen: 6,
  closeParen: 7,
  quote: 8,
};
const MARKED: Record<string, number> = {
  '\n': MARKS.lineBreak,
  ' ': MARKS.blank,
  '\t': MARKS.blank,
  '`': MARKS.backtick,
  '[': MARKS.openBracket,
  ']': MARKS.closeBracket,
  '(': MARKS.openParen,
  ')': MARKS.closeParen,
  '"': MARKS.quote,
};

/** Each id's mark, for nestingAfter(); built once per vocabulary. */
export const nestingMarks = oncePerVocabulary((vocabulary) =>
  Uint8Array.from(vocabulary.chars, (char) => MARKED[char] ?? 0),
);

/** The spans, a bit each. */
const IN_CODE = 1;
const IN_LINK_TEXT = 2;
const IN_LINK_TARGET = 4;
const IN_PARENTHESES = 8;
const IN_QUOTES = 16;
const IN_FENCE = 32;
/** How many values nestingOf() takes. */
export const NESTINGS = 64;
/**
 * Kept beside the spans, to follow them: a link's text has just closed; the line has had more than blanks and
 * backticks; the backticks in a row, above.
 */
const AFTER_LINK_TEXT = 64;
const LINE_BEGUN = 128;
const TICKS_SHIFT = 8;
const FENCE_TICKS = 3;

/** The spans that `kept` (0 where a text begins) stands for: 0 outside every span, else below NESTINGS. */
export const nestingOf = (kept: number): number => kept & (NESTINGS - 1);

/** What is kept after a character of mark `mark` (nestingMarks), from what was kept before it. */
export function nestingAfter(kept: number, mark: number): number {
  let spans = kept & 0xff;
  // Counted one past a fence's, so that the backticks after the third (a fence of four or six) open or close nothing more.
  const ticks = mark === MARKS.backtick ? Math.min(FENCE_TICKS + 1, (kept >>> TICKS_SHIFT) + 1) : 0;
  if (mark !== MARKS.blank && mark !== MARKS.backtick) spans |= LINE_BEGUN;
  if (mark !== MARKS.openParen) spans &= ~AFTER_LINK_TEXT;
  switch (mark) {
    case MARKS.lineBreak:
      spans &= IN_FENCE;
      break;
    case MARKS.backtick:
      spans ^= IN_CODE;
      if (ticks === FENCE_TICKS && !(spans & LINE_BEGUN)) spans = (spans ^ IN_FENCE) & ~IN_CODE;
      break;
    case MARKS.openBracket:
      spans |= IN_LINK_TEXT;
      break;
    case MARKS.closeBracket:
      spans = (spans & ~IN_LINK_TEXT) | AFTER_LINK_TEXT;
      break;
    case MARKS.openParen:
      spans = (spans & ~AFTER_LINK_TEXT) | (spans & AFTER_LINK_TEXT ? IN_LINK_TARGET : IN_PARENTHESES);
      break;
    case MARKS.closeParen:
      spans &= spans & IN_LINK_TARGET ? ~IN_LINK_TARGET : ~IN_PARENTHESES;
      break;
    case MARKS.quote:
      spans ^= IN_QUOTES;
      break;
  }
  return spans | (ticks << TICKS_SHIFT);
}
