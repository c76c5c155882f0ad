// Completion search, stopping, confidence and state caching, against a hand-written character
// model whose probabilities are known exactly, so each expectation can be worked out by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { complete } from '../completion/complete';
import { COMPLETION_DEFAULTS, CompletionOptions, CompletionSite } from '../completion/options';
import { DocumentNgram } from '../completion/document-ngram';
import { DocumentStates } from '../completion/document-states';
import { seededRandom } from '../model/random';
import { DOCUMENT_NGRAM_WINDOW, emptyNotesNgram, MixturePredictor, priorMixer } from '../model/mixture';
import { OpenerReader } from '../model/paragraph-openers';
import type { Predictor } from '../model/predictor';
import { Vocabulary } from '../model/vocab';

/**
 * Text is words from a lexicon (word → probability) separated by single spaces. Inside a word,
 * the next character's probability is the share of the lexicon words that continue the typed
 * prefix with it; a space ends a word. A little probability mass is spread over every character so
 * that no path is impossible, as with a real model, and inside a word the lexicon does not know,
 * every character is equally likely.
 *
 * After a lexicon word the model has no idea what comes next either, unless it is told that words
 * repeat: a search would run on past a word whose successor is sure, and most of these tests are
 * about one word.
 */
class LexiconModel {
  readonly vocabulary = Vocabulary.fromText("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.;:!?'\n", 100);
  /** Model steps taken, counting each batch row. */
  steps = 0;
  private readonly contexts: string[] = [];

  constructor(
    private readonly lexicon: Record<string, number>,
    private readonly wordsRepeat = false,
    private readonly noise = 1e-4,
  ) {}

  zeroState(): Float32Array {
    return this.state('');
  }

  step(states: Float32Array[], ids: ArrayLike<number>) {
    return states.map((s, b) => {
      this.steps++;
      const context = this.contexts[s[0]] + this.vocabulary.chars[ids[b]];
      return { state: this.state(context), logProbs: this.distribution(context) };
    });
  }

  private state(context: string): Float32Array {
    this.contexts.push(context);
    return Float32Array.of(this.contexts.length - 1);
  }

  protected distribution(context: string): Float32Array {
    const [, previous, partial] = /(?:(\S+)\s+)?(\S*)$/u.exec(context)!;
    const next = new Map<string, number>();
    const afterWord = previous !== undefined && previous in this.lexicon && !this.wordsRepeat;
    for (const [word, p] of Object.entries(this.lexicon)) {
      if (!word.startsWith(partial)) continue;
      const char = word.length > partial.length ? word[partial.length] : ' ';
      next.set(char, (next.get(char) ?? 0) + p);
    }
    const V = this.vocabulary.size;
    // A word the model has never seen, or what follows a word: it has no idea what comes next.
    if (next.size === 0 || afterWord)
      return Float32Array.from(this.vocabulary.chars, (_, id) => (id === 0 ? -Infinity : -Math.log(V - 1)));
    const total = [...next.values()].reduce((a, b) => a + b, 0);
    return Float32Array.from(this.vocabulary.chars, (c, id) =>
      Math.log((id === 0 ? 0 : this.noise / (V - 1)) + (1 - this.noise) * ((next.get(c) ?? 0) / total)),
    );
  }
}

const predictorOf = (model: LexiconModel) => model as unknown as Predictor;

async function completeAfter(
  model: LexiconModel,
  text: string,
  options: Partial<CompletionOptions> = {},
  site: CompletionSite = {},
) {
  const states = new DocumentStates(predictorOf(model));
  const snapshot = (await states.at(text, text.length))!;
  return complete(
    predictorOf(model),
    snapshot,
    { ...COMPLETION_DEFAULTS, minConfidence: 0, ...options },
    undefined,
    site,
  );
}

