// The notes' n-gram: normalisation, agreement of its queries, growth, its bound, and its file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { NgramModel, type NgramConfidence } from '../model/ngram';
import {
  NGRAM_FORMAT_VERSION,
  NgramFormatError,
  loadNgram,
  ngramChecksum,
  ngramFilePath,
  saveNgram,
} from '../model/ngram-format';
import { Vocabulary } from '../model/vocab';
import { tempModelDir } from './support/temp-dirs';

const TEXT = [
  'The quick brown fox jumps over the lazy dog. ',
  'Pack my box with five dozen liquor jugs. ',
  'How vexingly quick daft zebras jump! ',
  'Sphinx of black quartz, judge my vow. ',
]
  .join('')
  .repeat(20);
// Characters that never occur in TEXT, so some ids are only ever predicted by the uniform base.
const vocab = Vocabulary.fromText(TEXT + 'éß€', 512);

const tempDir = () => tempModelDir('char-ngram');

function trained(order = 9, text = TEXT): NgramModel {
  const model = new NgramModel(vocab.size, { order });
  model.add(vocab.encode(text));
  return model;
}

function confidence(): NgramConfidence {
  return { order: 0, contextCount: 0, successors: 0, seenMass: 0 };
}

function next(model: NgramModel, context: string): Float32Array {
  const out = new Float32Array(vocab.size);
  model.distribution(vocab.encode(context), out);
  return out;
}

function assertDistribution(out: Float32Array, label: string): void {
  let sum = 0;
  for (let i = 0; i < out.length; i++) {
    assert.ok(out[i] > 0 && Number.isFinite(out[i]), `${label}: p[${i}] = ${out[i]}`);
    sum += out[i];
  }
  assert.ok(Math.abs(sum - 1) < 1e-5, `${label}: sums to ${sum}`);
}

test('distributions sum to 1 with no zero for seen, unseen, empty and unknown-id contexts', () => {
  const model = trained();
  const contexts = ['The quick brown f', 'zzzzqqqq', '', 'é€ß', 'jump', '\uFFFD\uFFFDab', 'x'];
  for (const context of contexts) assertDistribution(next(model, context), JSON.stringify(context));
  const ids = vocab.encode('lazy dog');
  ids[3] = 0;
  const out = new Float32Array(vocab.size);
  model.distribution(ids, out);
  assertDistribution(out, 'unknown id in the context');
  // An empty model is the uniform base.
  assertDistribution(next(new NgramModel(vocab.size), 'abc'), 'empty model');
  for (const order of [1, 2, 4]) assertDistribution(next(trained(order), 'The quick'), `order ${order}`);
});

test('logProb and score agree with distribution', () => {
  const model = trained(6);
  const ids = vocab.encode('How vexingly quick daft zebras jump over the quartz sphinx €!');
  const out = new Float32Array(vocab.size);
  let nats = 0;
  for (let t = 0; t < ids.length; t++) {
    const context = ids.subarray(0, t);
    model.distribution(context, out);
    const lp = model.logProb(context, ids[t]);
    assert.ok(Math.abs(lp - Math.log(out[ids[t]])) < 1e-6, `position ${t}`);
    nats -= lp;
  }
  const scored = model.score(ids);
  assert.equal(scored.chars, ids.length);
  assert.ok(Math.abs(scored.nats - nats) < 1e-6);
  const tail = model.score(ids, 10);
  assert.equal(tail.chars, ids.length - 10);
  assert.ok(tail.nats < scored.nats);
});

test('a context one symbol past a queried one gets the same distribution as a fresh walk', () => {
  // Pruned, so that some contexts' suffixes have gaps.
  const model = new NgramModel(vocab.size, { order: 9, maxNodes: 1000 });
  model.add(vocab.encode(TEXT));
  assert.ok(model.stats().prunes > 0);
  const fresh = NgramModel.fromArrays(model.toArrays());
  const ids = vocab.encode('Pack my box with five dozen quick jugs, judge my vow. The lazy fox €!');
  const warm = new Float32Array(vocab.size);
  const cold = new Float32Array(vocab.size);
  const orders: number[] = [];
  for (let t = 0; t <= ids.length; t++) orders.push(model.distribution(ids.subarray(0, t), warm));
  for (let t = ids.length; t >= 0; t--) {
    model.distribution(ids.subarray(0, t), warm);
    assert.equal(fresh.distribution(ids.subarray(0, t), cold), orders[t], `order at ${t}`);
    model.distribution(ids.subarray(0, t), warm);
    assert.deepEqual(cold, warm, `distribution at ${t}`);
  }
});

