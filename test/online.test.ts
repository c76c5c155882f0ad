// The online parts of the served mixture: the match model, the online stage that learns from what is typed, and the
// notes' text kept for the match model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MATCH_MIN_LENGTH,
  MATCH_STATE_SIZE,
  MATCH_LONG_LENGTH,
  MatchModel,
  matchNodeProbabilities,
} from '../model/match-model';
import { OnlineInputs, OnlineMixer } from '../model/online-mixer';
import { AboveModel, advanceLines, characterAbove, LINE_KEPT, LINES_STATE_SIZE } from '../model/line-above';
import { AnchorGuesser } from '../model/heading-anchor';
import { EchoConfidence, type EchoGuess, TokenEcho } from '../model/token-echo';
import { loadServedModel, type ServedModel } from '../model/served';
import { NgramModel } from '../model/ngram';
import { saveNgram } from '../model/ngram-format';
import { learnNotesContexts, NOTES_CONTEXTS_FILE, NOTES_TEXT_FILE, saveNotesContexts } from '../model/notes-text';
import { seededRandom } from '../model/random';
import { Vocabulary } from '../model/vocab';
import { WORD_STATE_SIZE } from '../model/word-model';
import { idBits } from '../model/logistic';
import { CompletionSession } from '../completion/session';
import { DOCUMENT_MATCH_MAX_HISTORY, DocumentNgram } from '../completion/document-ngram';
import { DOCUMENT_NGRAM_WINDOW, newLastStage } from '../model/mixture';
import { CARRIED_MIXING_FILE, CarriedMixing } from '../model/carried-mixing';
import { DocumentStates } from '../completion/document-states';
import { complete } from '../completion/complete';
import { COMPLETION_DEFAULTS } from '../completion/options';
import { documentPredictor } from '../model/served';
import { scoreAsTyped } from '../completion/score';
import { randomModel } from './support/random-model';
import { tempModelDir } from './support/temp-dirs';

const vocabulary = Vocabulary.fromText('abcdefghijklmnopqrstuvwxyz .:/-_0123456789\n', 100);

/** A match model fed text as a document is typed: each character is appended, then the slot moves past it. */
function typeInto(match: MatchModel, text: string): Array<{ char: string; predicted: string; length: number }> {
  const slot = new Float32Array(MATCH_STATE_SIZE);
  match.startSlot(slot);
  const ids = vocabulary.encode(text);
  const out = { id: -1, length: 0 };
  return Array.from(ids, (id, i) => {
    match.predict(slot, out);
    const seen = {
      char: vocabulary.chars[id],
      predicted: out.length > 0 ? vocabulary.chars[out.id] : '',
      length: out.length,
    };
    match.append([id]);
    match.advance(slot, ids.subarray(0, i + 1), id);
    return seen;
  });
}

test('the match model follows a repeat to its end, however long, and lets go when the history starts afresh', () => {
  const url = 'https://example.org/some/long/path_with_parts/and-more/0123456789';
  const match = new MatchModel();
  const first = `see ${url} here\nand more text\n`;
  typeInto(match, first);
  const seen = typeInto(match, `now ${url} again`).slice(0, 4 + url.length);
  const start = seen.findIndex((s) => s.length > 0);
  assert.ok(start >= MATCH_MIN_LENGTH - 1 && start <= 4 + MATCH_MIN_LENGTH, `the match starts at ${start}`);
  for (let i = start; i < seen.length; i++) {
    assert.equal(seen[i].predicted, seen[i].char, `position ${i} of the repeat`);
    if (i > start) assert.equal(seen[i].length, seen[i - 1].length + 1, 'the match grows by one each character');
  }
  assert.ok(seen[seen.length - 1].length > 50, 'far longer than any n-gram');

  match.reset();
  typeInto(match, 'nothing alike at all');
  assert.ok(
    typeInto(match, `now ${url}`).every((s) => s.length === 0),
    'a history started afresh predicts nothing of the old one',
  );
});

test('a match found afresh follows the last repeat of the longer context, else of the short one', () => {
  const next = (history: string, context: string) => {
    const match = new MatchModel();
    match.append(vocabulary.encode(history));
    const slot = new Float32Array(MATCH_STATE_SIZE);
    match.startSlot(slot);
    const ids = vocabulary.encode(context);
    match.advance(slot, ids, ids[ids.length - 1]);
    const out = match.predict(slot, { id: -1, length: 0 });
    return out.length > 0 ? vocabulary.chars[out.id] : '';
  };
  const history = 'abcdefghijk 0fghijq ';
  assert.equal(MATCH_LONG_LENGTH, 10);
  assert.equal(next(history, 'abcdefghij'), 'k', 'all ten agree further back');
  assert.equal(next(history, 'zzzzzfghij'), 'q', 'only the last five agree: the latest repeat of them');
  assert.equal(next(history, 'fghij'), 'q');
  assert.equal(next(history, 'zzzzzzghij'), '', 'four agree: no match');
});

test('the text being typed finds its previous occurrence, not itself', () => {
  const seen = typeInto(new MatchModel(), 'abcdefgh xyz abcdefgh ');
  assert.equal(seen[seen.length - 1].predicted, ' ', 'after the second "abcdefgh" comes what followed the first');
  assert.ok(
    seen.slice(0, 13).every((s) => s.length === 0),
    'nothing is predicted from the text itself',
  );
});

