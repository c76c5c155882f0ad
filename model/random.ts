// mulberry32, the small seeded generator behind dropout masks and sampled completions, so that a
// seed reproduces both. Written counter-based: mulberry32's state only ever adds a constant, so any
// output can be computed from the seed and its index, and a hot loop needs no closure.

/** The output of mulberry32 at index (from 0) for a uint32 seed, as a uint32. */
export function mulberry32(seed: number, index: number): number {
  let t = (seed + Math.imul(index + 1, 0x6d2b79f5)) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** mulberry32 from seed as floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  const start = seed >>> 0;
  let index = 0;
  return () => mulberry32(start, index++) / 2 ** 32;
}