test('a longer context predicts a repeated name; adding text makes it predictable', () => {
  const model = trained(9);
  const name = 'Jukovquib';
  const before = next(model, 'said Jukovqui')[vocab.id('b')];
  model.add(vocab.encode(`The letter from ${name} arrived. `.repeat(3)));
  const after = next(model, 'said Jukovqui')[vocab.id('b')];
  assert.ok(before < 0.5, `before adding: ${before}`);
  assert.ok(after > 0.9, `after adding: ${after}`);
  const c = confidence();
  model.distribution(vocab.encode('said Jukovqui'), new Float32Array(vocab.size), c);
  assert.equal(c.order, 8, 'the whole 8-symbol context was seen');
  assert.equal(c.successors, 1);
  assert.ok(c.contextCount >= 3 && c.seenMass > 0.9);

  // The same text under a short order is much less sure.
  const bigram = new NgramModel(vocab.size, { order: 2 });
  bigram.add(vocab.encode(TEXT + `The letter from ${name} arrived. `.repeat(3)));
  assert.ok(next(bigram, 'said Jukovqui')[vocab.id('b')] < after - 0.3);
});

test('tuneDiscountScale picks the candidate that scores the held-out text best', () => {
  const model = trained(7);
  const heldOut = vocab.encode('Sphinx of black quartz, judge my box of five dozen liquor jugs. The lazy fox.');
  const candidates = [0.5, 1, 1.5];
  const nats = candidates.map((scale) => {
    model.discountScale = scale;
    return model.score(heldOut).nats;
  });
  model.discountScale = 1.15;
  const chosen = model.tuneDiscountScale(heldOut, candidates);
  const best = Math.min(...nats);
  assert.equal(model.discountScale, chosen);
  assert.ok(model.score(heldOut).nats <= best + 1e-9);
  assert.throws(() => (model.discountScale = 0), RangeError);
});

test('add(ids, from) appends: the same model as adding the whole text at once', () => {
  const whole = vocab.encode(TEXT.slice(0, 500));
  const once = new NgramModel(vocab.size, { order: 5 });
  once.add(whole);
  const appended = new NgramModel(vocab.size, { order: 5 });
  appended.add(whole.subarray(0, 123));
  appended.add(whole, 123);
  assert.deepEqual(appended.toArrays(), once.toArrays());
  assert.throws(() => once.add([vocab.size]), RangeError);
  assert.throws(() => once.add([1.5]), RangeError);
  assert.throws(() => once.distribution([-1], new Float32Array(vocab.size)), RangeError);
});

test('the node bound holds: pruning keeps the model within maxNodes and normalised', () => {
  const maxNodes = 3000;
  const model = new NgramModel(vocab.size, { order: 9, maxNodes });
  let seed = 7;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
  let reported = 0;
  for (let chunk = 0; chunk < 20; chunk++) {
    const ids = Int32Array.from({ length: 400 }, () => 1 + Math.floor(random() * (vocab.size - 1)));
    reported += model.add(ids);
    assert.ok(model.size <= maxNodes, `size ${model.size} after chunk ${chunk}`);
  }
  const stats = model.stats();
  assert.ok(stats.prunes > 0 && stats.pruned > 0, 'pruning ran');
  assert.equal(reported, stats.pruned, 'add() reports what it pruned');
  assert.equal(stats.refused, 0);
  // Every stored n-gram was seen: n-grams re-added after their suffix was pruned count too.
  const arrays = model.toArrays();
  assert.ok(
    arrays.count.subarray(1).every((c) => c >= 1),
    'no count-0 node',
  );
  assert.deepEqual(NgramModel.fromArrays(arrays).toArrays(), arrays);
  assertDistribution(next(model, 'abcdefgh'), 'after pruning');
  // What was added last is still known after all that pruning.
  model.add(vocab.encode('Sphinx of black quartz '.repeat(3)));
  assert.ok(model.size <= maxNodes);
  assert.ok(next(model, 'Sphinx of black qua')[vocab.id('r')] > 0.5);
  assert.throws(() => new NgramModel(vocab.size, { maxNodes: 10 }), RangeError);
});