test('a repeat with one character changed is followed again after it, at the length it had; two changes close together let it go', () => {
  const line = 'const timeoutMilliseconds = computeTimeout(request, defaults);\n';
  const changed = line.replace('request', 'reqvest');
  const seen = typeInto(new MatchModel(), `${line}other words here\n${changed}`).slice(-changed.length);
  const changedAt = changed.indexOf('v');
  assert.equal(seen[changedAt].predicted, 'u', 'the match guesses the old character');
  assert.equal(seen[changedAt + 1].length, 0, 'the character after the change is not guessed');
  for (let i = changedAt + 2; i < changed.length; i++) {
    assert.equal(seen[i].predicted, seen[i].char, `position ${i} after the change`);
    assert.ok(seen[i].length > changedAt, 'the match keeps the length it had before the change');
  }

  const twice = line.replace('request', 'rexuesx');
  const after = typeInto(new MatchModel(), `${line}other words here\n${twice}`).slice(-twice.length);
  const firstAt = twice.indexOf('x');
  const secondAt = twice.indexOf('x', firstAt + 1);
  assert.equal(after[firstAt + 2].predicted, 'e', 'recovered after the first change');
  assert.equal(after[secondAt].predicted, 't');
  assert.ok(
    after.slice(secondAt + 1, secondAt + 1 + MATCH_MIN_LENGTH).every((s) => s.length === 0),
    'a second change before the recovery settles gives the match up until the text repeats afresh',
  );
});

test("the character above is the line before's at the same column, where that line is as long", () => {
  const lineBreak = vocabulary.id('\n');
  const slot = new Float32Array(LINES_STATE_SIZE);
  const type = (text: string) => {
    for (const id of vocabulary.encode(text)) advanceLines(slot, id, lineBreak);
  };
  const above = () => {
    const id = characterAbove(slot);
    return id < 0 ? '' : vocabulary.chars[id];
  };
  assert.equal(above(), '', 'nothing above the first line');
  type('ab:cd\n');
  assert.equal(above(), 'a');
  type('xy');
  assert.equal(above(), ':');
  type('zzz');
  assert.equal(above(), '', 'past the end of the line before');
  type('\n');
  assert.equal(above(), 'x', 'the line just ended is the one above');
  type(`\n${'a'.repeat(LINE_KEPT + 5)}\n`);
  type('a'.repeat(LINE_KEPT - 1));
  assert.equal(above(), 'a', 'a long line is kept to LINE_KEPT');
  type('a');
  assert.equal(above(), '', 'and past it has nothing above');
});

test('what came below a character after another is learnt per row, each node toward the ids that came', () => {
  const model = new AboveModel(vocabulary);
  const lineBreak = vocabulary.id('\n');
  const slot = new Float32Array(LINES_STATE_SIZE);
  for (const id of vocabulary.encode('| a | b |\n| c ')) advanceLines(slot, id, lineBreak);
  const row = model.rowAt(slot, vocabulary.id(' '));
  assert.ok(row >= 0, 'a "|" is above');
  const pipe = vocabulary.id('|');
  const probabilityOf = (id: number) => {
    const nodes = model.nodesOf(row);
    const bits = Math.log2(nodes.length);
    let p = 1;
    let node = 1;
    for (let depth = bits - 1; depth >= 0; depth--) {
      const bit = (id >>> depth) & 1;
      p *= bit ? nodes[node] : 1 - nodes[node];
      node = 2 * node + bit;
    }
    return p;
  };
  const before = probabilityOf(pipe);
  for (let i = 0; i < 5; i++) model.learn(row, pipe);
  assert.ok(probabilityOf(pipe) > 0.7 && before < 0.02, `P("|") ${before} → ${probabilityOf(pipe)}`);
  const other = model.rowAt(slot, vocabulary.id('c'));
  assert.notEqual(other, row);
  assert.ok(
    model.nodesOf(other).every((p) => p === 0.5),
    'another row learns nothing',
  );
  assert.equal(model.rowAt(new Float32Array(LINES_STATE_SIZE), -1), -1, 'no row where nothing is above');
  const belowLetter = new Float32Array(LINES_STATE_SIZE);
  for (const id of vocabulary.encode('| a | b |\n| ')) advanceLines(belowLetter, id, lineBreak);
  assert.equal(characterAbove(belowLetter), vocabulary.id('a'));
  assert.equal(model.rowAt(belowLetter, vocabulary.id(' ')), -1, 'no row below a letter');
});

test("a link to a heading spells its anchor from the link's text, lowercased, spaces as hyphens, punctuation dropped", () => {
  const markdown = Vocabulary.fromText('abcdefghijklmnopqrstuvwxyzGS `.-_()[]#\n', 100);
  const guesser = new AnchorGuesser(markdown);
  const guessAfter = (text: string) => {
    const slot = new Float32Array(LINES_STATE_SIZE);
    for (const id of markdown.encode(text)) advanceLines(slot, id, markdown.id('\n'));
    const guess = guesser.guess(slot);
    return guess < 0 ? undefined : markdown.chars[guess];
  };
  const link = '- [Getting `a.b` Started_now](#getting-ab-started_now)';
  const anchorAt = link.indexOf('#') + 1;
  for (let i = anchorAt; i < link.length; i++)
    assert.equal(guessAfter(`# toc\n${link.slice(0, i)}`), link[i], `after ${JSON.stringify(link.slice(0, i))}`);
  assert.equal(guessAfter(link), undefined, 'nothing after the link');
  assert.equal(guessAfter('[Getting Started](#getting-x'), undefined, 'an anchor that strays from the text');
  assert.equal(guessAfter('[Getting Started](#getting-started'), ')');
  assert.equal(guessAfter('Getting Started](#'), undefined, 'no link text');
  assert.equal(guessAfter('[Getting Started](https'), undefined, 'not an anchor');
  assert.equal(guessAfter('[Getting\nStarted](#'), undefined, 'a link across lines is not read');
});