test('beam search offers the completion that saves the most keystrokes in expectation', async () => {
  // Words end with a space here, and the keys saved count as (length - 1)^0.7. "and" is sure and
  // saves 2 keys (1.62); "and " is right with P 0.6 and saves 3 (0.6 x 2.16 = 1.29); "andromeda "
  // with P 0.4 and saves 9 (0.4 x 4.66 = 1.86). Mean per-character probability would have
  // preferred "and", which is certain.
  const model = new LexiconModel({ and: 0.6, andromeda: 0.4 });
  const found = await completeAfter(model, 'so ');
  assert.equal(found?.text, 'andromeda ');
  assert.ok(
    Math.abs(found!.confidence - 0.4) < 0.01,
    `confidence is the chance the whole completion is right, got ${found!.confidence}`,
  );

  // In expectation "andromeda " at P 0.3 would save 2.7 keys against the 2 of "and"; discounted, the
  // sure "and" is worth more (1.62 against 1.40), since the next suggestion carries on from it.
  const closer = await completeAfter(new LexiconModel({ and: 0.7, andromeda: 0.3 }), 'so ');
  assert.equal(closer?.text, 'and');

  const likelier = await completeAfter(new LexiconModel({ and: 0.8, andromeda: 0.2 }), 'so ');
  assert.equal(likelier?.text, 'and ', 'at P 0.2, andromeda is worth 0.93, less than the 1.73 of "and "');
});

test('minConfidence offers the best completion that is sure enough, not nothing', async () => {
  const model = new LexiconModel({ and: 0.8, andromeda: 0.2 });
  assert.equal((await completeAfter(model, 'so ', { minConfidence: 0.5 }))?.text, 'and ');
  assert.equal(
    (await completeAfter(model, 'so ', { minConfidence: 0.9 }))?.text,
    'and',
    '"and" is a prefix of both words: P 1',
  );
  assert.equal((await completeAfter(model, 'so andr', { minConfidence: 0.5 }))?.text, 'omeda ');
  assert.equal(await completeAfter(new LexiconModel({ and: 0.5, but: 0.5 }), 'so ', { minConfidence: 0.6 }), undefined);
});

test('asked for the other suggestions, beam search keeps on the beams that could make one, down to a quarter of minConfidence', async () => {
  // "abc " is worth 0.75 × 3^0.7 = 1.62. Under maxChars 12, "abd…" at P 0.2 could reach no more than
  // 0.2 × 11^0.7 = 1.07, so the plain search drops it once "abc " is offered, having offered only "abd";
  // "abacus" at P 0.05 is below minConfidence. Asked for the alternatives, the search goes on while
  // there are fewer distinct ones than beams, down to P 0.025, and offers both whole words.
  const model = new LexiconModel({ abc: 0.75, abdominally: 0.2, abacus: 0.05 });
  const options = { maxChars: 12, minConfidence: 0.1 };
  const plain = await completeAfter(model, 'so ', options);
  const wanted = await completeAfter(model, 'so ', options, { alternativesWanted: true });
  assert.equal(plain?.text, 'abc ');
  assert.equal(wanted?.text, 'abc ', 'the best is the same');
  assert.deepEqual(
    plain?.alternatives?.map((a) => a.text),
    ['abd'],
  );
  assert.deepEqual(
    wanted?.alternatives?.map((a) => a.text),
    ['abdominally ', 'abacus '],
  );
  assert.ok(Math.abs(wanted!.alternatives![1].confidence - 0.05) < 0.005);
  // The best itself still needs minConfidence: of twelve words as likely, none is 10% likely.
  const tenWords = Object.fromEntries(
    ['ant', 'bee', 'cat', 'dog', 'eel', 'fox', 'gnu', 'hen', 'ibis', 'jay', 'kite', 'lynx'].map((w) => [w, 1 / 12]),
  );
  const unsure = await completeAfter(new LexiconModel(tenWords), 'so ', options, { alternativesWanted: true });
  assert.equal(unsure, undefined);
});

test('a one-character completion saves nothing and is not offered', async () => {
  const model = new LexiconModel({ x: 1 });
  assert.equal((await completeAfter(model, 'so ', { maxChars: 2 }))?.text, 'x ');
  assert.equal(await completeAfter(model, 'so ', { maxChars: 1 }), undefined);
});

