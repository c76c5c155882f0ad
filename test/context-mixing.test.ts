// The context mixing of the notes and of a document, its file beside the model, and the bitwise last stage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BitwiseMixer } from '../model/bitwise-mixer';
import { CONTEXT_SPAN, ContextMixingModel, massBefore } from '../model/context-mixing';
import { ModelFormatError } from '../model/files';
import { idBits, ProbabilityMap, squash, STRETCH_LIMIT } from '../model/logistic';
import { learnNotesContexts, loadNotesContexts, NOTES_CONTEXTS_FILE, saveNotesContexts } from '../model/notes-text';
import { Vocabulary } from '../model/vocab';
import { rewriteContextsHeader } from './support/contexts-header';
import {
  advanceWords,
  characterShapes,
  currentWord,
  WORD_STATE_SIZE,
  wordContext,
  wordLetters,
} from '../model/word-model';

const notes = 'the quick brown fox jumps over the lazy dog.\nthe quick brown cat naps under the warm sun.\n'.repeat(6);
const vocabulary = Vocabulary.fromText(notes + 'xyzQ', 512, 1);
const letters = wordLetters(vocabulary);

/** Where the contexts stand after `text`: its last ids and its words. */
function positionAfter(
  text: string,
  of: Vocabulary = vocabulary,
): { context: Float32Array; known: number; words: Float32Array } {
  const ids = of.encode(text);
  const words = new Float32Array(WORD_STATE_SIZE);
  for (const id of ids) advanceWords(words, id, wordLetters(of), characterShapes(of));
  const context = Float32Array.from(ids.slice(-CONTEXT_SPAN));
  return { context, known: context.length, words };
}

/** The log-probability of each id from the probability of a 1 at each node of the ids' tree. */
function leafLogProbabilities(nodes: Float32Array, vocabSize: number): Float32Array {
  const bits = idBits(vocabSize);
  return Float32Array.from({ length: vocabSize }, (_, id) => {
    let logP = 0;
    for (let depth = 0, node = 1; depth < bits; depth++) {
      const bit = (id >>> (bits - 1 - depth)) & 1;
      logP += Math.log(bit ? nodes[node] : 1 - nodes[node]);
      node = 2 * node + bit;
    }
    return logP;
  });
}

/** The model's log-probabilities of every id of `of` after `text`. */
function distributionAfter(model: ContextMixingModel, text: string, of: Vocabulary = vocabulary): Float32Array {
  const { context, known, words } = positionAfter(text, of);
  const nodes = model.nodeProbabilitiesAt(context, known, words, new Float32Array(1 << idBits(of.size)));
  return leafLogProbabilities(nodes, of.size);
}

const probabilityOf = (logProbs: Float32Array, char: string) => Math.exp(logProbs[vocabulary.id(char)]);
const total = (logProbs: Float32Array) => logProbs.reduce((sum, lp) => sum + Math.exp(lp), 0);

test('the context mixing learns what follows a context in the notes, and its distribution sums to one', () => {
  const untrained = new ContextMixingModel(vocabulary.size, letters, characterShapes(vocabulary), 12);
  const trained = learnNotesContexts(vocabulary, vocabulary.encode(notes));
  const before = distributionAfter(untrained, 'the quick brown f');
  const after = distributionAfter(trained, 'the quick brown f');
  assert.ok(Math.abs(total(before) - 1) < 1e-4, `sums to ${total(before)}`);
  assert.ok(Math.abs(total(after) - 1) < 1e-4, `sums to ${total(after)}`);
  assert.ok(probabilityOf(after, 'o') > 0.5, `"o" after "brown f": ${probabilityOf(after, 'o')}`);
  assert.ok(probabilityOf(after, 'o') > 10 * probabilityOf(before, 'o'));
  assert.ok(probabilityOf(after, 'z') < 0.02, `"z", never seen there: ${probabilityOf(after, 'z')}`);
});