test('a token typed again on its line or just below goes on as the last one there that begins the same', () => {
  const markdown = Vocabulary.fromText('abcdefghijklmnopqrstuvwxyzAB0123456789_ #()[]/.-\n', 100);
  const echo = new TokenEcho(markdown);
  const guessAfter = (text: string) => {
    const slot = new Float32Array(LINES_STATE_SIZE);
    for (const id of markdown.encode(text)) advanceLines(slot, id, markdown.id('\n'));
    const guess: EchoGuess = { id: 0, typed: 0, before: 0, folded: false, number: false };
    echo.guess(slot, guess);
    return guess.typed === 0 ? undefined : `${guess.folded ? '~' : ''}${guess.typed}:${markdown.chars[guess.id]}`;
  };
  const link = '[#383](https://github.com/babel/babylon/pull/383)';
  const number = link.lastIndexOf('383');
  for (let i = number + 1; i < number + 3; i++)
    assert.equal(guessAfter(link.slice(0, i)), `${i - number}:${link[i]}`, `after ${JSON.stringify(link.slice(0, i))}`);
  assert.equal(guessAfter(link.slice(0, number + 3)), undefined, 'where the earlier token ended, nothing');
  assert.equal(guessAfter(link.slice(0, number)), undefined, 'nothing before a token is typed');
  assert.equal(guessAfter('release 1.44.0\nsee 1.4'), '1:4');
  assert.equal(guessAfter('call foo_bar(x) and foo_bz(y) then foo_b'), '5:z', 'the last token that begins the same');
  assert.equal(
    guessAfter('the Abc and ab'),
    '~2:c',
    'one that begins the same but for case, where none begins as typed',
  );
  assert.equal(guessAfter('AbBa then ab'), '~2:b', 'in the case of what is typed: lower');
  assert.equal(guessAfter('abba then AB'), '~2:B', 'or upper');
  assert.equal(guessAfter('abx Abz ab'), '2:x', 'one that begins as typed first');
  assert.equal(guessAfter('abq\nAbz ab'), '2:q', 'even on the line above');
  assert.equal(guessAfter('alpine\nalpha then alp'), '3:h', 'the line itself before the line above');
  assert.equal(guessAfter('alphabet\nsome text then alp'), '3:h', 'the line above where the line has none');
  assert.equal(guessAfter('alphabet\nnext\nthen alp'), undefined, 'not two lines up');
  assert.equal(guessAfter('alpine alp and alp'), '3:i', 'only a token that goes on past what is typed');
  const longLine = `wordy ${' '.repeat(LINE_KEPT - 8)}wo`;
  assert.equal(guessAfter(longLine.slice(0, -1)), '1:o');
  assert.equal(guessAfter(`${longLine}rld wo`), undefined, 'not past the line kept, where what is typed is not');
});

test('a state read again over text the history already holds still finds the earlier repeat once typing goes on', () => {
  const url = 'https://example.org/some/long/path_with_parts/and-more/0123456789';
  const written = `see ${url} here\nand more text\nnow ${url.slice(0, 30)}`;
  const match = new MatchModel();
  match.append(vocabulary.encode(written));
  // As a document's states restart a little before the cursor: the slot reads the last 40 chars again.
  const ids = vocabulary.encode(written);
  const slot = new Float32Array(MATCH_STATE_SIZE);
  match.startSlot(slot);
  for (let i = ids.length - 40; i < ids.length; i++) match.advance(slot, ids.subarray(0, i + 1), ids[i]);
  const out = { id: -1, length: 0 };
  const guesses: string[] = [];
  for (const char of url.slice(30, 40)) {
    match.predict(slot, out);
    guesses.push(out.length > 0 ? vocabulary.chars[out.id] : '');
    const [id] = vocabulary.encode(char);
    match.append([id]);
    const typed = vocabulary.encode(written + url.slice(30, 30 + guesses.length));
    match.advance(slot, typed, id);
  }
  assert.deepEqual(guesses, [...url.slice(30, 40)], 'what followed the first occurrence of the URL');
});

test("a match's guess, bit by bit, pulls each node on its id's path toward that id, the more the longer the match, and says nothing elsewhere", () => {
  const bits = 4;
  const guess = (length: number) => matchNodeProbabilities({ id: 0b1011, length }, bits, new Float32Array(1 << bits));
  const short = guess(MATCH_MIN_LENGTH);
  const long = guess(40);
  // Heap-numbered from the root 1, a node's children are 2n (bit 0) and 2n + 1 (bit 1): 1 → 3 → 6 → 13 → the leaf.
  const path = new Map([
    [1, 1],
    [3, 0],
    [6, 1],
    [13, 1],
  ]);
  for (let node = 1; node < 1 << bits; node++) {
    const bit = path.get(node);
    if (bit === undefined) {
      assert.equal(short[node], 0.5, `node ${node} is off the path`);
      continue;
    }
    const toward = (p: number) => (bit ? p : 1 - p);
    assert.ok(toward(short[node]) > 0.5, `node ${node} leans toward the guess`);
    assert.ok(toward(long[node]) > toward(short[node]), `node ${node}: a longer match is surer`);
  }
  assert.ok(
    guess(0).every((p, node) => node === 0 || p === 0.5),
    'no match: even odds everywhere',
  );
});