/** The count of the n-gram `text` in a model's arrays (breadth-first, as saved), or undefined when it has none. */
function countOf(arrays: ReturnType<NgramModel['toArrays']>, text: string): number | undefined {
  let node = 0;
  for (const id of vocab.encode(text)) {
    let child = -1;
    for (let i = node + 1; i < arrays.nodeCount && arrays.parent[i] <= node; i++)
      if (arrays.parent[i] === node && arrays.symbol[i] === id) child = i;
    if (child < 0) return undefined;
    node = child;
  }
  return arrays.count[node];
}

test('counts past 16 bits are kept exactly: counted up past them, saved and loaded, learnt on, and through pruning', () => {
  const model = new NgramModel(vocab.size, { order: 3 });
  model.add(vocab.encode('ab'.repeat(32_000)));
  model.add(vocab.encode('ab'.repeat(40_000)));
  // Each text's every "ab" but its last is followed by an "a".
  const abas = 32_000 - 1 + 40_000 - 1;
  assert.equal(countOf(model.toArrays(), 'aba'), abas);
  const dir = tempDir();
  saveNgram(dir, model, vocab);
  const loaded = loadNgram(dir, vocab)!;
  assert.equal(countOf(loaded.toArrays(), 'aba'), abas);
  assert.deepEqual(next(loaded, 'ab'), next(model, 'ab'));
  loaded.add(vocab.encode('ab'.repeat(10)));
  assert.equal(countOf(loaded.toArrays(), 'aba'), abas + 10 - 1);

  // Pruning renumbers the nodes; the large counts go with theirs.
  const bounded = new NgramModel(vocab.size, { order: 2, maxNodes: 600 });
  bounded.add(vocab.encode('ab'.repeat(70_000)));
  let seed = 11;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
  const [a, b] = vocab.encode('ab');
  let [abs, bas] = [70_000, 70_000 - 1];
  for (let chunk = 0; chunk < 10; chunk++) {
    const ids = Int32Array.from({ length: 300 }, () => 1 + Math.floor(random() * (vocab.size - 1)));
    for (let i = 1; i < ids.length; i++) {
      if (ids[i - 1] === a && ids[i] === b) abs++;
      if (ids[i - 1] === b && ids[i] === a) bas++;
    }
    bounded.add(ids);
  }
  assert.ok(bounded.stats().prunes > 0, 'pruning ran');
  assert.equal(countOf(bounded.toArrays(), 'ab'), abs);
  assert.equal(countOf(bounded.toArrays(), 'ba'), bas);
  assertDistribution(next(bounded, 'ab'), 'after pruning');
  assert.ok(next(bounded, 'ab')[vocab.id('a')] > 0.9);
});

test('save then load gives bitwise the same probabilities and confidence', () => {
  const dir = tempDir();
  const model = trained();
  // A save killed before its rename left its temporary, which the next save removes.
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(`${ngramFilePath(dir)}.tmp-${spawnSync(process.execPath, ['-e', '']).pid}-0a1b2c`, 'half a file');
  saveNgram(dir, model, vocab);
  const loaded = loadNgram(dir, vocab);
  assert.ok(loaded);
  assert.equal(loaded.order, model.order);
  assert.deepEqual(loaded.stats(), model.stats());
  for (const context of ['', 'The quick brown f', 'zzq', 'Pack my box with fi']) {
    const a = new Float32Array(vocab.size);
    const b = new Float32Array(vocab.size);
    const ca = confidence();
    const cb = confidence();
    model.distribution(vocab.encode(context), a, ca);
    loaded.distribution(vocab.encode(context), b, cb);
    assert.deepEqual(b, a);
    assert.deepEqual(cb, ca);
  }
  // Served models are loaded from files: they find nodes through their parents' lists, not an index.
  assert.ok(
    NgramModel.fromArrays(model.toArrays()).memoryBytes() - loaded.memoryBytes() >= 4 * loaded.size,
    'a loaded model keeps no index of its nodes',
  );
  // The loaded model keeps learning.
  loaded.add(vocab.encode('Qwerty'));
  assert.equal(loadNgram(tempDir(), vocab), null, 'no file: no n-gram');
  assert.deepEqual(fs.readdirSync(dir), ['ngram.bin'], 'no temporary files left');
});