test("a document's overlay predicts as the notes' model, learns the document on from it, and leaves the notes' alone", () => {
  const shared = learnNotesContexts(vocabulary, vocabulary.encode(notes));
  const sharedBefore = distributionAfter(shared, 'a lazy Q');
  const overlay = shared.overlay(12);
  // Before the document teaches it anything, it reads the notes' contexts.
  assert.deepEqual(distributionAfter(overlay, 'the quick brown f'), distributionAfter(shared, 'the quick brown f'));
  const document = 'a lazy Qxy, a lazy Qxy, a lazy Qxy, ';
  const ids = vocabulary.encode(document);
  for (let t = 0; t < ids.length; t++) {
    const { context, known, words } = positionAfter(document.slice(0, t));
    overlay.learnAt(context, known, words, ids[t]);
  }
  assert.ok(probabilityOf(distributionAfter(overlay, 'a lazy Q'), 'x') > 0.5, 'the overlay learnt the document');
  assert.deepEqual(distributionAfter(shared, 'a lazy Q'), sharedBefore, "the notes' model is unchanged");
  // A context the document teaches goes on from what the notes knew of it: "the lazy d" was followed by "o" six
  // times in the notes and once by "i" in the document. Learnt from the document alone, "o" would be next to
  // impossible there.
  const taught = 'the lazy di';
  const taughtIds = vocabulary.encode(taught);
  const { context, known, words } = positionAfter(taught.slice(0, -1));
  overlay.learnAt(context, known, words, taughtIds[taughtIds.length - 1]);
  const after = distributionAfter(overlay, 'the lazy d');
  assert.ok(probabilityOf(after, 'o') > 0.05, `"o" ${probabilityOf(after, 'o')}`);
});

test("a document's model that its text outgrew is overlaid by a larger one, which reads it and the notes' through it", () => {
  const shared = learnNotesContexts(vocabulary, vocabulary.encode(notes));
  const small = shared.overlay(10);
  const teach = (model: ContextMixingModel, document: string) => {
    const ids = vocabulary.encode(document);
    for (let t = 0; t < ids.length; t++) {
      const { context, known, words } = positionAfter(document.slice(0, t));
      model.learnAt(context, known, words, ids[t]);
    }
  };
  const document = 'a lazy Qxy, a lazy Qxy, a lazy Qxy, ';
  teach(small, document);
  assert.equal(small.charactersLearnt, document.length);
  const smallTable = Uint8Array.from(small.learnt()[0]);
  const large = small.overlay(12);
  assert.equal(large.tableBits, 12);
  assert.equal(large.charactersLearnt, 0, 'a grown model counts what it learns itself');
  // Before it learns anything, it predicts as the model it grew from: the document's contexts from that one's table,
  // the rest from the notes' under it.
  for (const text of ['a lazy Q', 'the quick brown f', 'the warm s'])
    assert.deepEqual(distributionAfter(large, text), distributionAfter(small, text), text);
  // It learns on from there, and leaves the smaller table as it was.
  teach(large, 'a lazy Qz, a lazy Qz, a lazy Qz, a lazy Qz, ');
  assert.ok(
    probabilityOf(distributionAfter(large, 'a lazy Q'), 'z') > probabilityOf(distributionAfter(small, 'a lazy Q'), 'z'),
  );
  assert.deepEqual(small.learnt()[0], smallTable, 'the smaller table is read, never written');
});