function inputs(V: number, random: () => number): OnlineInputs {
  const logs = () => {
    const p = Float32Array.from({ length: V }, () => random() + 0.01);
    const sum = p.reduce((a, b) => a + b, 0);
    return p.map((x) => Math.log(x / sum));
  };
  return {
    mixture: logs(),
    lstm: logs(),
    notes: logs(),
    document: logs(),
    words: logs(),
    match: { id: -1, length: 0 },
    notesMatch: { id: -1, length: 0 },
    previous: 0,
    previousId: -1,
    twoBeforeId: -1,
    wordsSeen: false,
    nesting: 0,
  };
}

test('the online stage starts as the offline mixture, and learns to trust the part that is right', () => {
  const V = 20;
  const random = seededRandom(5);
  const probe = inputs(V, random);
  const fresh = new OnlineMixer(V).mix(probe, new Float32Array(V));
  for (let y = 0; y < V; y++) assert.ok(Math.abs(fresh[y] - probe.mixture[y]) < 1e-5, 'untaught, it is the mixture');

  // A stream where the document's part puts most of its mass on what comes, and the mixture does not.
  const mixer = new OnlineMixer(V);
  const untaught = new OnlineMixer(V);
  let learnt = 0;
  let before = 0;
  for (let n = 0; n < 3000; n++) {
    const at = inputs(V, random);
    const target = Math.floor(random() * V);
    at.document = at.document.map((_, y) => Math.log(y === target ? 0.6 : 0.4 / (V - 1)));
    const mixed = mixer.mix(at, new Float32Array(V));
    if (n >= 2000) {
      learnt -= mixed[target];
      before -= untaught.mix(at, new Float32Array(V))[target];
    }
    mixer.learn(at, mixed, target);
  }
  assert.ok(learnt < 0.8 * before, `after learning ${learnt / 1000} nats/char, untaught ${before / 1000}`);
  assert.equal(mixer.learnt, 3000);
});

test('the weights selected by the characters before and by the Markdown spans learn which part to trust in each', () => {
  const V = 20;
  const random = seededRandom(7);
  // After id 3 the document's part is right and the LSTM's wrong; after id 5 the other way round.
  // `seen` says where the mixer is told that id: as the character before, as the one before that, by the spans the
  // position is in (one span where the document is right, another where the LSTM is), or nowhere.
  const lossOver = (seen: 'previous' | 'twoBefore' | 'nesting' | 'neither') => {
    const mixer = new OnlineMixer(V);
    let loss = 0;
    for (let n = 0; n < 4000; n++) {
      const at = inputs(V, random);
      const telling = n % 2 === 0 ? 3 : 5;
      at.previousId = seen === 'previous' ? telling : 4;
      at.twoBeforeId = seen === 'twoBefore' ? telling : 4;
      at.nesting = seen === 'nesting' ? (telling === 3 ? 1 : 2) : 0;
      const target = Math.floor(random() * V);
      const wrong = (target + 1 + Math.floor(random() * (V - 1))) % V;
      const peaked = (at: number) =>
        Float32Array.from({ length: V }, (_, y) => Math.log(y === at ? 0.6 : 0.4 / (V - 1)));
      at.document = peaked(telling === 3 ? target : wrong);
      at.lstm = peaked(telling === 3 ? wrong : target);
      const mixed = mixer.mix(at, new Float32Array(V));
      if (n >= 3000) loss -= mixed[target];
      mixer.learn(at, mixed, target);
    }
    return loss / 1000;
  };
  const neither = lossOver('neither');
  for (const seen of ['previous', 'twoBefore', 'nesting'] as const) {
    const selected = lossOver(seen);
    assert.ok(selected < 0.85 * neither, `told the ${seen} character: ${selected} nats/char, told neither: ${neither}`);
  }
});

test('a repeat longer than any n-gram is predicted as it is typed again, and only where the online stage is on', async () => {
  const dir = tempModelDir('char-complete-online');
  randomModel(3, undefined, dir);
  const served = loadServedModel(dir);
  const random = seededRandom(11);
  const line = Array.from({ length: 80 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)]).join('');
  const text = `${line}\nsomething else entirely\n${line}`;
  const meanLogProb = async (online: boolean) => {
    const session = new CompletionSession(served, online);
    let total = 0;
    const from = text.length - line.length + 20;
    for (let offset = from; offset < text.length; offset++) {
      const logProbs = (await session.predictAt(text, offset))!;
      total += logProbs[served.saved.vocabulary.id(text[offset])];
    }
    return total / (text.length - from);
  };
  const on = await meanLogProb(true);
  const off = await meanLogProb(false);
  served.dispose();
  assert.ok(on > Math.log(0.95), `with the online stage, the repeat's characters get ${Math.exp(on)} on average`);
  assert.ok(on > off + 0.1, `online ${on} nats against ${off} without`);
});

test('completions read the online stage without teaching it', async () => {
  const dir = tempModelDir('char-complete-online');
  randomModel(4, undefined, dir);
  const served = loadServedModel(dir);
  const document = new DocumentNgram(served.saved.vocabulary);
  const predictor = documentPredictor(served, document);
  const text = 'hello world, hello world, hello wor';
  document.update(text, text.length);
  const start = (await new DocumentStates(predictor).at(text, text.length))!;
  const options = { ...COMPLETION_DEFAULTS, minConfidence: 0 };
  const first = await complete(predictor, start, options);
  const second = await complete(predictor, start, options);
  served.dispose();
  assert.equal(document.online?.learnt, 0, 'searching taught it nothing');
  assert.deepEqual(second, first, 'the same search from the same state gives the same completion');
});

/** Mean log-probability, in a fresh session of the served model in `dir`, of the characters of `text` from `from` on. */
async function meanLogProbAfter(dir: string, text: string, from: number, before?: (served: ServedModel) => void) {
  const served = loadServedModel(dir);
  before?.(served);
  const session = new CompletionSession(served);
  let total = 0;
  for (let offset = from; offset < text.length; offset++)
    total += (await session.predictAt(text, offset))![served.saved.vocabulary.id(text[offset])];
  served.dispose();
  return total / (text.length - from);
}

