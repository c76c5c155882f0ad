// Modified Kneser-Ney's three discounts per order (D1, D2, D3+), estimated from the count-of-counts
// (Chen and Goodman), which are kept as the counts change so that adding text never needs a recount.

// Defaults when an order has too few n-grams to estimate its discounts (a short document).
const FALLBACK_DISCOUNTS = [0.6, 1.0, 1.4];
const MIN_COUNT_OF_COUNTS = 10;

export function checkDiscountScale(scale: number): void {
  if (!(scale > 0 && scale <= 4)) throw new RangeError(`ngram: discountScale must be in (0, 4], got ${scale}`);
}

export class KneserNeyDiscounts {
  /** Count-of-counts n1..n4 per order: index order * 5 + c for c in 1..4. */
  readonly countOfCounts: Float64Array;
  /** D1, D2, D3+ per order: index order * 3 + c for c in 0..2; current after refresh(). */
  readonly values: Float64Array;
  private stale = true;
  private scaleFactor: number;

  constructor(
    private readonly order: number,
    scale: number,
  ) {
    checkDiscountScale(scale);
    this.scaleFactor = scale;
    this.countOfCounts = new Float64Array((order + 1) * 5);
    this.values = new Float64Array((order + 1) * 3);
  }

  /** Multiplies the estimated discounts; see NGRAM_DEFAULT_DISCOUNT_SCALE. */
  get scale(): number {
    return this.scaleFactor;
  }

  set scale(scale: number) {
    checkDiscountScale(scale);
    this.scaleFactor = scale;
    this.stale = true;
  }

  /** Books an n-gram of this order whose count has just become `count`. */
  counted(level: number, count: number): void {
    const base = level * 5;
    if (count <= 4) this.countOfCounts[base + count]++;
    if (count >= 2 && count <= 5) this.countOfCounts[base + count - 1]--;
    this.stale = true;
  }

  /** Replaces the count-of-counts, as loaded from a file. */
  load(countOfCounts: Float64Array): void {
    this.countOfCounts.set(countOfCounts);
    this.stale = true;
  }

  refresh(): void {
    if (!this.stale) return;
    this.stale = false;
    const coc = this.countOfCounts;
    for (let level = 1; level <= this.order; level++) {
      const [n1, n2, n3, n4] = [coc[level * 5 + 1], coc[level * 5 + 2], coc[level * 5 + 3], coc[level * 5 + 4]];
      const estimable = Math.min(n1, n2, n3, n4) >= MIN_COUNT_OF_COUNTS;
      const y = estimable ? n1 / (n1 + 2 * n2) : 0;
      const raw = estimable
        ? [1 - (2 * y * n2) / n1, 2 - (3 * y * n3) / n2, 3 - (4 * y * n4) / n3]
        : FALLBACK_DISCOUNTS;
      // Each discount must leave its count positive and remove something, or a context could
      // give all its mass away or none of it.
      for (let c = 0; c < 3; c++) {
        const d = (Number.isFinite(raw[c]) ? raw[c] : FALLBACK_DISCOUNTS[c]) * this.scaleFactor;
        this.values[level * 3 + c] = Math.min(c + 1 - 0.05, Math.max(0.05, d));
      }
    }
  }
}
