// Truncated-BPTT batching: streams are contiguous, cover the text, and carry state across windows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { epochShift, StreamBatcher } from '../training/batches';

function range(n: number): Int32Array {
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  return ids;
}

test('each row is a contiguous stream carried across batches', () => {
  const batchSize = 3;
  const seqLength = 5;
  // 103 ids: enough for 6 batches (3*5*6 + 1 = 91) with a remainder that must be dropped.
  const ids = range(103).map((x) => x * 7 + 1);
  const batcher = new StreamBatcher(ids, batchSize, seqLength);
  assert.equal(batcher.batchesPerEpoch, 6);

  const rows: number[][] = Array.from({ length: batchSize }, () => []);
  let previous: { inputs: Int32Array; targets: Int32Array } | undefined;
  for (let k = 0; k < batcher.batchesPerEpoch; k++) {
    const batch = batcher.batch(k);
    assert.equal(batch.inputs.length, batchSize * seqLength);
    assert.equal(batch.targets.length, batchSize * seqLength);
    for (let b = 0; b < batchSize; b++) {
      const inRow = batch.inputs.subarray(b * seqLength, (b + 1) * seqLength);
      const tgRow = batch.targets.subarray(b * seqLength, (b + 1) * seqLength);
      for (let t = 0; t + 1 < seqLength; t++) assert.equal(tgRow[t], inRow[t + 1], 'targets are inputs shifted by one');
      const next = ids.indexOf(inRow[seqLength - 1]) + 1;
      assert.equal(tgRow[seqLength - 1], ids[next], 'last target is the next char of the text');
      if (previous) {
        const prevTargets = previous.targets.subarray(b * seqLength, (b + 1) * seqLength);
        assert.equal(inRow[0], prevTargets[seqLength - 1], `row ${b} of batch ${k} starts where batch ${k - 1} ended`);
      }
      rows[b].push(...inRow);
    }
    previous = batch;
  }
  const streamLength = batcher.batchesPerEpoch * seqLength;
  for (let b = 0; b < batchSize; b++) {
    const start = ids.indexOf(rows[b][0]);
    assert.deepEqual(rows[b], [...ids.subarray(start, start + rows[b].length)], `row ${b} is a contiguous slice`);
    assert.equal(rows[b].length, streamLength);
  }
  // Streams are disjoint and laid out in order.
  assert.deepEqual(
    rows.map((r) => ids.indexOf(r[0])),
    Array.from({ length: batchSize }, (_, b) => b * streamLength),
  );
});

test('minimal text gives exactly one batch', () => {
  const batcher = new StreamBatcher(range(2 * 4 + 1), 2, 4);
  assert.equal(batcher.batchesPerEpoch, 1);
  const { inputs, targets } = batcher.batch(0);
  assert.deepEqual([...inputs], [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual([...targets], [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('too-short text and bad arguments are rejected', () => {
  assert.throws(
    () => new StreamBatcher(range(8), 2, 4),
    (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /^batches: text too short/);
      assert.match(err.message, /\b9\b/, 'message names the minimum length');
      return true;
    },
  );
  assert.throws(() => new StreamBatcher(range(0), 1, 1), /^Error: batches: text too short/);
  assert.throws(() => new StreamBatcher(range(100), 0, 4), /^Error: batches: /);
  assert.throws(() => new StreamBatcher(range(100), 2, 1.5), /^Error: batches: /);
  const batcher = new StreamBatcher(range(100), 2, 4);
  assert.throws(() => batcher.batch(batcher.batchesPerEpoch), RangeError);
  assert.throws(() => batcher.batch(-1), RangeError);
});

test('each epoch after the first turns every stream round by its own amount, and every target is read once an epoch', () => {
  const batchSize = 3;
  const seqLength = 5;
  const ids = range(3 * 5 * 6 + 1).map((x) => x * 7 + 1);
  const batcher = new StreamBatcher(ids, batchSize, seqLength);
  const streamLength = batcher.batchesPerEpoch * seqLength;
  const shifts = [1, 2, 3, 4].map((epoch) => epochShift(epoch, streamLength));
  assert.equal(epochShift(0, streamLength), 0, 'the first epoch reads the streams as written');
  assert.ok(new Set(shifts).size === shifts.length && shifts.every((s) => s > 0 && s < streamLength), `${shifts}`);
  for (const epoch of [0, 1, 2]) {
    const shift = epochShift(epoch, streamLength);
    for (let b = 0; b < batchSize; b++) {
      const inputs: number[] = [];
      const targets: number[] = [];
      for (let k = 0; k < batcher.batchesPerEpoch; k++) {
        const batch = batcher.batch(k, epoch);
        inputs.push(...batch.inputs.subarray(b * seqLength, (b + 1) * seqLength));
        targets.push(...batch.targets.subarray(b * seqLength, (b + 1) * seqLength));
      }
      const stream = [...ids.subarray(b * streamLength, (b + 1) * streamLength + 1)];
      assert.equal(inputs[0], stream[shift], `epoch ${epoch} starts stream ${b} ${shift} in`);
      assert.deepEqual(
        [...targets].sort((x, y) => x - y),
        stream.slice(1),
        `epoch ${epoch}: each of stream ${b}'s targets once`,
      );
      // Each input's target is the character after it in the text, but where the stream turns round.
      const breaks = inputs.filter((input, i) => ids[ids.indexOf(input) + 1] !== targets[i]);
      assert.equal(breaks.length, shift === 0 ? 0 : 1, `epoch ${epoch}, stream ${b}: one seam where it turns round`);
    }
  }
});
