// The word model: what follows the current word's typed part given the word before, whatever separates them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  advanceWords,
  characterShapes,
  nesting,
  twoWordContext,
  WORD_STATE_SIZE,
  wordContext,
  WordModel,
  wordLetters,
  wordsDistribution,
} from '../model/word-model';
import { nestingMarks, NESTINGS } from '../model/nesting';
import { Vocabulary } from '../model/vocab';

const vocabulary = Vocabulary.fromText('npm install the package, then run it, update.\n', 512, 1);
const letters = wordLetters(vocabulary);

/** The word slot after reading `text` from the start. */
function slotAfter(text: string): Float32Array {
  const slot = new Float32Array(WORD_STATE_SIZE);
  for (const id of vocabulary.encode(text)) advanceWords(slot, id, letters);
  return slot;
}

function uniform(): Float32Array {
  return new Float32Array(vocabulary.size).fill(-Math.log(vocabulary.size));
}

test('the context is the previous word and the current word so far, whatever separates the words', () => {
  assert.equal(wordContext(slotAfter('npm inst')), wordContext(slotAfter('run it.\nnpm, inst')));
  assert.notEqual(wordContext(slotAfter('npm inst')), wordContext(slotAfter('run inst')), 'another word before');
  assert.notEqual(wordContext(slotAfter('npm inst')), wordContext(slotAfter('npm ins')), 'another typed part');
});

test('what followed a context before becomes likelier there, the rest keeps its shares, and it sums to one', () => {
  const model = new WordModel(letters);
  model.append(vocabulary.encode('npm install it. npm install the package. npm inspect'));
  const lower = uniform();
  const out = new Float32Array(vocabulary.size);
  assert.ok(model.distribution(wordContext(slotAfter('then npm ins')), lower, out), 'a context it has seen');
  const p = (c: string) => Math.exp(out[vocabulary.id(c)]);
  // Witten-Bell: "t" twice and "p" once in 3, 2 distinct: (2 + 2/V) / 5 and (1 + 2/V) / 5.
  const V = vocabulary.size;
  assert.ok(Math.abs(p('t') - (2 + 2 / V) / 5) < 1e-6, `p(t) = ${p('t')}`);
  assert.ok(Math.abs(p('p') - (1 + 2 / V) / 5) < 1e-6);
  assert.ok(Math.abs(p('a') - 2 / V / 5) < 1e-6, 'an unseen character keeps the escape share of the lower model');
  const total = out.reduce((sum, x) => sum + Math.exp(x), 0);
  assert.ok(Math.abs(total - 1) < 1e-5, `sums to ${total}`);
  assert.equal(model.distribution(wordContext(slotAfter('run pac')), lower, out), false);
  assert.deepEqual([...out], [...lower], 'a context never seen is the lower model');
});

test('it grows past its first tables and still counts what it read first', () => {
  const model = new WordModel(letters, 2);
  const words = Array.from({ length: 3000 }, (_, i) => ['npm', 'install', 'the', 'package', 'then', 'run'][i % 6]);
  model.append(vocabulary.encode(words.join(' ')));
  const out = new Float32Array(vocabulary.size);
  model.distribution(wordContext(slotAfter('npm ')), uniform(), out);
  assert.ok(Math.exp(out[vocabulary.id('i')]) > 0.99, 'after "npm " came "i" every time');
});

test('the two words before tell apart what the one before cannot, and the document counts over the notes', () => {
  const notes = new WordModel(letters);
  notes.append(vocabulary.encode('then npm install. run npm update. then npm install. run npm update. '));
  const document = new WordModel(letters);
  const out = new Float32Array(vocabulary.size);
  const scratch: [Float32Array, Float32Array] = [new Float32Array(vocabulary.size), new Float32Array(vocabulary.size)];
  const p = (text: string, c: string) => {
    assert.ok(wordsDistribution(slotAfter(text), [notes, document], uniform(), out, scratch));
    return Math.exp(out[vocabulary.id(c)]);
  };
  assert.notEqual(twoWordContext(slotAfter('then npm ')), twoWordContext(slotAfter('run npm ')));
  assert.ok(p('then npm ', 'i') > 0.7 && p('run npm ', 'u') > 0.7, 'each after its own word');
  assert.ok(p('npm ', 'i') < 0.6, 'after "npm" alone, either');
  // The document's own habit, learnt as it is typed, outweighs the notes'.
  const typed = slotAfter('then npm ');
  for (let i = 0; i < 4; i++) document.learnAt(typed, vocabulary.id('u'));
  assert.ok(p('then npm ', 'u') > p('then npm ', 'i'));
  assert.equal(wordsDistribution(slotAfter('the package '), [notes, document], uniform(), out, scratch), false);
});

test('nesting tells the Markdown spans apart, and each ends where Markdown ends it', () => {
  const markdown = Vocabulary.fromText(
    'See [the docs](http://x.io) (or `run()`), "quoted".\n```js\ncode\n```\n',
    512,
    1,
  );
  const markdownLetters = wordLetters(markdown);
  const shapes = characterShapes(markdown);
  const marks = nestingMarks(markdown);
  const after = (text: string) => {
    const slot = new Float32Array(WORD_STATE_SIZE);
    for (const id of markdown.encode(text)) advanceWords(slot, id, markdownLetters, shapes, marks);
    return nesting(slot);
  };
  const outside = after('See');
  const spans = {
    'link text': after('See [the d'),
    'link target': after('See [the docs](http://x'),
    parentheses: after('See (or r'),
    'inline code': after('See `ru'),
    quotes: after('See "quo'),
    fence: after('See\n```js\nco'),
  };
  const values = Object.values(spans);
  assert.equal(
    new Set([outside, ...values]).size,
    values.length + 1,
    `all apart: ${JSON.stringify({ outside, spans })}`,
  );
  assert.equal(outside, 0, 'outside every span is 0, where the mixers choose no set of weights by the spans');
  assert.ok(values.every((value) => value > 0 && value < NESTINGS));
  assert.equal(after('See (or `run()`), '), outside, 'code and parentheses close');
  assert.equal(after('See [the docs](http://x.io) '), outside, "a link's target ends at its parenthesis");
  assert.equal(after('See [the docs] (or r'), spans.parentheses, 'a bracket then a space is no link');
  assert.equal(after('See [the d\nSee'), outside, 'a line break ends a span within the line');
  assert.equal(after('See\n```js\ncode\n\nco'), spans.fence, 'but not a fence');
  assert.equal(after('See\n```js\ncode\n```\nSee'), outside, 'which its second line of backticks ends');
  assert.equal(after('See\n````\nco'), spans.fence, 'four backticks open a fence too');
  assert.equal(after('See\n```js\ncode\n``````\nSee'), outside, 'and six close one');
  assert.notEqual(after('See\nx```js\nco'), spans.fence, 'backticks after text on their line open no fence');
});