test('accepting a completion costs no model steps: the search already computed those states', async () => {
  const model = new LexiconModel({ quick: 0.6, quiet: 0.4 });
  const predictor = predictorOf(model);
  const states = new DocumentStates(predictor);
  const text = 'the qu';
  const found = (await complete(predictor, (await states.at(text, text.length))!, {
    ...COMPLETION_DEFAULTS,
    minConfidence: 0,
  }))!;
  assert.equal(found.text, 'ick ');
  states.expect(text.length, found);
  const accepted = text + found.text;
  const before = model.steps;
  const snapshot = (await states.at(accepted, accepted.length))!;
  assert.equal(model.steps - before, 1, 'after accepting, only the space, which the search did not step, is fed');
  // The reused state is the one a fresh start reaches.
  const fresh = (await new DocumentStates(predictor).at(accepted, accepted.length))!;
  assert.deepEqual(Array.from(snapshot.logProbs), Array.from(fresh.logProbs));

  // Typing something else feeds the model as usual.
  const other = new DocumentStates(predictor);
  await other.at(text, text.length);
  other.expect(text.length, found);
  const stepsBefore = model.steps;
  await other.at('the quie', 8);
  assert.equal(model.steps - stepsBefore, 1, 'the "i" the search computed is reused, the "e" is fed');
});

test('a completion ends with the word’s separator only when the model is sure enough that it pays', async () => {
  // After "lord" the separator is the space with P 0.9: "rd " is right 90% of the time and saves
  // 2 keys (1.8), more than the 1 of "rd".
  assert.equal((await completeAfter(new LexiconModel({ lord: 0.9, 'lord,': 0.1 }), 'my lo'))?.text, 'rd ');
  // "rd," saves 2 keys at P 0.7 (1.14); the space after the comma is sure, and "rd, " saves 3 (1.51).
  assert.equal((await completeAfter(new LexiconModel({ lord: 0.3, 'lord,': 0.7 }), 'my lo'))?.text, 'rd, ');
  // Torn between three separators, none pays: 0.45 × 2 < 1.
  assert.equal(
    (await completeAfter(new LexiconModel({ lord: 0.45, 'lord,': 0.45, 'lord.': 0.1 }), 'my lo'))?.text,
    'rd',
  );
});

test('under stopAt word a completion runs on past the word only while the model is sure of all of it', async () => {
  // "and " is 75% likely, so the search may cross into the next word; "and and " is 56%, too
  // little to cross again, and worth more (0.56 × 7^0.7 = 2.19) than "and " (0.75 × 3^0.7 = 1.62).
  assert.equal((await completeAfter(new LexiconModel({ and: 0.75, x: 0.25 }, true), 'so '))?.text, 'and and ');
  assert.equal((await completeAfter(new LexiconModel({ and: 0.65, x: 0.35 }, true), 'so '))?.text, 'and ');
  const sure = new LexiconModel({ the: 1 }, true);
  assert.equal((await completeAfter(sure, 'so ', { maxChars: 12 }))?.text, 'the the the ');
  // maxChars cutting a later word leaves it out rather than show "the the th"; a first word stays.
  assert.equal((await completeAfter(sure, 'so ', { maxChars: 10 }))?.text, 'the the ');
  assert.equal((await completeAfter(sure, 'so ', { maxChars: 10, stopAt: 'none' }))?.text, 'the the ');
  assert.equal((await completeAfter(new LexiconModel({ thereupon: 1 }), 'so ', { maxChars: 5 }))?.text, 'there');
  assert.equal(
    (await completeAfter(sure, 'so ', { maxChars: 12, stopAt: 'none' }))?.text,
    'the the the ',
    'stopAt none runs on in any case',
  );
  // A line's end is never crossed under word or line, though a completion may end with it.
  const lines = new LexiconModel({ 'the\n': 1 }, true);
  assert.equal((await completeAfter(lines, 'so '))?.text, 'the\n');
  assert.equal((await completeAfter(lines, 'so ', { stopAt: 'line' }))?.text, 'the\n');
  assert.equal((await completeAfter(lines, 'so ', { stopAt: 'none', maxChars: 7 }))?.text, 'the\nthe');
});