/** A random model with an empty notes' n-gram in a new directory, and a maker of random lines of letters. */
function modelWithRandomLines(name: string, seed: number) {
  const dir = tempModelDir(name);
  const saved = randomModel(5, undefined, dir);
  saveNgram(dir, new NgramModel(saved.vocabulary.size), saved.vocabulary);
  const random = seededRandom(seed);
  const randomLine = () =>
    Array.from({ length: 60 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)]).join('');
  return { dir, saved, randomLine };
}

test('the notes text kept beside the model, and notes learnt from saves, are followed when typed again', async () => {
  const { dir, randomLine } = modelWithRandomLines('char-complete-online', 12);
  const trained = randomLine();
  const without = await meanLogProbAfter(dir, `x ${trained}`, 22);
  writeFileSync(join(dir, NOTES_TEXT_FILE), `intro\n${trained}\nend\n`);
  const withNotes = await meanLogProbAfter(dir, `x ${trained}`, 22);
  assert.ok(withNotes > without + 1, `a line of the notes typed again: ${withNotes} against ${without}`);

  const saved2 = randomLine();
  const unlearnt = await meanLogProbAfter(dir, `x ${saved2}`, 22);
  const learnt = await meanLogProbAfter(dir, `x ${saved2}`, 22, (served) => {
    served.learned!.learn('note.md', `a note\n${saved2}\n`);
  });
  assert.ok(learnt > unlearnt + 1, `a line of a saved note typed again: ${learnt} against ${unlearnt}`);
});

test("the notes' context mixing, saved beside the model, mixes into what is typed without learning from it; a damaged one is left out", async () => {
  const { dir, saved, randomLine } = modelWithRandomLines('char-complete-contexts', 13);
  const line = randomLine();
  const without = await meanLogProbAfter(dir, `x ${line}`, 22);
  saveNotesContexts(
    dir,
    learnNotesContexts(saved.vocabulary, saved.vocabulary.encode(`${line}\n`.repeat(4))),
    saved.vocabulary,
  );
  let before: Float32Array | undefined;
  const nodesAfterLine = (served: ServedModel) => {
    const ids = served.saved.vocabulary.encode(line.slice(0, 8));
    const words = new Float32Array(WORD_STATE_SIZE);
    return served.mixture.notesReaders!.contexts!.nodeProbabilitiesAt(
      Float32Array.from(ids),
      ids.length,
      words,
      new Float32Array(128),
    );
  };
  const served = loadServedModel(dir);
  assert.ok(!served.warnings.some((warning) => /context model/.test(warning)), served.warnings.join('\n'));
  served.dispose();
  const withContexts = await meanLogProbAfter(dir, `x ${line}`, 22, (model) => {
    before = Float32Array.from(nodesAfterLine(model));
  });
  const typedIn = loadServedModel(dir);
  const session = new CompletionSession(typedIn);
  const typed = `y ${line} ${line}`;
  for (let offset = 0; offset <= typed.length; offset++) await session.predictAt(typed, offset);
  const after = nodesAfterLine(typedIn);
  typedIn.dispose();
  assert.ok(withContexts > without + 0.5, `a line the contexts learnt, typed: ${withContexts} against ${without}`);
  assert.deepEqual(after, before, "typing teaches the document's copy, not the notes' model");

  writeFileSync(join(dir, NOTES_CONTEXTS_FILE), 'damaged');
  const damaged = loadServedModel(dir);
  assert.equal(damaged.mixture.notesReaders!.contexts, undefined);
  assert.match(damaged.warnings.join('\n'), /context model .*retrain.*serves without it/);
  damaged.dispose();
  assert.ok(Math.abs((await meanLogProbAfter(dir, `x ${line}`, 22)) - without) < 1e-9, 'served as without it');
});

/**
 * A served random model whose notes' context mixing alone knows two random lines, `warmUp` then `known`, with
 * `between` between them: its n-grams and match models never see them.
 */
function servedKnowingLines(seed: number, between = '\n') {
  const { dir, saved, randomLine } = modelWithRandomLines('char-complete-contexts', seed);
  const [warmUp, known] = [randomLine(), randomLine()];
  saveNotesContexts(
    dir,
    learnNotesContexts(saved.vocabulary, saved.vocabulary.encode(`${warmUp}${between}${known}\n`.repeat(4))),
    saved.vocabulary,
  );
  return { served: loadServedModel(dir), warmUp, known, dir };
}

/** A new session on `served` that has read `text` as typed up to `offset`, and what it suggests there. */
async function suggestAfterTyping(served: ServedModel, text: string, offset: number) {
  const session = new CompletionSession(served);
  for (let at = 0; at < offset; at++) await session.predictAt(text, at);
  const completion = await session.suggest(text, offset, { ...COMPLETION_DEFAULTS, minConfidence: 0 });
  return { session, completion };
}

test('a completion runs on where only the context mixing knows the text, as its later characters are mixed by the last stage too', async () => {
  const { served, warmUp, known } = servedKnowingLines(14);
  // The document's n-grams and match model never see `known`: only the notes' context mixing has.
  const typed = `y ${warmUp}\nx ${known.slice(0, 12)}`;
  const { completion } = await suggestAfterTyping(served, typed, typed.length);
  served.dispose();
  const rest = known.slice(12);
  assert.ok(
    completion !== undefined && completion.text.length >= 8 && rest.startsWith(completion.text),
    `completion ${JSON.stringify(completion?.text)} for ${JSON.stringify(rest)}`,
  );
});

