// AssemblyScript: one LSTM layer's recurrence over all timesteps, forward and backward, run by
// several threads on one shared memory. Each thread owns a contiguous range of hidden units (all
// four gates of them), so a timestep's cell math needs no exchange; a barrier per timestep makes
// the whole h (forward) or dZ (backward) visible before the next step's matmul reads it.
//
// Layouts (f32, row-major, time-major rows t * batch + b; gate order [input, forget, output, cell]):
//   xProj  [T*B, 4H]   input projection plus bias
//   wh     [H, 4H]     recurrent weights
//   hSeq   [(T+1)*B, H] h0 then h after each step; cSeq likewise for c
//   acts   [T*B, 4H]   i, f, o, g after their nonlinearities
//   tanhC  [T*B, H]
//   dH     [T*B, H]    gradient reaching each step's h from above
//   dZ     [T*B, 4H]   gradient at the gate pre-activations

/** a·b + c: fused where the build has relaxed SIMD (one rounding), else a multiply and an add. */
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// exp as in Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6 polynomial for e^r, and 2^n
// built in the exponent bits. The clamp keeps 2^n finite and normal.
@inline function exp4(x: v128): v128 {
  x = f32x4.min(f32x4.max(x, f32x4.splat(-87.0)), f32x4.splat(88.0));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = madd(p, r, f32x4.splat(1.3981999507e-3));
  p = madd(p, r, f32x4.splat(8.3334519073e-3));
  p = madd(p, r, f32x4.splat(4.1665795894e-2));
  p = madd(p, r, f32x4.splat(1.6666665459e-1));
  p = madd(p, r, f32x4.splat(5.0000001201e-1));
  const y = f32x4.add(madd(f32x4.mul(p, r), r, r), f32x4.splat(1.0));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(y, scale);
}

@inline function sigmoid4(x: v128): v128 {
  const one = f32x4.splat(1.0);
  return f32x4.div(one, f32x4.add(one, exp4(f32x4.neg(x))));
}

/** tanh as 2σ(2x) − 1, the form the other backends' cell kernels use. */
@inline function tanh4(x: v128): v128 {
  const two = f32x4.splat(2.0);
  return f32x4.sub(f32x4.mul(two, sigmoid4(f32x4.mul(two, x))), f32x4.splat(1.0));
}

/**
 * Waits until all `threads` have arrived. The word at `barrier` counts arrivals, the next one is
 * the generation; a non-zero word after them aborts every waiter (a thread failed).
 */
function barrierWait(barrier: usize, threads: i32): bool {
  if (threads == 1) return true;
  const generation = atomic.load<i32>(barrier, 4);
  if (atomic.add<i32>(barrier, 1) == threads - 1) {
    atomic.store<i32>(barrier, 0);
    atomic.add<i32>(barrier, 1, 4);
    atomic.notify(barrier + 4, threads);
    return true;
  }
  for (let spin = 0; spin < 20000; spin++) {
    if (atomic.load<i32>(barrier, 4) != generation) return true;
  }
  while (atomic.load<i32>(barrier, 4) == generation) {
    if (atomic.load<i32>(barrier, 8) != 0) return false;
    memory.atomic.wait32(barrier + 4, generation, 50_000_000);
  }
  return true;
}

/**
 * Copies columns [colFirst, colEnd) of rows [kFirst, kEnd) of W [K, cols] into panels the matmul
 * reads sequentially: the columns go in runs of sixteen (of thirty-two first, where `wide`), then
 * four, each run stored k-major, so its rows are adjacent rather than a whole W row apart (which
 * also maps them all onto the same few cache sets). Column c's run starts at element c·K of
 * `panels`, whose elements are W's type: f32, or u16 for bfloat16 (W given untransposed). `w`
 * holds the rows from kFirst on, so that a caller can stage a large W a block of rows at a time.
 * With `transposed`, W is given as Wᵀ [cols, K] (from its column kFirst on).
 */
function packPanels<W>(
  w: usize, wStride: i32, transposed: bool, K: i32, kFirst: i32, kEnd: i32, colFirst: i32, colEnd: i32, panels: usize,
  wide: bool = false,
): void {
  let col = colFirst;
  while (col < colEnd) {
    const width = runWidth(wide, col, colEnd);
    let dst = panels + (<usize>col * <usize>K + <usize>kFirst * <usize>width) * sizeof<W>();
    for (let k = kFirst; k < kEnd; k++) {
      const row = k - kFirst;
      if (sizeof<W>() == 2) {
        for (let j = 0; j < width; j++) {
          store<u16>(dst, toBf16(load<u32>(w + (<usize>(row * wStride + col + j) << 2))));
          dst += 2;
        }
      } else if (transposed) {
        for (let j = 0; j < width; j++) {
          store<f32>(dst, load<f32>(w + (<usize>((col + j) * wStride + row) << 2)));
          dst += 4;
        }
      } else {
        const src = w + (<usize>(row * wStride + col) << 2);
        for (let j = 0; j < width; j += 4) {
          v128.store(dst, v128.load(src + (<usize>j << 2)));
          dst += 16;
        }
      }
    }
    col += width;
  }
}