test('a punctuation mark the model is unsure of still takes the line break or space it is sure follows it', async () => {
  // Who speaks is a toss-up; the colon and the line break after the name are sure. "truchio:⏎" is
  // worth 0.5 × 8^0.7 = 2.14, more than "truchio:" (1.95) and "truchio" (1.76). Its colon, at P 0.5
  // of the whole, is too unsure for the search to run past the word within its width, so the mark
  // is stepped once more, outside it.
  const speakers = new LexiconModel({ 'petruchio:\n': 0.5, 'pedant:\n': 0.5 });
  assert.equal((await completeAfter(speakers, 'so pe'))?.text, 'truchio:\n');
  assert.equal(
    (await completeAfter(speakers, 'so pe', { maxChars: 8 }))?.text,
    'truchio:',
    'the line break is a character too',
  );
  const commas = new LexiconModel({ 'sir,': 0.5, 'sirrah,': 0.5 });
  assert.equal((await completeAfter(commas, 'so si'))?.text, 'rrah, ');
});

test('where the line goes on after the cursor, the search offers the best completion without a line break', async () => {
  // "a:⏎" is worth 0.8 × 2^0.7 = 1.30 and "edanticallyish " 0.2 × 14^0.7 = 1.27, but "a:" only 0.8 × 1.
  // Leaving the line break off the search's choice would offer "a:"; the search finds the better one.
  const model = new LexiconModel({ 'pa:\n': 0.8, pedanticallyish: 0.2 });
  assert.equal((await completeAfter(model, 'so p'))?.text, 'a:\n');
  assert.equal((await completeAfter(model, 'so p', {}, { lineGoesOn: true }))?.text, 'edanticallyish ');
});

test('sampling ends a line it wrote with the line break drawn, unless the line goes on after the cursor', async () => {
  const model = new LexiconModel({ 'pa:\n': 1 });
  const sampling = { mode: 'sample' as const, temperature: 0.05, stopAt: 'line' as const };
  assert.equal((await completeAfter(model, 'so p', sampling))?.text, 'a:\n');
  assert.equal((await completeAfter(model, 'so p', sampling, { lineGoesOn: true }))?.text, 'a:');
  assert.equal((await completeAfter(model, 'so p', { ...sampling, stopAt: 'none', maxChars: 3 }))?.text, 'a:\n');
  const word = new LexiconModel({ 'pal\n': 1 });
  assert.equal((await completeAfter(word, 'so p', { ...sampling, stopAt: 'word' }))?.text, 'al\n');
  const blank = new LexiconModel({ '\n': 1 });
  assert.equal(
    (await completeAfter(blank, 'so ', { ...sampling, minConfidence: 0 }))?.text,
    undefined,
    'a line break alone is no completion',
  );
});

/** Follows a script: after the longest end of the context that the script holds, the character that came next there. */
class ScriptModel extends LexiconModel {
  constructor(private readonly script: string) {
    super({});
  }

  protected override distribution(context: string): Float32Array {
    let next: string | undefined;
    for (let length = Math.min(context.length, 8); length > 0 && next === undefined; length--) {
      const at = this.script.indexOf(context.slice(-length));
      if (at >= 0 && at + length < this.script.length) next = this.script[at + length];
    }
    const V = this.vocabulary.size;
    return Float32Array.from(this.vocabulary.chars, (c, id) =>
      id === 0 ? -Infinity : Math.log(1e-4 / (V - 1) + (1 - 1e-4) * (c === next ? 1 : 0)),
    );
  }
}

test('on an empty line below a written one, a completion may begin with the line break that opens a paragraph', async () => {
  const model = new ScriptModel('so\n\npetruchio:\nno');
  const opening = { opensParagraph: true };
  assert.equal((await completeAfter(model, 'so\n', {}, opening))?.text, '\npetruchio:\n');
  assert.equal(
    (await completeAfter(model, 'so\n', { mode: 'sample', temperature: 0.05 }, opening))?.text,
    '\npetruchio',
  );
  assert.doesNotMatch((await completeAfter(model, 'so\n'))?.text ?? '', /^\n/u, 'elsewhere no completion begins so');
  const twice = await completeAfter(new ScriptModel('so\n\n\npetruchio'), 'so\n', {}, opening);
  assert.doesNotMatch(twice?.text ?? '', /^\n\n/u, 'one line break at most');
});