test('a completion ends with the line break only where the line ends at the cursor, as typed along too', async () => {
  const { served, warmUp, known } = servedKnowingLines(15);
  const options = { ...COMPLETION_DEFAULTS, minConfidence: 0 };
  const typed = `y ${warmUp}\nx ${known.slice(0, 52)}`;
  const completeAt = async (after: string) =>
    (await suggestAfterTyping(served, typed + after, typed.length)).completion?.text;
  const atLineEnd = await completeAt('\nlater line\n');
  const midLine = await completeAt(' and more\n');
  // The suggestion shown at the line's end, typed along two characters at once after the line has come to go on.
  const { session } = await suggestAfterTyping(served, typed, typed.length);
  const along = typed + known.slice(52, 54);
  const typedAlong = (await session.suggest(`${along} and more`, along.length, options))?.text;
  served.dispose();
  assert.equal(atLineEnd, `${known.slice(52)}\n`);
  assert.equal(midLine, known.slice(52), 'the line break would split the line');
  assert.equal(typedAlong, known.slice(54), 'the rest of the suggestion on show would split the line');
});

test('a link to a heading expects the anchor its text spells, which nothing else of the model knows, and completes it', async () => {
  const { served, warmUp } = servedKnowingLines(17);
  const link = '- [Quick Start, Guide](#quick-start-guide)';
  const text = `y ${warmUp}\n${link}\n`;
  const session = new CompletionSession(served);
  const from = text.indexOf('#') + 1;
  const chars = served.saved.vocabulary.chars;
  for (let offset = 0; offset < text.length - 1; offset++) {
    const logProbs = (await session.predictAt(text, offset))!;
    if (offset < from) continue;
    const likeliest = chars[logProbs.indexOf(Math.max(...logProbs))];
    assert.equal(likeliest, text[offset], `after ${JSON.stringify(text.slice(from - 3, offset))}`);
  }
  const typed = `y ${warmUp}\n- [Quick Start, Guide](#qu`;
  const { completion } = await suggestAfterTyping(served, typed, typed.length);
  served.dispose();
  assert.ok(completion?.text.startsWith('ick-start'), `completion ${JSON.stringify(completion?.text)}`);
});

test("a document's echo is read as sure as its guesses came right there, apart by what stands before the token", () => {
  const markdown = Vocabulary.fromText('abcdefghijklmnopqrstuvwxyz0123456789 #/\n', 100);
  const confidence = new EchoConfidence(markdown);
  const guessAfter = (before: string): EchoGuess => ({
    id: markdown.id('1'),
    typed: 1,
    before: markdown.id(before),
    folded: false,
    number: false,
  });
  const afterHash = confidence.rowOf(guessAfter('#'));
  const afterSpace = confidence.rowOf(guessAfter(' '));
  assert.notEqual(afterHash, afterSpace);
  assert.notEqual(confidence.rowOf({ ...guessAfter('#'), typed: 2 }), afterHash, 'apart by the characters typed');
  assert.notEqual(confidence.rowOf({ ...guessAfter('#'), folded: true }), afterHash, 'and by whether case was folded');
  assert.notEqual(
    confidence.rowOf({ ...guessAfter('#'), number: true }),
    afterHash,
    'and by whether a number is typed',
  );
  const [hashAtFirst, spaceAtFirst] = [confidence.sureness(afterHash), confidence.sureness(afterSpace)];
  assert.equal(hashAtFirst, spaceAtFirst, 'both start from the training notes');
  for (let i = 0; i < 100; i++) confidence.learn(afterHash, true);
  for (let i = 0; i < 100; i++) confidence.learn(afterSpace, i % 10 === 0);
  assert.ok(confidence.sureness(afterHash) > 0.95, `after a '#': ${confidence.sureness(afterHash)}`);
  assert.ok(confidence.sureness(afterSpace) < 0.15, `after a space: ${confidence.sureness(afterSpace)}`);
  for (let i = 0; i < 1000; i++) confidence.learn(afterHash, false);
  assert.ok(
    confidence.sureness(afterHash) < 0.05,
    `a row goes on following the document: ${confidence.sureness(afterHash)}`,
  );
});

/**
 * Types `lines` through a served model, after a line it knows, and counts over the last 15 of them the characters that
 * match `counted` from the second after `marker` on, and how many of those it expected most.
 */
async function expectedAfterMarker(seed: number, lines: string[], marker: string, counted: RegExp) {
  const { served, warmUp } = servedKnowingLines(seed);
  const text = `y ${warmUp}\n${lines.join('\n')}\n`;
  const session = new CompletionSession(served);
  const chars = served.saved.vocabulary.chars;
  const lastLinesFrom = text.length - lines.slice(-15).join('\n').length - 1;
  let right = 0;
  let guessed = 0;
  for (let offset = 0; offset < text.length - 1; offset++) {
    const logProbs = (await session.predictAt(text, offset))!;
    const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
    const from = text.indexOf(marker, lineStart) + marker.length + 1;
    if (offset < lastLinesFrom || offset < from || !counted.test(text[offset])) continue;
    guessed++;
    if (chars[logProbs.indexOf(Math.max(...logProbs))] === text[offset]) right++;
  }
  served.dispose();
  return { right, guessed };
}

