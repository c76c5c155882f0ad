// The character vocabulary: code points, the unknown symbol, and validation of saved vocabularies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { characterStart, codePointLength, UNKNOWN, Vocabulary } from '../model/vocab';

const SAMPLE = '你好，世界 🎉👩‍💻 café';

test('vocabulary round-trips CJK, emoji and accented text by code point', () => {
  const vocab = Vocabulary.fromText(SAMPLE, 1000);
  const ids = vocab.encode(SAMPLE);
  assert.equal(ids.length, [...SAMPLE].length);
  assert.notEqual(ids.length, SAMPLE.length, 'sample must contain astral code points to be meaningful');
  assert.ok(!ids.includes(0), 'every character of the training text is in the vocabulary');
  assert.equal(vocab.decode(ids), SAMPLE);
  assert.equal(vocab.chars[0], UNKNOWN);
  for (const c of vocab.chars) assert.equal([...c].length, 1, `entry ${JSON.stringify(c)} is one code point`);
  assert.ok(vocab.chars.includes('🎉'));
  assert.ok(vocab.chars.includes('💻'));
  assert.ok(vocab.chars.includes('\u200d'), 'the zero-width joiner inside 👩‍💻 is its own entry');
  assert.equal(vocab.size, new Set(SAMPLE).size + 1);
});

test('unknown characters map to 0 and decode to UNKNOWN', () => {
  const vocab = Vocabulary.fromText('abc', 10);
  const ids = vocab.encode('aXb😀');
  assert.deepEqual([...ids], [vocab.id('a'), 0, vocab.id('b'), 0]);
  assert.equal(vocab.id('X'), 0);
  assert.equal(vocab.id('ab'), 0);
  assert.equal(vocab.decode(ids), `a${UNKNOWN}b${UNKNOWN}`);
  assert.throws(() => vocab.decode([vocab.size]), /vocabulary: /);
  assert.throws(() => vocab.decode([-1]), /vocabulary: /);
});

test('fromText keeps the most frequent characters, ties by code point, ids sorted by code point', () => {
  // z is most frequent; b and c tie and b wins on code point; a is rarest.
  const vocab = Vocabulary.fromText('zzzz' + 'ccc' + 'bbb' + 'a', 3);
  assert.deepEqual(vocab.chars, [UNKNOWN, 'b', 'z']);
  assert.equal(vocab.size, 3);
  assert.equal(vocab.encode('a')[0], 0);
  // UNKNOWN in the text must not take a second slot.
  const withReplacement = Vocabulary.fromText(`${UNKNOWN}${UNKNOWN}${UNKNOWN}xy`, 10);
  assert.deepEqual(withReplacement.chars, [UNKNOWN, 'x', 'y']);
  assert.equal(Vocabulary.fromText('bca', 10).id('a'), 1);
  assert.throws(() => Vocabulary.fromText('abc', 1), /^Error: vocabulary: /);
  assert.throws(() => Vocabulary.fromText('', 10), /^Error: vocabulary: /);
});

test('fromText with a minimum count leaves rarer characters to UNKNOWN, unless none is that frequent', () => {
  const vocab = Vocabulary.fromText('aaa bb c d\n', 100, 2);
  assert.deepEqual(vocab.chars, [UNKNOWN, ' ', 'a', 'b']);
  assert.equal(vocab.id('c'), 0, 'seen once');
  assert.deepEqual(Vocabulary.fromText('aaabbcc', 3, 2).chars, [UNKNOWN, 'a', 'b'], 'the size cap still holds');
  assert.deepEqual(Vocabulary.fromText('xyz', 100, 2).chars, [UNKNOWN, 'x', 'y', 'z'], 'no character twice: all kept');
  assert.throws(() => Vocabulary.fromText('abc', 10, 0), /^Error: vocabulary: minCount/);
});

test('toJSON / fromJSON round-trip', () => {
  const vocab = Vocabulary.fromText(SAMPLE, 1000);
  const copy = Vocabulary.fromJSON(JSON.parse(JSON.stringify(vocab)));
  assert.deepEqual(copy.chars, vocab.chars);
  assert.deepEqual([...copy.encode(SAMPLE)], [...vocab.encode(SAMPLE)]);
});

test('fromJSON rejects malformed input with a "vocabulary: " message', () => {
  const bad: unknown[] = [
    null,
    'abc',
    42,
    [UNKNOWN, 'a'],
    {},
    { chars: 'abc' },
    { chars: [UNKNOWN] },
    { chars: [UNKNOWN, 7] },
    { chars: [UNKNOWN, 'ab'] },
    { chars: [UNKNOWN, ''] },
    { chars: [UNKNOWN, 'a', 'a'] },
    { chars: ['a', UNKNOWN] },
    { chars: ['a', 'b'] },
  ];
  for (const json of bad) {
    assert.throws(
      () => Vocabulary.fromJSON(json),
      (err: unknown) => err instanceof Error && err.message.startsWith('vocabulary: '),
      `should reject ${JSON.stringify(json)}`,
    );
  }
  assert.equal(Vocabulary.fromJSON({ chars: [UNKNOWN, '🎉'] }).size, 2);
});

test('characterStart moves an offset between the halves of a surrogate pair back to the pair, and leaves any other', () => {
  const text = 'a🎉b👩‍💻';
  for (let offset = 0; offset <= text.length; offset++) {
    const start = characterStart(text, offset);
    const insidePair = offset > 0 && offset < text.length && text.codePointAt(offset - 1)! > 0xffff;
    assert.equal(start, insidePair ? offset - 1 : offset, `offset ${offset}`);
    assert.doesNotMatch(text.slice(start), /^[\udc00-\udfff]/, `offset ${offset} cuts a character`);
  }
  // A lone low surrogate is a character of its own, and so is a lone high one before it.
  assert.equal(characterStart('x\ude00y', 1), 1);
  assert.equal(characterStart('\ud83d\ud83dx', 1), 1);
  assert.equal(characterStart('\ude00', 0), 0);
});

test('codePointLength counts what the vocabulary encodes: a surrogate pair as one, a lone half as one', () => {
  const vocab = Vocabulary.fromText(SAMPLE, 1000);
  for (const text of ['', SAMPLE, 'a\udc00b', '\udc00', '\ud83c', 'x\ud83c', '\ud83c\ud83c\udf89', '\udf89\ud83c'])
    assert.equal(codePointLength(text), vocab.encode(text).length, JSON.stringify(text));
});