/**
 * Completes at the end of text as a model directory without ngram.bin serves: the model mixed with
 * an empty notes' n-gram and the document's own n-gram by the prior gate.
 */
async function completeInDocument(model: LexiconModel, text: string, options: Partial<CompletionOptions> = {}) {
  const document = new DocumentNgram(model.vocabulary);
  document.update(text, text.length);
  const parts = {
    vocabulary: model.vocabulary,
    lstm: predictorOf(model),
    notes: emptyNotesNgram(model.vocabulary.size),
    mixer: priorMixer(),
  };
  const predictor = new MixturePredictor(parts, document);
  const snapshot = (await new DocumentStates(predictor).at(text, text.length))!;
  return complete(predictor, snapshot, { ...COMPLETION_DEFAULTS, minConfidence: 0, ...options });
}

test('words used earlier in the document complete even when the model has never seen them', async () => {
  // The model only knows "the"; the document has used "glorp" twice.
  const model = new LexiconModel({ the: 1 });
  assert.match((await completeInDocument(model, 'the glorp the glorp the gl'))?.text ?? '', /^orp/);
  assert.doesNotMatch(
    (await completeInDocument(model, 'the the the the the gl'))?.text ?? '',
    /^orp/,
    'without earlier uses, nothing suggests it',
  );
});

test('a word in another script completes once the document has used it, though the vocabulary lacks its characters', async () => {
  const model = new LexiconModel({ the: 1 });
  const text = 'the 栈帧 is here. the 栈帧 is there. the 栈';
  assert.match((await completeInDocument(model, text))?.text ?? '', /^帧/u, 'by beam search');
  const sampled = await completeInDocument(model, text, { mode: 'sample', temperature: 0.05 });
  assert.match(sampled?.text ?? '', /^帧/u, 'by sampling');
  assert.doesNotMatch(
    (await completeInDocument(model, 'the is here. the is there. the '))?.text ?? '',
    /\uFFFD/u,
    'nothing names a character the document has not shown',
  );
});

test('the word that followed the previous word before is suggested at the start of the next one', async () => {
  const model = new LexiconModel({ the: 0.5, a: 0.5 });
  const text = 'my zorblax, a the my zorblax. the a the my ';
  assert.match((await completeInDocument(model, text))?.text ?? '', /^zorbl/);
  // After another word, the model's own guess stands.
  assert.doesNotMatch(
    (await completeInDocument(model, 'my zorblax, a the my zorblax. the a the a '))?.text ?? '',
    /^z/,
  );
});

test('a paragraph’s first word follows the first word of the paragraph before: who speaks next in a dialogue', async () => {
  const model = new LexiconModel({ the: 1 });
  const dialogue = 'alice said the\n\nbob said the\n\n'.repeat(3);
  assert.match((await completeInDocument(model, dialogue + 'alice said the\n\n'))?.text ?? '', /^bob /);
  assert.match((await completeInDocument(model, dialogue))?.text ?? '', /^alice /);
  assert.match((await completeInDocument(model, dialogue + 'b'))?.text ?? '', /^ob /);
});

test('the openers of paragraphs are read as a sequence: first word and the character after it, blank lines and indentation left out', () => {
  const vocabulary = Vocabulary.fromText('Hi there\nBOB: yes\n #Title one', 100);
  const reader = new OpenerReader(vocabulary, 11);
  const slot = new Float32Array(reader.size);
  reader.start(slot);
  let sequence = '';
  const read = (text: string) => {
    for (const id of vocabulary.encode(text)) reader.read(slot, id, (opener) => (sequence += vocabulary.chars[opener]));
  };
  read('Hi there\n\n');
  assert.equal(sequence, 'Hi \n');
  const atStart = reader.context(slot);
  assert.equal(atStart && vocabulary.decode(atStart.ids), 'Hi \n', 'at a paragraph’s start');
  assert.equal(atStart?.typed, 0);
  read('BO');
  const inOpener = reader.context(slot);
  assert.equal(inOpener && vocabulary.decode(inOpener.ids), 'Hi \nBO');
  assert.equal(inOpener?.typed, 2);
  read('B: yes\n  \n  # Title one\nmore\n');
  assert.equal(sequence, 'Hi \nBOB:\n# Title \n');
  assert.equal(reader.context(slot), undefined, 'past the opener');
  assert.equal(vocabulary.decode(reader.tail(slot)), 'BOB:\n# Title \n'.slice(-11), 'the sequence’s last characters');
});