test('a number typed again on its line is expected as it went there, where the n-grams have seen its digits go every way', async () => {
  const random = seededRandom(19);
  const number = () => Array.from({ length: 4 }, () => Math.floor(random() * 10)).join('');
  const lines = Array.from({ length: 60 }, () => {
    const n = number();
    return `[#${n}](pull/${n})`;
  });
  // The second number's digits after its first: only the number earlier on the line says which come.
  const { right, guessed } = await expectedAfterMarker(18, lines, 'pull/', /\d/u);
  assert.equal(guessed, 45);
  assert.ok(right >= 40, `${right} of ${guessed} digits expected`);
});

test("a name typed again in lower case on its line, as a link's path spells it, is expected as it went there", async () => {
  const random = seededRandom(21);
  const letter = () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)];
  // Upper case first and at random after, so that only the name folded to lower case says how its path goes on.
  const name = () =>
    Array.from({ length: 6 }, (_, i) => (i === 0 || random() < 0.5 ? letter().toUpperCase() : letter())).join('');
  const lines = Array.from({ length: 60 }, () => {
    const n = name();
    return `[${n}](api/${n.toLowerCase()})`;
  });
  const { right, guessed } = await expectedAfterMarker(20, lines, 'api/', /[a-z]/u);
  assert.equal(guessed, 75);
  assert.ok(right >= 60, `${right} of ${guessed} letters expected`);
});

test('on an empty line below a written one, a completion may open the next paragraph with its blank line', async () => {
  const { served, warmUp, known } = servedKnowingLines(16, '\n\n');
  const completeAfter = async (typed: string, after = '') =>
    (await suggestAfterTyping(served, typed + after, typed.length)).completion?.text ?? '';
  const opening = await completeAfter(`x ${warmUp}\n`);
  const lineGoesOn = await completeAfter(`x ${warmUp}\n`, 'zz');
  const belowBlank = await completeAfter(`x ${warmUp}\n\n`);
  served.dispose();
  assert.ok(opening.length > 4 && `\n${known}`.startsWith(opening), `completion ${JSON.stringify(opening)}`);
  assert.doesNotMatch(lineGoesOn, /^\n/u, 'not where the line goes on');
  assert.ok(belowBlank.length > 3 && known.startsWith(belowBlank), `below a blank line ${JSON.stringify(belowBlank)}`);
});

test("a new document's online stages start from the weights the document typed before left them", async () => {
  const random = seededRandom(21);
  const line = () => Array.from({ length: 50 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)]).join('');
  // Each note repeats its own line, so its stages learn to trust the document's own parts; the next note's do too.
  const [first, second] = [line(), line()].map((l) => `${l}\n`.repeat(4));
  const options = { learnFromSaves: false };
  // Each on a model of its own, so that only the first note can have taught the second's stages.
  const scoreOnOwnModel = async (notes: string[]) => {
    const { served } = servedKnowingLines(17);
    const score = await scoreAsTyped(served, notes, options);
    const carried = served.mixture.carriedMixing;
    served.dispose();
    return { ...score, carried };
  };
  const both = await scoreOnOwnModel([first, second]);
  const firstAlone = await scoreOnOwnModel([first]);
  const secondAlone = await scoreOnOwnModel([second]);
  const carried = both.carried;
  assert.ok(carried, 'the served model carries the mixing from note to note');
  const secondAfterFirst = both.nats - firstAlone.nats;
  assert.ok(
    secondAfterFirst < secondAlone.nats - 0.5,
    `the second note costs ${secondAfterFirst} nats after the first, ${secondAlone.nats} alone`,
  );
});

test('the mixing that documents taught is kept beside the model, and the next session starts from it', async () => {
  const random = seededRandom(22);
  const line = () => Array.from({ length: 50 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)]).join('');
  const [first, second] = [line(), line()].map((l) => `${l}\n`.repeat(4));
  const options = { learnFromSaves: false };
  const { served: unused, dir } = servedKnowingLines(23);
  unused.dispose();
  const secondNoteCost = async (carryMixing: boolean) => {
    const served = loadServedModel(dir, { carryMixing });
    const { nats } = await scoreAsTyped(served, [second], options);
    served.dispose();
    return { nats, warnings: served.warnings };
  };
  const before = await secondNoteCost(true);
  assert.doesNotMatch(before.warnings.join('\n'), /carried/, 'nothing kept yet, and nothing to warn of');

  const earlier = loadServedModel(dir, { carryMixing: true });
  await scoreAsTyped(earlier, [first], options);
  assert.equal(earlier.mixture.carriedMixing!.save(), true, 'kept');
  assert.equal(earlier.mixture.carriedMixing!.save(), false, 'nothing taught since');
  earlier.dispose();
  // The same model in a directory of its own, where both notes are typed in one session.
  const { served: sameSession } = servedKnowingLines(23);
  const inOneSession = (await scoreAsTyped(sameSession, [first, second], options)).nats;
  sameSession.dispose();
  const fresh = loadServedModel(dir);
  const firstCost = (await scoreAsTyped(fresh, [first], options)).nats;
  const { vocabulary } = fresh.saved;
  fresh.dispose();

  const after = await secondNoteCost(true);
  assert.ok(after.nats < before.nats - 0.5, `the next session's note: ${after.nats} nats, ${before.nats} before`);
  assert.ok(
    Math.abs(after.nats - (inOneSession - firstCost)) < 1e-3,
    `as after the first note in one session: ${after.nats} against ${inOneSession - firstCost}`,
  );
  assert.equal((await secondNoteCost(false)).nats, before.nats, 'a figure that asks for the trained mixture gets it');

  const saved = readFileSync(join(dir, CARRIED_MIXING_FILE));
  const damaged = Buffer.from(saved);
  damaged[damaged.length - 3] ^= 0x40;
  writeFileSync(join(dir, CARRIED_MIXING_FILE), damaged);
  const fromDamaged = await secondNoteCost(true);
  assert.equal(fromDamaged.nats, before.nats, 'a damaged file is left out');
  assert.match(fromDamaged.warnings.join('\n'), /carried .*corrupt.*start from the trained mixture/);

  // Weights laid out otherwise, as a version of the program that selects its weight sets by other contexts keeps them.
  const headerLength = saved.readUInt32LE(0);
  const header = JSON.parse(saved.subarray(4, 4 + headerLength).toString('utf8'));
  const rewritten = (lengths: number[], payload: Buffer) => {
    const json = Buffer.from(JSON.stringify({ ...header, lengths }), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length, 0);
    writeFileSync(join(dir, CARRIED_MIXING_FILE), Buffer.concat([length, json, payload]));
  };
  const payload = saved.subarray(4 + headerLength);
  rewritten([header.lengths[0] * 2, ...header.lengths.slice(1)], payload);
  const otherLayout = await secondNoteCost(true);
  assert.equal(otherLayout.nats, before.nats, 'weights laid out otherwise are left out');
  assert.doesNotMatch(otherLayout.warnings.join('\n'), /carried/, 'and are no problem to warn of');
  rewritten(header.lengths, payload.subarray(0, payload.length - 8));
  const cutShort = await secondNoteCost(true);
  assert.equal(cutShort.nats, before.nats, 'a file cut short is left out');
  assert.match(cutShort.warnings.join('\n'), /carried .*cut short/);

  writeFileSync(join(dir, CARRIED_MIXING_FILE), saved);
  const stages = { online: new OnlineMixer(vocabulary.size), lastStage: newLastStage(vocabulary.size) };
  const retrained = CarriedMixing.load({ dir, weightsFile: 'weights.0123456789ab.bin', vocabulary }, stages);
  const started = new OnlineMixer(vocabulary.size);
  retrained.carried.startOnline(started);
  assert.equal(retrained.problem, undefined, 'a model trained again is not a problem');
  assert.deepEqual(started.weightArrays(), new OnlineMixer(vocabulary.size).weightArrays(), 'it starts afresh');
});

