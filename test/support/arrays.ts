// Comparing what two implementations of the same computation give.

/** The largest absolute difference between same-placed elements of two lists of rows. */
export function maxDifference(a: Float32Array[], b: Float32Array[]): number {
  let most = 0;
  a.forEach((row, r) => row.forEach((x, i) => (most = Math.max(most, Math.abs(x - b[r][i])))));
  return most;
}