/** The width of the run of packed columns that starts at `col`. */
@inline function runWidth(wide: bool, col: i32, colEnd: i32): i32 {
  return wide && col + 32 <= colEnd ? 32 : col + 16 <= colEnd ? 16 : 4;
}

/** A float's bits rounded to its top half, to nearest with ties to even: bfloat16, which keeps f32's range. */
@inline function toBf16(bits: u32): u16 {
  return <u16>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

/** Four bfloat16 from the low (or high) half of `v` as four f32: each is the top half of its float. */
@inline function widenLow(v: v128): v128 {
  return i8x16.shuffle(v128.splat<i32>(0), v, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
}
@inline function widenHigh(v: v128): v128 {
  return i8x16.shuffle(v128.splat<i32>(0), v, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
}

/**
 * C[rows, cols] = init[rows, cols] + A[rows, k range] · W[k range, cols] for one column range, W
 * packed by packPanels (over panelK rows, `wide` as it was packed) for the same range. A's element
 * (row, k) is at a + row·aRowStride + k·aKStride floats, which reads A or Aᵀ alike; `a` points at
 * kFirst. Tiles of two rows by sixteen columns keep eight accumulators in registers while the
 * panel streams past; an odd row takes a whole run at once, so that a run of thirty-two gives it
 * eight accumulators too. init may be 0 for zeros, c itself to accumulate, or a row with
 * initStride 0 to broadcast.
 */
function matmulPanels<W>(
  rows: i32, kCount: i32, panelK: i32, kFirst: i32, colFirst: i32, colEnd: i32,
  a: usize, aRowStride: i32, aKStride: i32, panels: usize, init: usize, initStride: i32, c: usize, cStride: i32,
  wide: bool = false,
): void {
  let col = colFirst;
  while (col + 16 <= colEnd) {
    const width = runWidth(wide, col, colEnd);
    const run = panels + <usize>(col * panelK + kFirst * width) * sizeof<W>();
    const kStride = <usize>width * sizeof<W>();
    let b = 0;
    for (; b + 2 <= rows; b += 2) {
      for (let half = 0; half < width; half += 16) {
        tileOfTwoRows<W>(b, kCount, col + half, a, aRowStride, aKStride, run + <usize>half * sizeof<W>(), kStride, init, initStride, c, cStride);
      }
    }
    if (b < rows) {
      // `wide` as a constant, so that each inlined copy keeps only its own loads and sums.
      if (width == 32) rowOfRun<W>(true, b, kCount, col, a, aRowStride, aKStride, run, init, initStride, c, cStride);
      else rowOfRun<W>(false, b, kCount, col, a, aRowStride, aKStride, run, init, initStride, c, cStride);
    }
    col += width;
  }
  for (; col < colEnd; col += 4) {
    const panel = panels + <usize>(col * panelK + kFirst * 4) * sizeof<W>();
    for (let b = 0; b < rows; b++) matmulVector<W>(b, kCount, col, a, aRowStride, aKStride, panel, init, initStride, c, cStride);
  }
}

/** Rows b and b + 1 by sixteen columns from `col` of C; row k's sixteen weights are at wp + k·kStride. */
@inline function tileOfTwoRows<W>(
  b: i32, kCount: i32, col: i32, a: usize, aRowStride: i32, aKStride: i32, wp: usize, kStride: usize,
  init: usize, initStride: i32, c: usize, cStride: i32,
): void {
  const zero = f32x4.splat(0);
  const aStep = <usize>aKStride << 2;
  const aNextRow = <usize>aRowStride << 2;
  let s00 = zero, s01 = zero, s02 = zero, s03 = zero, s10 = zero, s11 = zero, s12 = zero, s13 = zero;
  let ap = a + (<usize>b * aNextRow);
  for (let k = 0; k < kCount; k++) {
    let w0: v128, w1: v128, w2: v128, w3: v128;
    if (sizeof<W>() == 2) {
      const p0 = v128.load(wp), p1 = v128.load(wp, 16);
      w0 = widenLow(p0); w1 = widenHigh(p0); w2 = widenLow(p1); w3 = widenHigh(p1);
    } else {
      w0 = v128.load(wp); w1 = v128.load(wp, 16); w2 = v128.load(wp, 32); w3 = v128.load(wp, 48);
    }
    const x0 = v128.load32_splat(ap), x1 = v128.load32_splat(ap + aNextRow);
    s00 = madd(x0, w0, s00); s01 = madd(x0, w1, s01); s02 = madd(x0, w2, s02); s03 = madd(x0, w3, s03);
    s10 = madd(x1, w0, s10); s11 = madd(x1, w1, s11); s12 = madd(x1, w2, s12); s13 = madd(x1, w3, s13);
    wp += kStride; ap += aStep;
  }
  const c0 = c + (<usize>(b * cStride + col) << 2);
  const c1 = c0 + (<usize>cStride << 2);
  if (init) {
    const i0 = init + (<usize>(b * initStride + col) << 2);
    const i1 = i0 + (<usize>initStride << 2);
    s00 = f32x4.add(s00, v128.load(i0)); s01 = f32x4.add(s01, v128.load(i0, 16)); s02 = f32x4.add(s02, v128.load(i0, 32)); s03 = f32x4.add(s03, v128.load(i0, 48));
    s10 = f32x4.add(s10, v128.load(i1)); s11 = f32x4.add(s11, v128.load(i1, 16)); s12 = f32x4.add(s12, v128.load(i1, 32)); s13 = f32x4.add(s13, v128.load(i1, 48));
  }
  v128.store(c0, s00); v128.store(c0, s01, 16); v128.store(c0, s02, 32); v128.store(c0, s03, 48);
  v128.store(c1, s10); v128.store(c1, s11, 16); v128.store(c1, s12, 32); v128.store(c1, s13, 48);
}

/**
 * Row b of C over one run from `col`, of sixteen columns or (`wide`) thirty-two: the odd row, a
 * served step's only row. Its accumulators are independent, so that with thirty-two columns the
 * adds do not wait on each other, while each column sums its products in the same order as a tile.
 */
@inline function rowOfRun<W>(
  wide: bool, b: i32, kCount: i32, col: i32, a: usize, aRowStride: i32, aKStride: i32, wp: usize,
  init: usize, initStride: i32, c: usize, cStride: i32,
): void {
  const zero = f32x4.splat(0);
  const aStep = <usize>aKStride << 2;
  const width = wide ? 32 : 16;
  let s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero, s7 = zero;
  let ap = a + (<usize>(b * aRowStride) << 2);
  for (let k = 0; k < kCount; k++) {
    const x = v128.load32_splat(ap);
    if (sizeof<W>() == 2) {
      const p0 = v128.load(wp), p1 = v128.load(wp, 16);
      s0 = madd(x, widenLow(p0), s0); s1 = madd(x, widenHigh(p0), s1);
      s2 = madd(x, widenLow(p1), s2); s3 = madd(x, widenHigh(p1), s3);
      if (wide) {
        const p2 = v128.load(wp, 32), p3 = v128.load(wp, 48);
        s4 = madd(x, widenLow(p2), s4); s5 = madd(x, widenHigh(p2), s5);
        s6 = madd(x, widenLow(p3), s6); s7 = madd(x, widenHigh(p3), s7);
      }
    } else {
      s0 = madd(x, v128.load(wp), s0); s1 = madd(x, v128.load(wp, 16), s1);
      s2 = madd(x, v128.load(wp, 32), s2); s3 = madd(x, v128.load(wp, 48), s3);
      if (wide) {
        s4 = madd(x, v128.load(wp, 64), s4); s5 = madd(x, v128.load(wp, 80), s5);
        s6 = madd(x, v128.load(wp, 96), s6); s7 = madd(x, v128.load(wp, 112), s7);
      }
    }
    wp += <usize>width * sizeof<W>(); ap += aStep;
  }
  const c0 = c + (<usize>(b * cStride + col) << 2);
  if (init) {
    const i0 = init + (<usize>(b * initStride + col) << 2);
    s0 = f32x4.add(s0, v128.load(i0)); s1 = f32x4.add(s1, v128.load(i0, 16)); s2 = f32x4.add(s2, v128.load(i0, 32)); s3 = f32x4.add(s3, v128.load(i0, 48));
    if (wide) {
      s4 = f32x4.add(s4, v128.load(i0, 64)); s5 = f32x4.add(s5, v128.load(i0, 80)); s6 = f32x4.add(s6, v128.load(i0, 96)); s7 = f32x4.add(s7, v128.load(i0, 112));
    }
  }
  v128.store(c0, s0); v128.store(c0, s1, 16); v128.store(c0, s2, 32); v128.store(c0, s3, 48);
  if (wide) {
    v128.store(c0, s4, 64); v128.store(c0, s5, 80); v128.store(c0, s6, 96); v128.store(c0, s7, 112);
  }
}

/** One row and four columns of C from a panel of four columns. */
function matmulVector<W>(
  b: i32, kCount: i32, col: i32, a: usize, aRowStride: i32, aKStride: i32, panel: usize, init: usize, initStride: i32, c: usize, cStride: i32,
): void {
  let s = init ? v128.load(init + (<usize>(b * initStride + col) << 2)) : f32x4.splat(0);
  let ap = a + (<usize>(b * aRowStride) << 2);
  let wp = panel;
  for (let k = 0; k < kCount; k++) {
    const w = sizeof<W>() == 2 ? widenLow(v128.load64_zero(wp)) : v128.load(wp);
    s = madd(v128.load32_splat(ap), w, s);
    wp += 4 * sizeof<W>();
    ap += <usize>aKStride << 2;
  }
  v128.store(c + (<usize>(b * cStride + col) << 2), s);
}

/** Columns [first, end) of n in whole vectors for this thread. */
@inline function shareFirst(n: i32, thread: i32, threads: i32): i32 {
  const perThread = ((n >> 2) + threads - 1) / threads << 2;
  return min(n, thread * perThread);
}
@inline function shareEnd(n: i32, thread: i32, threads: i32): i32 {
  const perThread = ((n >> 2) + threads - 1) / threads << 2;
  return min(n, (thread + 1) * perThread);
}

/** K is cut into blocks of this many rows, so a block of a panel stays in the first-level cache. */
const K_BLOCK = 256;

/**
 * C[M, N] = bias + op(A)[M, K] · op(B)[K, N], this thread's columns; N is a multiple of 4. A is
 * [M, K] (or [K, M] with aTransposed), B is [K, N] (or [N, K] with bTransposed), both dense.
 * bias [N] may be 0. panels [K, N] is scratch. Returns false when another thread failed.
 */
export function matmul(
  thread: i32, threads: i32, M: i32, N: i32, K: i32,
  a: usize, aTransposed: bool, b: usize, bTransposed: bool, bias: usize, c: usize, panels: usize, barrier: usize,
): bool {
  const first = shareFirst(N, thread, threads);
  const end = shareEnd(N, thread, threads);
  packPanels<f32>(b, bTransposed ? K : N, bTransposed, K, 0, K, first, end, panels);
  const aRowStride = aTransposed ? 1 : K;
  const aKStride = aTransposed ? M : 1;
  for (let k0 = 0; k0 < K; k0 += K_BLOCK) {
    const init = k0 == 0 ? bias : c;
    const initStride = k0 == 0 ? 0 : N;
    matmulPanels<f32>(M, min(K_BLOCK, K - k0), K, k0, first, end, a + (<usize>(k0 * aKStride) << 2), aRowStride, aKStride, panels, init, initStride, c, N);
  }
  return barrierWait(barrier, threads);
}

/**
 * The forward recurrence of one layer for this thread's units. hSeq and cSeq hold h0 and c0 in
 * their first B rows on entry. panels [H, 4H] and z [B, 4H] are scratch. Returns false when
 * another thread failed.
 */
export function forward(
  thread: i32, threads: i32, B: i32, H: i32, T: i32,
  xProj: usize, wh: usize, hSeq: usize, cSeq: usize, acts: usize, tanhC: usize, panels: usize, z: usize, barrier: usize,
): bool {
  const first = shareFirst(H, thread, threads);
  const end = shareEnd(H, thread, threads);
  const G = 4 * H;
  for (let gate = 0; gate < 4; gate++) packPanels<f32>(wh, G, false, H, 0, H, gate * H + first, gate * H + end, panels);
  for (let t = 0; t < T; t++) {
    const hPrev = hSeq + (<usize>(t * B * H) << 2);
    const xRows = xProj + (<usize>(t * B * G) << 2);
    for (let gate = 0; gate < 4; gate++) {
      matmulPanels<f32>(B, H, H, 0, gate * H + first, gate * H + end, hPrev, H, 1, panels, xRows, G, z, G);
    }
    const cPrev = cSeq + (<usize>(t * B * H) << 2);
    const cNext = cPrev + (<usize>(B * H) << 2);
    const hNext = hPrev + (<usize>(B * H) << 2);
    const actRows = acts + (<usize>(t * B * G) << 2);
    const tanhRows = tanhC + (<usize>(t * B * H) << 2);
    cell(B, H, first, end, z, cPrev, cNext, hNext, actRows, tanhRows);
    if (!barrierWait(barrier, threads)) return false;
  }
  return true;
}

/**
 * The cell's elementwise math for units [first, end) of B rows: from the gate pre-activations z
 * [B, 4H] and cPrev [B, H], c and h [B, H], and where acts and tanhC are not 0, the trace the
 * backward pass reads.
 */
@inline function cell(
  B: i32, H: i32, first: i32, end: i32, z: usize, cPrev: usize, cNext: usize, hNext: usize, acts: usize, tanhC: usize,
): void {
  const G = 4 * H;
  const hb = <usize>H << 2;
  for (let b = 0; b < B; b++) {
    const zRow = z + (<usize>(b * G) << 2);
    const aRow = acts + (<usize>(b * G) << 2);
    const sRow = <usize>(b * H) << 2;
    for (let k = first; k < end; k += 4) {
      const kb = <usize>k << 2;
      const i = sigmoid4(v128.load(zRow + kb));
      const f = sigmoid4(v128.load(zRow + hb + kb));
      const o = sigmoid4(v128.load(zRow + 2 * hb + kb));
      const g = tanh4(v128.load(zRow + 3 * hb + kb));
      const c = madd(f, v128.load(cPrev + sRow + kb), f32x4.mul(i, g));
      const tc = tanh4(c);
      if (acts) {
        v128.store(aRow + kb, i);
        v128.store(aRow + hb + kb, f);
        v128.store(aRow + 2 * hb + kb, o);
        v128.store(aRow + 3 * hb + kb, g);
      }
      if (tanhC) v128.store(tanhC + sRow + kb, tc);
      v128.store(cNext + sRow + kb, c);
      v128.store(hNext + sRow + kb, f32x4.mul(o, tc));
    }
  }
}

// Single steps for serving, on one thread, with every weight matrix packed once (pack) and kept
// packed in this memory: a served step is a few small products, where copying and packing the
// weights on each call would cost more than the arithmetic.

/**
 * Packs rows [kFirst, kEnd) of W [K, N] (N a multiple of 4), given at `w` as those rows alone, into
 * `panels` [K·N] for stepProduct; W is packed whole once every row has been.
 */
export function pack(w: usize, K: i32, N: i32, kFirst: i32, kEnd: i32, panels: usize): void {
  packPanels<f32>(w, N, false, K, kFirst, kEnd, 0, N, panels);
}

/**
 * C[rows, N] = init + A[rows, K] · W, W packed by pack(); init is a row broadcast to every row
 * (initStride 0), C itself to accumulate (initStride N), or 0.
 */
export function stepProduct(rows: i32, K: i32, N: i32, a: usize, panels: usize, init: usize, initStride: i32, c: usize): void {
  matmulPanels<f32>(rows, K, K, 0, 0, N, a, K, 1, panels, init, initStride, c, N);
}

/**
 * pack() with each weight rounded to bfloat16: half the bytes for a step to read, for weights past the cache. The
 * columns go in runs of thirty-two, so that a step of one row, the commonest served step, keeps eight sums going
 * from one stream of weights (runs of f32 that wide stepped slower, so pack() keeps sixteen).
 */
export function packBf16(w: usize, K: i32, N: i32, kFirst: i32, kEnd: i32, panels: usize): void {
  packPanels<u16>(w, N, false, K, kFirst, kEnd, 0, N, panels, true);
}

/** stepProduct() with W packed by packBf16(). */
export function stepProductBf16(rows: i32, K: i32, N: i32, a: usize, panels: usize, init: usize, initStride: i32, c: usize): void {
  matmulPanels<u16>(rows, K, K, 0, 0, N, a, K, 1, panels, init, initStride, c, N, true);
}

// Weights held as 8-bit integers, a scale per column: a quarter of f32's bytes and half of bfloat16's, for a served
// step, which reads its weights from memory, the context mixing's tables having pushed them out of the caches since the
// step before. The state's values are rounded to 16-bit integers, and each weight widened to 16 bits, so that
// i32x4.dot_i16x8_s takes eight products and four sums in one instruction.

/** A weight is held as round(w / scale) with |held| ≤ this, the scale being its column's largest |w| over it. */
const I8_WEIGHT_LEVELS: f32 = 127;
/** A state's value (an LSTM's h, within ±1) is held as round(x · this). */
const I8_INPUT_LEVELS: f32 = 4096;
/**
 * Pairs of k summed in 32-bit integers before they go into the f32 sums: 127 · 4096 · 2 · 1024 stays under 2^31 for
 * any inputs within ±1, so no sum can overflow.
 */
const I8_PAIRS_PER_CHUNK = 1024;
/** Rows × values of the inputs rounded for a product, at most: the step kernel's 64 rows of 4096 (I8_MAX_INPUTS). */
const I8_INPUT_CAPACITY = 64 * 4096;
const quantizedInputs = memory.data(I8_INPUT_CAPACITY * 2, 16);

/** Columns of a matrix packI8 takes, at most, and the scratch where it keeps their scales' inverses. */
const I8_MAX_COLUMNS = 32768;
const inverseScales = memory.data(I8_MAX_COLUMNS * 4, 16);

/**
 * Raises scales[col] to the largest |w| of column col over `rows` rows of W [rows, N] at `w`, N a multiple of 4: the
 * caller starts the scales at 0, passes every block of W's rows, then calls scalesOfMaxima().
 */
export function maxAbsColumns(w: usize, rows: i32, N: i32, scales: usize): void {
  for (let row = 0; row < rows; row++) {
    const from = w + (<usize>(row * N) << 2);
    for (let col = 0; col < N; col += 4) {
      const at = scales + (<usize>col << 2);
      v128.store(at, f32x4.max(v128.load(at), f32x4.abs(v128.load(from + (<usize>col << 2)))));
    }
  }
}

/** Turns each column's largest |w| into the scale packI8 holds it by: largest / I8_WEIGHT_LEVELS, or 1 for zeros. */
export function scalesOfMaxima(N: i32, scales: usize): void {
  for (let col = 0; col < N; col++) {
    const at = scales + (<usize>col << 2);
    const largest = load<f32>(at);
    store<f32>(at, largest > 0 ? <f32>(<f64>largest / <f64>I8_WEIGHT_LEVELS) : 1);
  }
}

/** Where packI8 and stepProductI8 keep a matrix's column scales ([N] f32), then its panels. */
@inline function i8Panels(panels: usize, N: i32): usize {
  return panels + ((<usize>N * 4 + 63) & ~(<usize>63));
}

/**
 * Packs rows [kFirst, kEnd) of W [K, N] (kFirst even), given at `w` as those rows alone, as 8-bit integers into
 * `panels`, whose first N f32 the caller has set to each column's scale (its largest |w| / I8_WEIGHT_LEVELS, or 1
 * where the column is all zeros). Columns go in runs of sixteen, then four; within a run, k-pair p holds for each
 * column the pair (w[2p], w[2p + 1]), which, widened to a 32-bit lane of two 16-bit halves, dot_i16x8_s multiplies by
 * a pair of inputs.
 */
export function packI8(w: usize, K: i32, N: i32, kFirst: i32, kEnd: i32, panels: usize): void {
  if (N > I8_MAX_COLUMNS) unreachable();
  const data = i8Panels(panels, N);
  const Kp = (K + 1) & ~1;
  // A product per weight rather than a division: a load follows every step of the LSTM's adaptation.
  for (let col = 0; col < N; col++) {
    store<f32>(inverseScales + (<usize>col << 2), 1 / load<f32>(panels + (<usize>col << 2)));
  }
  let col = 0;
  while (col < N) {
    const width = runWidth(false, col, N);
    for (let k = kFirst; k < kEnd; k++) {
      const row = k - kFirst;
      const pairAt = data + (<usize>col * <usize>Kp + <usize>(k >> 1) * <usize>(2 * width));
      for (let j = 0; j < width; j++) {
        const inverse = load<f32>(inverseScales + (<usize>(col + j) << 2));
        const value = load<f32>(w + (<usize>(row * N + col + j) << 2));
        store<i8>(pairAt + <usize>(2 * j + (k & 1)), <i8>i32(nearest<f32>(value * inverse)));
      }
    }
    // An odd K's last pair has nothing for its second half.
    if (kEnd == K && (K & 1) != 0) {
      const pairAt = data + (<usize>col * <usize>Kp + <usize>(K >> 1) * <usize>(2 * width));
      for (let j = 0; j < width; j++) store<i8>(pairAt + <usize>(2 * j + 1), 0);
    }
    col += width;
  }
}

/** stepProduct() with W packed by packI8: C[rows, N] = init + A[rows, K] · W, the inputs within ±1. */
export function stepProductI8(rows: i32, K: i32, N: i32, a: usize, panels: usize, init: usize, initStride: i32, c: usize): void {
  const Kp = (K + 1) & ~1;
  if (<usize>rows * <usize>Kp > <usize>I8_INPUT_CAPACITY) unreachable();
  for (let b = 0; b < rows; b++) {
    const from = a + (<usize>(b * K) << 2);
    const to = quantizedInputs + (<usize>(b * Kp) << 1);
    for (let k = 0; k < K; k++) {
      const x = min<f32>(1, max<f32>(-1, load<f32>(from + (<usize>k << 2))));
      store<i16>(to + (<usize>k << 1), <i16>i32(nearest<f32>(x * I8_INPUT_LEVELS)));
    }
    if (K & 1) store<i16>(to + (<usize>K << 1), 0);
  }
  const data = i8Panels(panels, N);
  const pairs = Kp >> 1;
  let col = 0;
  while (col < N) {
    const width = runWidth(false, col, N);
    const run = data + <usize>col * <usize>Kp;
    let b = 0;
    if (width == 16) {
      for (; b + 2 <= rows; b += 2) {
        i8TileOfTwoRows(b, pairs, Kp, col, run, panels, init, initStride, c, N);
        i8TileOfTwoRows(b, pairs, Kp, col + 8, run + 16, panels, init, initStride, c, N);
      }
    }
    for (; b < rows; b++) i8Row(width, b, pairs, Kp, col, run, panels, init, initStride, c, N);
    col += width;
  }
}

/** Rows b and b + 1, eight columns from `col` of a run of sixteen whose k-pair p starts at wp + 32p. */
@inline function i8TileOfTwoRows(
  b: i32, pairs: i32, Kp: i32, col: i32, wp: usize, scales: usize, init: usize, initStride: i32, c: usize, N: i32,
): void {
  const zero = i32x4.splat(0);
  let f00 = f32x4.splat(0), f01 = f32x4.splat(0), f10 = f32x4.splat(0), f11 = f32x4.splat(0);
  const x0 = quantizedInputs + (<usize>(b * Kp) << 1);
  const x1 = x0 + (<usize>Kp << 1);
  for (let p0 = 0; p0 < pairs; p0 += I8_PAIRS_PER_CHUNK) {
    const p1 = min(pairs, p0 + I8_PAIRS_PER_CHUNK);
    let s00 = zero, s01 = zero, s10 = zero, s11 = zero;
    for (let p = p0; p < p1; p++) {
      const packed = v128.load(wp + (<usize>p << 5));
      const w0 = i16x8.extend_low_i8x16_s(packed), w1 = i16x8.extend_high_i8x16_s(packed);
      const a0 = v128.load32_splat(x0 + (<usize>p << 2)), a1 = v128.load32_splat(x1 + (<usize>p << 2));
      s00 = i32x4.add(s00, i32x4.dot_i16x8_s(w0, a0)); s01 = i32x4.add(s01, i32x4.dot_i16x8_s(w1, a0));
      s10 = i32x4.add(s10, i32x4.dot_i16x8_s(w0, a1)); s11 = i32x4.add(s11, i32x4.dot_i16x8_s(w1, a1));
    }
    f00 = f32x4.add(f00, f32x4.convert_i32x4_s(s00)); f01 = f32x4.add(f01, f32x4.convert_i32x4_s(s01));
    f10 = f32x4.add(f10, f32x4.convert_i32x4_s(s10)); f11 = f32x4.add(f11, f32x4.convert_i32x4_s(s11));
  }
  i8Store(b, col, f00, scales, init, initStride, c, N);
  i8Store(b, col + 4, f01, scales, init, initStride, c, N);
  i8Store(b + 1, col, f10, scales, init, initStride, c, N);
  i8Store(b + 1, col + 4, f11, scales, init, initStride, c, N);
}

/** Row b over a run of `width` (16 or 4) columns from `col`, whose k-pair p starts at run + 2·width·p. */
@inline function i8Row(
  width: i32, b: i32, pairs: i32, Kp: i32, col: i32, run: usize, scales: usize, init: usize, initStride: i32, c: usize, N: i32,
): void {
  const zero = i32x4.splat(0);
  let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0), f3 = f32x4.splat(0);
  const x = quantizedInputs + (<usize>(b * Kp) << 1);
  const pairBytes = <usize>width << 1;
  for (let p0 = 0; p0 < pairs; p0 += I8_PAIRS_PER_CHUNK) {
    const p1 = min(pairs, p0 + I8_PAIRS_PER_CHUNK);
    let s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    for (let p = p0; p < p1; p++) {
      const w = run + <usize>p * pairBytes;
      const a = v128.load32_splat(x + (<usize>p << 2));
      if (width == 16) {
        const low = v128.load(w), high = v128.load(w, 16);
        s0 = i32x4.add(s0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(low), a));
        s1 = i32x4.add(s1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(low), a));
        s2 = i32x4.add(s2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(high), a));
        s3 = i32x4.add(s3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(high), a));
      } else {
        s0 = i32x4.add(s0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v128.load64_zero(w)), a));
      }
    }
    f0 = f32x4.add(f0, f32x4.convert_i32x4_s(s0));
    if (width == 16) {
      f1 = f32x4.add(f1, f32x4.convert_i32x4_s(s1));
      f2 = f32x4.add(f2, f32x4.convert_i32x4_s(s2));
      f3 = f32x4.add(f3, f32x4.convert_i32x4_s(s3));
    }
  }
  i8Store(b, col, f0, scales, init, initStride, c, N);
  if (width == 16) {
    i8Store(b, col + 4, f1, scales, init, initStride, c, N);
    i8Store(b, col + 8, f2, scales, init, initStride, c, N);
    i8Store(b, col + 12, f3, scales, init, initStride, c, N);
  }
}