test('a full table finds no slot for a context it was never taught: a slot is told apart by two check bytes', () => {
  // Two alphabets of 100 symbols each: the table learns random text over the first, and is asked
  // about random text over the second, whose contexts of every order it cannot have been taught.
  const taught = Array.from({ length: 100 }, (_, i) => String.fromCodePoint(0x4e00 + i)).join('');
  const never = Array.from({ length: 100 }, (_, i) => String.fromCodePoint(0x5e00 + i)).join('');
  const wide = Vocabulary.fromText(taught + never, 512, 1);
  let seed = 12345;
  const randomText = (alphabet: string, length: number) =>
    Array.from({ length }, () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return alphabet[(seed >>> 8) % alphabet.length];
    }).join('');
  // A table of 64 KB, overfilled many times over.
  const model = learnNotesContexts(wide, wide.encode(randomText(taught, 30_000)), 10);
  const probe = randomText(never, 2_000 + CONTEXT_SPAN);
  let held = 0;
  let asked = 0;
  for (let t = CONTEXT_SPAN; t < probe.length; t++) {
    const { context, known, words } = positionAfter(probe.slice(t - CONTEXT_SPAN, t), wide);
    held += model.ordersHeld(context, known, words);
    asked++;
  }
  // With one check byte, about one lookup in 32 of a full eight-way bucket would find another context's slot.
  assert.ok(asked === 2_000);
  assert.ok(held < 10, `${held} slots found for contexts never taught, in ${asked} positions`);
  const { context, known, words } = positionAfter(randomText(taught, 200).slice(-CONTEXT_SPAN), wide);
  assert.ok(model.ordersHeld(context, known, words) > 0, 'the table holds what it was taught lately');
});