test('the document n-gram reads at most its window: on first use, after an earlier edit, after a jump forward, and while typing on', () => {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const vocabulary = Vocabulary.fromText(letters, 100);
  const random = seededRandom(5);
  // Random letters: nearly every position adds n-grams of its own, so the node count says how much text was read. Six
  // of them, so that twice the window stays within the node bound, and pruning does not blur the count.
  const text = Array.from({ length: 6 * DOCUMENT_NGRAM_WINDOW }, () => letters[Math.floor(random() * 6)]).join('');
  const nodesOver = (source: string, from: number, to: number) => {
    const fresh = new DocumentNgram(vocabulary);
    fresh.update(source.slice(from, to), to - from);
    return fresh.model.size;
  };
  const end = text.length;
  const document = new DocumentNgram(vocabulary);
  document.update(text, end);
  assert.equal(document.model.size, nodesOver(text, end - DOCUMENT_NGRAM_WINDOW, end), 'first use');
  const at = end - 100;
  const edited = text.slice(0, at) + (text[at] === 'a' ? 'b' : 'a') + text.slice(at + 1);
  document.update(edited, end);
  assert.equal(document.model.size, nodesOver(edited, end - DOCUMENT_NGRAM_WINDOW, end), 'an edit before the cursor');
  document.update(text, 5_000);
  document.update(text, end);
  assert.equal(document.model.size, nodesOver(text, end - DOCUMENT_NGRAM_WINDOW, end), 'a jump forward');
  const onward = new DocumentNgram(vocabulary);
  // The windows typing on holds are other stretches of the same length, which hold a few more or fewer n-grams.
  const most = 1.02 * nodesOver(text, 0, 2 * DOCUMENT_NGRAM_WINDOW);
  let largest = 0;
  for (let cursor = 0; cursor <= 3 * DOCUMENT_NGRAM_WINDOW; cursor += 7) {
    onward.update(text, cursor);
    largest = Math.max(largest, onward.model.size);
  }
  assert.ok(largest <= most, `typing on grew the n-gram to ${largest} nodes, more than ${most} for twice its window`);
  assert.ok(
    largest > nodesOver(text, 0, DOCUMENT_NGRAM_WINDOW),
    'typing on adds to the n-gram rather than rebuilding it',
  );
});

test('a suggestion the user typed past instead of accepting is demoted, not banned', async () => {
  const torn = new LexiconModel({ quick: 0.6, quiet: 0.4 });
  assert.equal((await completeAfter(torn, 'the q'))?.text, 'uick ');
  // "quick" was shown at "the " and the user typed "q": everything that starts with "uick" is at
  // a quarter of its odds, and "uiet " saves more.
  assert.equal(
    (await completeAfter(torn, 'the q', {}, { passedOver: { text: 'uick', logP: Math.log(0.6) } }))?.text,
    'uiet ',
  );
  const sure = new LexiconModel({ quick: 0.9, quiet: 0.1 });
  assert.equal(
    (await completeAfter(sure, 'the q', {}, { passedOver: { text: 'uick', logP: Math.log(0.9) } }))?.text,
    'uick ',
    'a much likelier suggestion stays',
  );
  // A suggestion that ran on past its word, "and the", was passed over. Where the run-on was
  // unlikely, that says little against "and " alone, which stays; not knowing how likely it was,
  // the search takes it against "and " in full, and "ant " saves more.
  const phrase = new LexiconModel({ and: 0.7, ant: 0.3 });
  assert.equal(
    (await completeAfter(phrase, 'so a', {}, { passedOver: { text: 'nd the', logP: Math.log(0.05) } }))?.text,
    'nd ',
  );
  assert.equal((await completeAfter(phrase, 'so a', {}, { passedOver: { text: 'nd the' } }))?.text, 'nt ');
});