/** C[b, col..col+3] = init + sum · the columns' scales / I8_INPUT_LEVELS. */
@inline function i8Store(b: i32, col: i32, sum: v128, scales: usize, init: usize, initStride: i32, c: usize, N: i32): void {
  let value = f32x4.mul(f32x4.mul(sum, v128.load(scales + (<usize>col << 2))), f32x4.splat(1 / I8_INPUT_LEVELS));
  if (init) value = f32x4.add(value, v128.load(init + (<usize>(b * initStride + col) << 2)));
  v128.store(c + (<usize>(b * N + col) << 2), value);
}

/** One timestep's cell for B rows: z [B, 4H] pre-activations and cPrev [B, H] to h and c [B, H]. */
export function stepCell(B: i32, H: i32, z: usize, cPrev: usize, h: usize, c: usize): void {
  cell(B, H, 0, H, z, cPrev, c, h, 0, 0);
}

/**
 * The backward recurrence of one layer for this thread's units, from the forward pass's trace.
 * panels [4H, H], dhNext and dcNext [B, H] are scratch. Returns false when another thread failed.
 */
export function backward(
  thread: i32, threads: i32, B: i32, H: i32, T: i32,
  dH: usize, wh: usize, cSeq: usize, acts: usize, tanhC: usize, dZ: usize, panels: usize, dhNext: usize, dcNext: usize, barrier: usize,
): bool {
  const first = shareFirst(H, thread, threads);
  const end = shareEnd(H, thread, threads);
  const G = 4 * H;
  const one = f32x4.splat(1.0);
  // dh = dZ · Whᵀ: the panels hold Whᵀ's columns for this thread's units.
  packPanels<f32>(wh, G, true, G, 0, G, first, end, panels);
  for (let t = T - 1; t >= 0; t--) {
    const last = t == T - 1;
    if (!last) matmulPanels<f32>(B, G, G, 0, first, end, dZ + (<usize>((t + 1) * B * G) << 2), G, 1, panels, 0, 0, dhNext, H);
    const dHRows = dH + (<usize>(t * B * H) << 2);
    const cPrevRows = cSeq + (<usize>(t * B * H) << 2);
    const actRows = acts + (<usize>(t * B * G) << 2);
    const tanhRows = tanhC + (<usize>(t * B * H) << 2);
    const dZRows = dZ + (<usize>(t * B * G) << 2);
    for (let b = 0; b < B; b++) {
      const sRow = <usize>(b * H) << 2;
      const aRow = actRows + (<usize>(b * G) << 2);
      const zRow = dZRows + (<usize>(b * G) << 2);
      for (let k = first; k < end; k += 4) {
        const kb = <usize>k << 2;
        const hb = <usize>H << 2;
        const i = v128.load(aRow + kb);
        const f = v128.load(aRow + hb + kb);
        const o = v128.load(aRow + 2 * hb + kb);
        const g = v128.load(aRow + 3 * hb + kb);
        const tc = v128.load(tanhRows + sRow + kb);
        let dh = v128.load(dHRows + sRow + kb);
        let dc = f32x4.splat(0);
        if (!last) {
          dh = f32x4.add(dh, v128.load(dhNext + sRow + kb));
          dc = v128.load(dcNext + sRow + kb);
        }
        dc = f32x4.add(f32x4.mul(f32x4.mul(dh, o), f32x4.sub(one, f32x4.mul(tc, tc))), dc);
        v128.store(zRow + kb, f32x4.mul(f32x4.mul(dc, g), f32x4.mul(i, f32x4.sub(one, i))));
        v128.store(zRow + hb + kb, f32x4.mul(f32x4.mul(dc, v128.load(cPrevRows + sRow + kb)), f32x4.mul(f, f32x4.sub(one, f))));
        v128.store(zRow + 2 * hb + kb, f32x4.mul(f32x4.mul(dh, tc), f32x4.mul(o, f32x4.sub(one, o))));
        v128.store(zRow + 3 * hb + kb, f32x4.mul(f32x4.mul(dc, i), f32x4.sub(one, f32x4.mul(g, g))));
        v128.store(dcNext + sRow + kb, f32x4.mul(dc, f));
      }
    }
    if (!barrierWait(barrier, threads)) return false;
  }
  return true;
}

/** Where the module's own static data ends; the host allocates above it. */
export function heapBase(): usize {
  return __heap_base;
}