for (const adopt of [false, true])
  test(`a loaded model learns on as the same model built in one go, through growth and pruning${adopt ? ', without an index, as one loaded from a file' : ''}`, () => {
    const base = trained(5, TEXT.slice(0, 2000));
    const loaded = NgramModel.fromArrays(base.toArrays(), adopt);
    const extra = vocab.encode('Quartz sphinxes judge lazy zebras; the dog jumps over. '.repeat(3));
    base.add(extra);
    loaded.add(extra);
    assert.equal(loaded.size, base.size);
    const roundTrip = NgramModel.fromArrays(loaded.toArrays());
    for (const context of ['', 'Quartz sph', 'the dog j', 'zebras; ', 'Pack my b', 'xq']) {
      const [a, b, c] = [base, loaded, roundTrip].map((model) => next(model, context));
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(a[i] - b[i]) < 1e-6, `after "${context}", p[${i}]: ${b[i]} loaded, ${a[i]} built`);
        assert.ok(Math.abs(c[i] - b[i]) < 1e-6, `after "${context}", p[${i}]: ${c[i]} saved again, ${b[i]} loaded`);
      }
    }
    // Pruning drops loaded and added nodes alike; what is left still loads as a valid trie.
    const arrays = trained(9, TEXT.slice(0, 1500)).toArrays();
    const learntOn = (withoutIndex: boolean) => {
      const model = NgramModel.fromArrays({ ...arrays, maxNodes: arrays.nodeCount + 300 }, withoutIndex);
      let seed = 3;
      const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
      for (let chunk = 0; chunk < 5; chunk++)
        model.add(Int32Array.from({ length: 300 }, () => 1 + Math.floor(random() * (vocab.size - 1))));
      return model;
    };
    const bounded = learntOn(adopt);
    assert.ok(bounded.stats().prunes > 0, 'pruning ran');
    // Without an index the trie keeps no parents of its loaded nodes, and derives them to prune and save.
    assert.deepEqual(bounded.toArrays(), learntOn(!adopt).toArrays(), 'the same nodes, with and without an index');
    assert.ok(bounded.size <= arrays.nodeCount + 300);
    assertDistribution(next(bounded, 'The quick brown'), 'after pruning a loaded model');
    const reloaded = NgramModel.fromArrays(bounded.toArrays());
    assert.deepEqual(next(reloaded, 'The quick brown'), next(bounded, 'The quick brown'));
  });

test('loading with another vocabulary is refused', () => {
  const dir = tempDir();
  saveNgram(dir, trained(), vocab);
  const same = Vocabulary.fromJSON(vocab.toJSON());
  assert.ok(loadNgram(dir, same));
  // Same size, different characters: the ids would mean other characters.
  const chars = vocab.toJSON().chars;
  chars[chars.length - 1] = '✓';
  assert.throws(
    () => loadNgram(dir, Vocabulary.fromJSON({ chars })),
    (err: Error) =>
      err instanceof NgramFormatError && /different vocabulary/.test(err.message) && /npm run train/.test(err.message),
  );
  assert.throws(() => loadNgram(dir, Vocabulary.fromText('abc', 10)), NgramFormatError);
  assert.throws(() => saveNgram(dir, trained(), Vocabulary.fromText('abc', 10)), NgramFormatError);
});