test('the context model is saved atomically and loads to the same predictions; a damaged or foreign file is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'contexts-'));
  try {
    assert.equal(loadNotesContexts(dir, vocabulary), undefined, 'none saved');
    const model = learnNotesContexts(vocabulary, vocabulary.encode(notes));
    // A save killed before its rename leaves its temporary; one of a writer that still runs is its own.
    const killed = path.join(dir, `.${NOTES_CONTEXTS_FILE}.tmp-${spawnSync(process.execPath, ['-e', '']).pid}-0a1b2c`);
    const running = path.join(dir, `.${NOTES_CONTEXTS_FILE}.tmp-${process.pid}-3d4e5f`);
    fs.writeFileSync(killed, 'half a file');
    fs.writeFileSync(running, 'being written');
    saveNotesContexts(dir, model, vocabulary);
    assert.deepEqual(
      fs.readdirSync(dir).filter((name) => name !== NOTES_CONTEXTS_FILE),
      [path.basename(running)],
      "no temporary is left but the running writer's",
    );
    fs.rmSync(running);
    // A stray that cannot be removed does not make a save that wrote its file report a failure.
    const unremovable = path.join(dir, `.${NOTES_CONTEXTS_FILE}.tmp-dir`);
    fs.mkdirSync(unremovable);
    fs.writeFileSync(path.join(unremovable, 'inside'), 'x');
    fs.rmSync(path.join(dir, NOTES_CONTEXTS_FILE));
    saveNotesContexts(dir, model, vocabulary);
    assert.ok(fs.existsSync(path.join(dir, NOTES_CONTEXTS_FILE)), 'saved beside the stray');
    fs.rmSync(unremovable, { recursive: true });
    const loaded = loadNotesContexts(dir, vocabulary)!;
    assert.deepEqual(distributionAfter(loaded, 'the lazy d'), distributionAfter(model, 'the lazy d'));

    const other = Vocabulary.fromText(notes + 'xyzW', 512, 1);
    assert.throws(
      () => loadNotesContexts(dir, other),
      (error: Error) => {
        assert.ok(error instanceof ModelFormatError);
        assert.match(error.message, /another vocabulary.*retrain/);
        return true;
      },
    );

    const file = path.join(dir, NOTES_CONTEXTS_FILE);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 100] ^= 0xff;
    fs.writeFileSync(file, bytes);
    assert.throws(() => loadNotesContexts(dir, vocabulary), /corrupt.*retrain/);
    fs.writeFileSync(file, bytes.subarray(0, 3));
    assert.throws(() => loadNotesContexts(dir, vocabulary), /truncated/);
    fs.writeFileSync(file, 'not a model at all, but long enough to have a header length');
    assert.throws(() => loadNotesContexts(dir, vocabulary), /header length.*not a context model/);
    fs.writeFileSync(file, Buffer.concat([Buffer.from([9, 0, 0, 0]), Buffer.from('{"broken"')]));
    assert.throws(() => loadNotesContexts(dir, vocabulary), /does not start with a JSON header.*retrain/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('nodes over ids another model finds unlikely are left at even odds, and the rest predicted as without it', () => {
  const model = learnNotesContexts(vocabulary, vocabulary.encode(notes));
  const { context, known, words } = positionAfter('the quick brown f');
  const size = 1 << idBits(vocabulary.size);
  const full = model.nodeProbabilitiesAt(context, known, words, new Float32Array(size).fill(NaN));
  // All but a millionth on "o": the slots over every other id are skipped.
  const likely = new Float32Array(vocabulary.size).fill(Math.log(1e-6 / (vocabulary.size - 1)));
  likely[vocabulary.id('o')] = Math.log(1 - 1e-6);
  const mass = massBefore(likely, new Float64Array(vocabulary.size + 1));
  const pruned = model.nodeProbabilitiesAt(context, known, words, new Float32Array(size).fill(NaN), mass);
  const bits = idBits(vocabulary.size);
  const onPath = new Set<number>();
  for (let depth = 0, node = 1; depth < bits; depth++) {
    onPath.add(node);
    node = 2 * node + ((vocabulary.id('o') >>> (bits - 1 - depth)) & 1);
  }
  let skipped = 0;
  for (let node = 1; node < size; node++) {
    if (Number.isNaN(full[node])) continue;
    if (onPath.has(node)) assert.equal(pruned[node], full[node], `node ${node} on the path of "o"`);
    else if (pruned[node] !== full[node]) {
      assert.equal(pruned[node], 0.5, `node ${node}`);
      skipped++;
    }
  }
  assert.ok(skipped > 0, 'some slots are skipped');
  assert.ok(probabilityOf(leafLogProbabilities(pruned, vocabulary.size), 'o') > 0.5);
});

test("read along one id's path, the nodes on it are predicted as in the whole tree, and no other node is set", () => {
  const model = learnNotesContexts(vocabulary, vocabulary.encode(notes));
  const { context, known, words } = positionAfter('the quick brown f');
  const size = 1 << idBits(vocabulary.size);
  const likely = new Float32Array(vocabulary.size).fill(Math.log(1 / vocabulary.size));
  const mass = massBefore(likely, new Float64Array(vocabulary.size + 1));
  const full = model.nodeProbabilitiesAt(context, known, words, new Float32Array(size).fill(NaN), mass);
  const bits = idBits(vocabulary.size);
  // Ids at both ends of the tree and one between, so that paths through every group's first and last prefixes are read.
  for (const id of [0, vocabulary.id('o'), vocabulary.size - 1]) {
    const alongPath = model.nodeProbabilitiesAt(context, known, words, new Float32Array(size).fill(NaN), mass, id);
    const onPath = new Set<number>();
    for (let depth = 0, node = 1; depth < bits; depth++) {
      onPath.add(node);
      node = 2 * node + ((id >>> (bits - 1 - depth)) & 1);
    }
    for (let node = 1; node < size; node++) {
      if (onPath.has(node)) assert.equal(alongPath[node], full[node], `node ${node} on the path of id ${id}`);
      else assert.ok(Number.isNaN(alongPath[node]), `node ${node}, off the path of id ${id}, is left alone`);
    }
  }
});

/** Rewrites the JSON header of the contexts file in `dir` with `change` applied. */
test('a context model of another format version, an earlier one with four slots to a bucket or a later one, is refused with a remedy', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'contexts-'));
  try {
    saveNotesContexts(dir, learnNotesContexts(vocabulary, vocabulary.encode(notes)), vocabulary);
    assert.ok(loadNotesContexts(dir, vocabulary), 'as saved');
    for (const version of [10, 12]) {
      rewriteContextsHeader(dir, (header) => (header.formatVersion = version));
      assert.throws(
        () => loadNotesContexts(dir, vocabulary),
        new RegExp(`format version ${version}; this version reads 11.*retrain`),
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a word capitalised or not is one context, so what followed "Volker" is expected after "volker"', () => {
  const after = (text: string) => {
    const { words } = positionAfter(text);
    return [wordContext(words), currentWord(words)];
  };
  assert.deepEqual(after('the Quick'), after('the quick'), 'the same words, one capitalised');
  assert.notDeepEqual(after('the quick'), after('the quack'), 'another word');
  assert.equal(letters[vocabulary.id('Q')], vocabulary.id('q'), "Q spells q's letter");
  assert.equal(letters[vocabulary.id('x')], vocabulary.id('x'));
  assert.ok(letters[vocabulary.id(' ')] < 0, 'a space spells no letter');
  // Learnt from "Quick" alone, the model expects the same letters after "q" that it saw after "Q".
  const model = learnNotesContexts(vocabulary, vocabulary.encode(notes.replaceAll('quick', 'Quick')));
  const u = vocabulary.id('u');
  const nodes = (text: string) => {
    const { context, known, words } = positionAfter(text);
    return leafLogProbabilities(
      model.nodeProbabilitiesAt(context, known, words, new Float32Array(1 << idBits(vocabulary.size))),
      vocabulary.size,
    );
  };
  assert.ok(nodes('the q')[u] > Math.log(0.5), `u after "q": ${Math.exp(nodes('the q')[u])}`);
});

test('where lines are of one length, the line break is expected at that column, and only there', () => {
  // Letters and spaces in no order, so that nothing but the column tells where a line ends.
  const { random } = seeded(7);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz ';
  const line = () => Array.from({ length: 24 }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
  const lines = Array.from({ length: 300 }, line);
  const ruled = Vocabulary.fromText(lines.join('\n') + '\n', 512, 1);
  const model = new ContextMixingModel(ruled.size, wordLetters(ruled), characterShapes(ruled), 14);
  model.append(ruled.encode(lines.join('\n') + '\n'));
  const lineBreakAfter = (text: string) => Math.exp(distributionAfter(model, text, ruled)[ruled.id('\n')]);
  const next = line();
  const atEnd = lineBreakAfter(`${lines[3]}\n${next}`);
  const midway = lineBreakAfter(`${lines[3]}\n${next.slice(0, 16)}`);
  assert.ok(atEnd > 0.3 && atEnd > 5 * midway, `a line break after 24 chars: ${atEnd}; after 16: ${midway}`);
});

/** A seeded source of random choices, so that a test's text is the same on every run. */
function seeded(seed: number) {
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
  const pick = (chars: string) => chars[Math.floor(random() * chars.length)];
  const letters = (n: number) => Array.from({ length: n }, () => pick('abcdefghijklmnopqrstuvwxyz')).join('');
  return { random, pick, letters };
}

/**
 * A context model that has read `text` alone: the log-probability of each of its ids after `typed`,
 * and how much likelier it finds `char` than `other` there.
 */
function learntFrom(text: string) {
  const coded = Vocabulary.fromText(text, 512, 1);
  const model = new ContextMixingModel(coded.size, wordLetters(coded), characterShapes(coded), 16);
  model.append(coded.encode(text));
  const after = (typed: string) => distributionAfter(model, typed, coded);
  const odds = (typed: string, char: string, other: string) => {
    const logProbs = after(typed);
    return Math.exp(logProbs[coded.id(char)] - logProbs[coded.id(other)]);
  };
  return { coded, after, odds };
}

test('what follows a shape of characters is learnt across names: a digit after five letters, even in a word never seen', () => {
  // Words of five random letters each end in a digit: the characters themselves seldom repeat, only their shape does.
  const { pick, letters } = seeded(11);
  const text = Array.from({ length: 3000 }, () => letters(5) + pick('0123456789')).join(' ');
  const { coded, after } = learntFrom(text);
  const digitAfter = (typed: string) => {
    const logProbs = after(typed);
    return [...'0123456789'].reduce((sum, digit) => sum + Math.exp(logProbs[coded.id(digit)]), 0);
  };
  const unseen = 'qzxwv'; // not in the text, nor any three letters of it that end it
  assert.ok(!text.includes(unseen.slice(2)), 'the test needs a word whose last letters the text never held');
  const afterFive = digitAfter(`${text.slice(-30)} ${unseen}`);
  const afterThree = digitAfter(`${text.slice(-30)} ${unseen.slice(0, 3)}`);
  assert.ok(
    afterFive > 0.8 && afterThree < 0.1,
    `a digit after five letters: ${afterFive}; after three: ${afterThree}`,
  );
});

test('the shapes of the runs before carry a bracket past a word too long for the characters before: its closer is expected', () => {
  // Each line a name, "(" or "<", a word of 9 to 12 letters and the matching ")" or ">": only the opener, more
  // than eight characters back, tells which comes.
  const { random, letters } = seeded(5);
  const line = () => {
    const [open, close] = random() < 0.5 ? '()' : '<>';
    return `${letters(3 + Math.floor(random() * 4))}${open}${letters(9 + Math.floor(random() * 4))}${close}`;
  };
  const text = Array.from({ length: 3000 }, line).join('\n') + '\n';
  const { odds } = learntFrom(text);
  const closers = (typed: string) => odds(typed, ')', '>');
  const inner = 'qwzxvkjpyh';
  const afterRound = closers(`${text.slice(-40)}name(${inner}`);
  const afterAngle = closers(`${text.slice(-40)}name<${inner}`);
  assert.ok(afterRound > 4 && afterAngle < 0.25, `")" over ">" after "(": ${afterRound}; after "<": ${afterAngle}`);
});

test('the shapes of the runs a line began with carry its mark to where it ends: a list item and a heading end otherwise', () => {
  // A list item ends with ";" and a heading with ":", after four words of random letters: past the words, only the
  // line's first runs tell which.
  const { random, letters } = seeded(3);
  const words = () => Array.from({ length: 4 }, () => letters(3 + Math.floor(random() * 4))).join(' ');
  const line = () => (random() < 0.5 ? `- ${words()};` : `# ${words()}:`);
  const text = Array.from({ length: 3000 }, line).join('\n') + '\n';
  const { odds } = learntFrom(text);
  const semicolonOverColon = (typed: string) => odds(typed, ';', ':');
  const typed = 'qwz vkjp yhx zqvw';
  const inList = semicolonOverColon(`${text.slice(-40)}- ${typed}`);
  const inHeading = semicolonOverColon(`${text.slice(-40)}# ${typed}`);
  assert.ok(inList > 4 && inHeading < 0.25, `";" over ":" in a list item: ${inList}; in a heading: ${inHeading}`);
});

test('the weight sets selected by the two characters before, the runs and the word hold what the mixer learnt there', () => {
  // Code-like lines of random names: which input is right differs between a name, a number and the marks around them.
  const { random, letters, pick } = seeded(13);
  const name = () => letters(3 + Math.floor(random() * 6));
  const line = () =>
    random() < 0.5
      ? `${name()}(${name()}, ${pick('0123456789')}${pick('0123456789')});`
      : `- ${name()} ${name()}: ${name()}.`;
  const lines = Array.from({ length: 4000 }, line);
  const text = lines.join('\n') + '\n';
  const rest = Array.from({ length: 30 }, line).join('\n') + '\n';
  const coded = Vocabulary.fromText(text + rest, 512, 1);
  const costOfRest = (withoutSelectedSets: boolean) => {
    const model = new ContextMixingModel(coded.size, wordLetters(coded), characterShapes(coded), 16);
    model.append(coded.encode(text));
    if (withoutSelectedSets) for (const weights of model.selectedWeightSets()) weights.fill(0);
    // What the random letters and digits cost drowns the rest: only the marks, spaces and line breaks are counted.
    let nats = 0;
    for (const char of rest) {
      const cost = model.append([coded.id(char)]);
      if (!/[a-z0-9]/.test(char)) nats += cost;
    }
    return nats;
  };
  const learnt = costOfRest(false);
  const without = costOfRest(true);
  assert.ok(
    learnt < 0.985 * without,
    `the marks' nats with the selected sets as learnt: ${learnt}; set to 0: ${without}`,
  );
});

test('the bitwise mixer starts as its first input, then learns to trust the input that is right', () => {
  const V = vocabulary.size;
  const first = new Float32Array(V).fill(Math.log(0.5 / (V - 1)));
  first[vocabulary.id('a')] = Math.log(0.5);
  const second = new Float32Array(V).fill(Math.log(0.1 / (V - 1)));
  second[vocabulary.id('b')] = Math.log(0.9);
  const mixer = new BitwiseMixer(V, [1, 0], [4]);
  const inputs = [{ logProbs: first }, { logProbs: second }];
  const out = new Float32Array(V);
  mixer.mix(inputs, [0], out);
  assert.ok(Math.abs(total(out) - 1) < 1e-4, `sums to ${total(out)}`);
  assert.ok(Math.abs(probabilityOf(out, 'a') - 0.5) < 0.01, `starts as the first: ${probabilityOf(out, 'a')}`);
  const before = probabilityOf(out, 'b');
  for (let i = 0; i < 300; i++) mixer.learn(inputs, [0], vocabulary.id('b'));
  mixer.mix(inputs, [0], out);
  assert.ok(probabilityOf(out, 'b') > before + 0.3, `"b" from ${before} to ${probabilityOf(out, 'b')}`);
  assert.ok(Math.abs(total(out) - 1) < 1e-4);
});

test('the bitwise mixer mixes where the ids are likely, and splits ids it reaches with almost nothing as its first input does', () => {
  const V = vocabulary.size;
  const [a, b] = [vocabulary.id('a'), vocabulary.id('b')];
  // Every pair of sibling leaves other than those of "a" and "b" is unlikely, split 1:3 by the first input and 3:1 by
  // the second.
  const input = (pa: number, pb: number, even: number, odd: number) => {
    const logProbs = new Float32Array(V);
    for (let id = 0; id < V; id++) logProbs[id] = Math.log(id % 2 === 0 ? even : odd);
    logProbs[a] = Math.log(pa);
    logProbs[b] = Math.log(pb);
    return { logProbs };
  };
  const first = input(0.7, 0.3, 1e-9, 3e-9);
  const second = input(0.3, 0.7, 3e-9, 1e-9);
  // Trusting the second input alone.
  const mixer = new BitwiseMixer(V, [0, 1], [1]);
  const out = mixer.mix([first, second], [0], new Float32Array(V));
  assert.ok(probabilityOf(out, 'b') > probabilityOf(out, 'a'), `mixed where likely: a ${probabilityOf(out, 'a')}`);
  assert.ok(Math.abs(total(out) - 1) < 1e-4, `sums to ${total(out)}`);
  const splits: number[] = [];
  for (let id = 0; id + 1 < V; id += 2) {
    if ([id, id + 1].includes(a) || [id, id + 1].includes(b)) continue;
    // What reaches the pair is what the two have.
    if (Math.exp(out[id]) + Math.exp(out[id + 1]) < 5e-5) splits.push(Math.exp(out[id + 1] - out[id]));
  }
  assert.ok(splits.length >= 4, `${splits.length} unlikely pairs`);
  for (const split of splits) assert.ok(Math.abs(split - 3) < 0.01, `an unlikely pair split ${split}:1, not 3:1`);
});

test('each kind of context the bitwise mixer selects weights by learns which input to trust in each of its contexts', () => {
  const V = vocabulary.size;
  const sureOf = (char: string) => {
    const logProbs = new Float32Array(V).fill(Math.log(0.2 / (V - 1)));
    logProbs[vocabulary.id(char)] = Math.log(0.8);
    return { logProbs };
  };
  const inputs = [sureOf('a'), sureOf('b')];
  // The first kind tells nothing apart; the second says whether the first input is right there or the second.
  const mixer = new BitwiseMixer(V, [0.5, 0.5], [1, 2]);
  for (let i = 0; i < 400; i++) {
    mixer.learn(inputs, [0, 0], vocabulary.id('a'));
    mixer.learn(inputs, [0, 1], vocabulary.id('b'));
  }
  const out = new Float32Array(V);
  const inFirst = probabilityOf(mixer.mix(inputs, [0, 0], out), 'a');
  const inSecond = probabilityOf(mixer.mix(inputs, [0, 1], out), 'b');
  assert.ok(inFirst > 0.9, `"a" where the first input is right: ${inFirst}`);
  assert.ok(inSecond > 0.9, `"b" where the second is: ${inSecond}`);
  assert.equal(mixer.weightArrays().length, 4, 'shared, by node, and a table per kind of context');
  const secondKind = mixer.weightArrays()[3].slice();
  for (let i = 0; i < 50; i++) mixer.learn(inputs, [0, -1], vocabulary.id('b'));
  assert.deepEqual(mixer.weightArrays()[3], secondKind, 'a context of -1 selects no set of its kind to learn');
  const shared = probabilityOf(mixer.mix(inputs, [0, -1], out), 'b');
  assert.ok(shared < inSecond, `without the second kind's set "b" is less sure: ${shared} against ${inSecond}`);
});

test('through a long repeat the bitwise mixer stops learning where its mix is at the limit, so new text after costs what it did', () => {
  const V = vocabulary.size;
  const sureOf = (char: string, p: number) => {
    const logProbs = new Float32Array(V).fill(Math.log((1 - p) / (V - 1)));
    logProbs[vocabulary.id(char)] = Math.log(p);
    return { logProbs };
  };
  const repeat = [sureOf('a', 0.99), sureOf('a', 0.95)];
  const newText = [sureOf('a', 0.7), sureOf('b', 0.7)];
  const mixer = new BitwiseMixer(V, [1, 0], [4, 3]);
  const out = new Float32Array(V);
  const learnRepeat = (times: number) => {
    for (let i = 0; i < times; i++) mixer.learn(repeat, [0, 2], vocabulary.id('a'));
  };
  learnRepeat(3_000);
  const weightsThen = mixer.weightArrays().map((weights) => weights.slice());
  const surpriseThen = probabilityOf(mixer.mix(newText, [1, 2], out), 'b');
  learnRepeat(30_000);
  mixer
    .weightArrays()
    .forEach((weights, k) =>
      weights.forEach((weight, i) =>
        assert.ok(
          Math.abs(weight - weightsThen[k][i]) < 0.05 * Math.max(1, Math.abs(weightsThen[k][i])),
          `weight ${i} of set ${k}: ${weightsThen[k][i]} -> ${weight}`,
        ),
      ),
    );
  const surpriseNow = probabilityOf(mixer.mix(newText, [1, 2], out), 'b');
  assert.ok(
    surpriseNow > 0.9 * surpriseThen,
    `"b" in new text: ${surpriseThen} after the repeat began, ${surpriseNow} after`,
  );
});

test("the context mixing's weights, too, stop growing through text it has come to predict at the limit", () => {
  const model = new ContextMixingModel(vocabulary.size, letters, characterShapes(vocabulary), 12);
  const ids = vocabulary.encode(notes);
  // learnt() holds the weight sets selected by the order and by the node after the table and the histories.
  const weights = () => [...model.selectedWeightSets(), ...model.learnt().slice(3, 5)].map((w) => w.slice());
  for (let i = 0; i < 5; i++) model.append(ids);
  const then = weights();
  for (let i = 0; i < 60; i++) model.append(ids);
  weights().forEach((set, k) =>
    set.forEach((weight, i) =>
      assert.ok(
        Math.abs(weight - then[k][i]) < 0.05 * Math.max(1, Math.abs(then[k][i])),
        `weight ${i} of set ${k}: ${then[k][i]} -> ${weight}`,
      ),
    ),
  );
});

test('an adaptive probability map starts as the identity in every row, and learns only the cells it read', () => {
  const rows = 37;
  const map = new ProbabilityMap(rows, 0.02);
  for (let row = 0; row < rows; row++)
    for (const x of [-STRETCH_LIMIT, -3, -0.5, 0, 1.25, STRETCH_LIMIT])
      assert.ok(Math.abs(map.refine(row, x) - squash(x)) < 0.01, `row ${row} at ${x}`);
  map.refine(rows - 1, 2);
  map.learn(1);
  assert.ok(map.refine(rows - 1, 2) > squash(2), 'the cells read learn towards the bit');
  assert.ok(Math.abs(map.refine(0, 2) - squash(2)) < 0.01, 'another row is untouched');
});
