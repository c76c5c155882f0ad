// The shared seeded generator: its counter-based form gives exactly mulberry32's stream, so dropout
// masks and sampled completions drawn from a seed are the ones the stateful generator drew.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32, seededRandom } from '../model/random';

/** mulberry32 as it is usually written: a state that advances by a constant before each output. */
function statefulMulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const SEEDS = [0, 1, 7, 12345, 2 ** 31, 2 ** 32 - 1];

test('mulberry32 at index i is the stateful generator’s i-th output, past the 32-bit wrap of the state', () => {
  for (const seed of SEEDS) {
    const next = statefulMulberry32(seed);
    // Enough steps for the state to wrap around 2^32 many times.
    for (let i = 0; i < 20_000; i++) assert.equal(mulberry32(seed, i), next(), `seed ${seed}, index ${i}`);
  }
});

test('mulberry32 at an index beyond 2^32 is the output the stateful generator reaches there', () => {
  const seed = 99;
  const index = 2 ** 32 + 5;
  // The stateful generator's state after index + 1 steps, computed exactly with BigInt.
  const state = Number((BigInt(seed) + BigInt(index + 1) * 0x6d2b79f5n) % 2n ** 32n);
  const oneStepBefore = (state - 0x6d2b79f5 + 2 ** 32) % 2 ** 32;
  assert.equal(mulberry32(seed, index), statefulMulberry32(oneStepBefore)());
});

test('seededRandom gives the stateful stream scaled into [0, 1), the same for the same seed', () => {
  for (const seed of SEEDS) {
    const random = seededRandom(seed);
    const again = seededRandom(seed);
    const next = statefulMulberry32(seed);
    for (let i = 0; i < 1000; i++) {
      const value = random();
      assert.ok(value >= 0 && value < 1);
      assert.equal(value, next() / 2 ** 32);
      assert.equal(again(), value);
    }
  }
  assert.notEqual(seededRandom(1)(), seededRandom(2)());
});