test('damaged files are refused with NgramFormatError, quoting nothing from the file', () => {
  const dir = tempDir();
  saveNgram(dir, trained(4), vocab);
  const file = ngramFilePath(dir);
  const good = fs.readFileSync(file);
  const headerEnd = 4 + good.readUInt32LE(0);
  const header = JSON.parse(good.toString('utf8', 4, headerEnd));
  const payloadStart = Math.ceil(headerEnd / 8) * 8;

  const refuse = (bytes: Buffer, pattern: RegExp, label: string) => {
    fs.writeFileSync(file, bytes);
    assert.throws(
      () => loadNgram(dir, vocab),
      (err: Error) => err instanceof NgramFormatError && pattern.test(err.message) && !err.message.includes('SECRET'),
      label,
    );
  };
  const framed = (fields: Record<string, unknown>, payload: Buffer = good.subarray(payloadStart)) => {
    const json = Buffer.from(JSON.stringify(fields));
    const head = Buffer.alloc(Math.ceil((4 + json.length) / 8) * 8, 0x20);
    head.writeUInt32LE(json.length, 0);
    json.copy(head, 4);
    return Buffer.concat([head, payload]);
  };
  const withHeader = (changes: Record<string, unknown>, payload?: Buffer) => framed({ ...header, ...changes }, payload);

  refuse(good.subarray(0, good.length - 3), /truncated/, 'truncated payload');
  refuse(good.subarray(0, 2), /truncated/, 'truncated length');
  refuse(good.subarray(0, 40), /truncated|header length/, 'truncated header');
  refuse(Buffer.concat([good, Buffer.alloc(8)]), /too long/, 'trailing bytes');
  const flipped = Buffer.from(good);
  flipped[good.length - 5] ^= 0x10;
  refuse(flipped, /checksum/, 'a flipped payload bit');
  const huge = Buffer.from(good);
  huge.writeUInt32LE(0xfffffff0, 0);
  refuse(huge, /header length/, 'a huge header length');
  refuse(Buffer.concat([Buffer.from([9, 0, 0, 0]), Buffer.from('{"SECRET"')]), /JSON header/, 'broken JSON');
  refuse(withHeader({ format: 'SECRET' }), /char-ngram/, 'another format');
  refuse(withHeader({ formatVersion: NGRAM_FORMAT_VERSION + 1 }), /newer version/, 'a newer version');
  refuse(withHeader({ nodeCount: 2 ** 40 }), /nodeCount/, 'an absurd node count');
  refuse(withHeader({ nodeCount: header.nodeCount + 1000 }), /truncated/, 'more nodes than bytes');
  refuse(withHeader({ countOfCounts: [1, 2] }), /countOfCounts/, 'short count-of-counts');
  // A payload that passes its checksum but whose table is wrong: a node whose parent follows it.
  const payload = Buffer.from(good.subarray(payloadStart));
  payload.writeInt32LE(header.nodeCount - 1, 4 * 1);
  refuse(withHeader({ sha256: ngramChecksum(header, payload) }, payload), /inconsistent/, 'a parent after its child');

  // Every header field the loader uses is under the checksum, not only the arrays.
  refuse(withHeader({ discountScale: header.discountScale / 2 }), /checksum/, 'an edited discount scale');
  refuse(withHeader({ maxNodes: header.maxNodes + 1 }), /checksum/, 'an edited node bound');
  const counts = [...header.countOfCounts];
  counts[counts.findIndex((c: number) => c > 0)] += 1;
  refuse(withHeader({ countOfCounts: counts }), /checksum/, 'an edited count of counts');
  refuse(withHeader({ pruned: header.pruned + 1 }), /checksum/, 'an edited prune count');
  // A file of the first version carries no checksum of its header, so it is refused with a remedy.
  refuse(
    withHeader({
      formatVersion: 1,
      sha256: undefined,
      payloadSha256: crypto.createHash('sha256').update(good.subarray(payloadStart)).digest('hex'),
    }),
    /format version 1, written by an older version.*npm run train/,
    'a first-version file',
  );
  // The header's spelling is free: the same values in another key order load.
  fs.writeFileSync(file, framed(Object.fromEntries(Object.entries(header).reverse())));
  assert.ok(loadNgram(dir, vocab), 'a reordered header loads');

  fs.rmSync(file);
  fs.mkdirSync(file);
  assert.throws(
    () => loadNgram(dir, vocab),
    (err: Error) => err instanceof NgramFormatError && /not a regular file/.test(err.message),
  );
});