test('a document whose lines end with CR LF is completed as the same text with LF', async () => {
  const { served: unused, warmUp, known } = servedKnowingLines(18);
  unused.dispose();
  const typed = `y ${warmUp}\nx ${known.slice(0, 12)}`;
  // Each on a model of its own, since a document's online stages start from what the one typed before taught them.
  const read = async (text: string, offset: number) => {
    const { served } = servedKnowingLines(18);
    const { session, completion } = await suggestAfterTyping(served, text, offset);
    const next = await session.predictAt(text, offset);
    served.dispose();
    return { next, completion };
  };
  const lf = await read(`${typed}\nlast line\n`, typed.length);
  const crlf = await read(`${typed.replace('\n', '\r\n')}\r\nlast line\r\n`, typed.length + 1);
  assert.ok(lf.completion && lf.completion.text.length >= 8, `completion ${JSON.stringify(lf.completion?.text)}`);
  assert.equal(crlf.completion?.text, lf.completion.text);
  assert.deepEqual(crlf.next, lf.next);
});

test('in a document whose lines end with CR LF, a completion that ends the line ends it with CR LF', async () => {
  const { served, warmUp, known } = servedKnowingLines(15);
  const typed = `y ${warmUp}\r\nx ${known.slice(0, 52)}`;
  const { completion } = await suggestAfterTyping(served, `${typed}\r\nlater line\r\n`, typed.length);
  served.dispose();
  assert.equal(completion?.text, `${known.slice(52)}\r\n`);
});

test("typing on past the n-grams' window keeps the match model's history; an edit starts it afresh", () => {
  const document = new DocumentNgram(vocabulary);
  const start = 'the opening line\n';
  document.update(start, start.length);
  const long = start + 'ab cd\n'.repeat(Math.ceil((2.5 * DOCUMENT_NGRAM_WINDOW) / 6));
  document.update(long, long.length);
  assert.equal(document.match!.size, long.length, 'the whole document, past twice the window');
  assert.ok(DOCUMENT_MATCH_MAX_HISTORY > long.length);
  const edited = long.slice(0, -100) + 'X' + long.slice(-99);
  document.update(edited, edited.length);
  assert.ok(document.match!.size <= DOCUMENT_NGRAM_WINDOW + 1, `after the edit: ${document.match!.size}`);
});

test("a document's context mixing grows once it has learnt as many characters as its table has buckets", () => {
  const document = new DocumentNgram(vocabulary);
  const notesContexts = learnNotesContexts(vocabulary, vocabulary.encode('the notes: ab cd ef\n'.repeat(20)));
  const first = document.startContexts(notesContexts);
  assert.equal(document.startContexts(notesContexts), first, 'one model while it has room');
  const words = new Float32Array(WORD_STATE_SIZE);
  const context = Float32Array.from(vocabulary.encode('ab cd ef'));
  const id = vocabulary.id('g');
  while (first.charactersLearnt < 2 ** first.tableBits - 1) first.learnAt(context, context.length, words, id);
  assert.equal(document.startContexts(notesContexts), first, 'one character short of its buckets');
  first.learnAt(context, context.length, words, id);
  const grown = document.startContexts(notesContexts);
  assert.ok(grown.tableBits > first.tableBits, `${grown.tableBits} bits after ${first.tableBits}`);
  assert.equal(document.contexts, grown);
  const nodes = (model: typeof first) =>
    model.nodeProbabilitiesAt(context, context.length, words, new Float32Array(1 << idBits(vocabulary.size)));
  assert.deepEqual(nodes(grown), nodes(first), 'it goes on from what the smaller one learnt');
});
