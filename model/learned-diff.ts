// Where a saved note differs from what was learnt of it: the changed regions, found line by line (Myers' diff) and
// narrowed to characters, so a word edited in the middle of a long note is learnt as that word and not as the note.

/** A region of `before` (UTF-16 offsets) that `after[from, to)` replaces. */
export interface Change {
  at: number;
  removed: number;
  from: number;
  to: number;
}

/** Beyond this many changed lines between two saves, the lines between the first and the last change count as one. */
const MAX_LINE_EDITS = 1000;

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;

/**
 * The regions where `after` differs from `before`, in order. Regions fewer than `mergeGap` code points apart are one
 * region, so that the context each needs on either side never overlaps the next.
 */
export function changedRegions(before: string, after: string, mergeGap: number): Change[] {
  if (before === after) return [];
  const lines = new Map<string, number>();
  const split = (text: string) => {
    const ids: number[] = [];
    const starts: number[] = [0];
    for (let start = 0; start < text.length;) {
      const newline = text.indexOf('\n', start);
      const end = newline < 0 ? text.length : newline + 1;
      const line = text.slice(start, end);
      let id = lines.get(line);
      if (id === undefined) lines.set(line, (id = lines.size));
      ids.push(id);
      starts.push(end);
      start = end;
    }
    return { ids, starts };
  };
  const a = split(before);
  const b = split(after);
  const regions: Change[] = [];
  for (const hunk of lineHunks(a.ids, b.ids)) {
    const narrowed = narrow(
      before,
      after,
      a.starts[hunk.aFrom],
      a.starts[hunk.aTo],
      b.starts[hunk.bFrom],
      b.starts[hunk.bTo],
    );
    if (narrowed) regions.push(narrowed);
  }
  const merged: Change[] = [];
  for (const region of regions) {
    const last = merged[merged.length - 1];
    if (last && codePointsAfter(after, last.to, mergeGap) > region.from) {
      last.removed = region.at + region.removed - last.at;
      last.to = region.to;
    } else merged.push({ ...region });
  }
  return merged;
}

/** The region of one hunk that really differs: its common first and last characters are left out. */
function narrow(before: string, after: string, aFrom: number, aTo: number, bFrom: number, bTo: number): Change | null {
  let prefix = 0;
  while (
    aFrom + prefix < aTo &&
    bFrom + prefix < bTo &&
    before.charCodeAt(aFrom + prefix) === after.charCodeAt(bFrom + prefix)
  )
    prefix++;
  // A change never starts or ends between the two halves of a surrogate pair.
  if (prefix > 0 && isHighSurrogate(after.charCodeAt(bFrom + prefix - 1))) prefix--;
  let suffix = 0;
  while (
    aTo - suffix > aFrom + prefix &&
    bTo - suffix > bFrom + prefix &&
    before.charCodeAt(aTo - suffix - 1) === after.charCodeAt(bTo - suffix - 1)
  )
    suffix++;
  if (suffix > 0 && isLowSurrogate(after.charCodeAt(bTo - suffix))) suffix--;
  const change = { at: aFrom + prefix, removed: aTo - suffix - aFrom - prefix, from: bFrom + prefix, to: bTo - suffix };
  return change.removed === 0 && change.to === change.from ? null : change;
}

interface Hunk {
  aFrom: number;
  aTo: number;
  bFrom: number;
  bTo: number;
}

/** The runs of lines of a replaced by lines of b, in order: Myers' O(ND) diff after the common ends are set aside. */
function lineHunks(a: number[], b: number[]): Hunk[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  if (start === endA && start === endB) return [];
  const edits = myersEdits(a.slice(start, endA), b.slice(start, endB));
  if (!edits) return [{ aFrom: start, aTo: endA, bFrom: start, bTo: endB }];
  const hunks: Hunk[] = [];
  for (const [x, y, deleted] of edits) {
    const edit = deleted
      ? { aFrom: start + x, aTo: start + x + 1, bFrom: start + y, bTo: start + y }
      : { aFrom: start + x, aTo: start + x, bFrom: start + y, bTo: start + y + 1 };
    const last = hunks[hunks.length - 1];
    if (last && last.aTo === edit.aFrom && last.bTo === edit.bFrom) {
      last.aTo = edit.aTo;
      last.bTo = edit.bTo;
    } else hunks.push(edit);
  }
  return hunks;
}

/**
 * The shortest edit script from a to b as single-line steps in order, [x, y, deleted]: a[x] deleted, or b[y] inserted
 * before a[x]. Undefined when it takes more than MAX_LINE_EDITS steps.
 */
function myersEdits(a: number[], b: number[]): Array<[number, number, boolean]> | undefined {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_LINE_EDITS);
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x =
        k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1]) ? v[offset + k + 1] : v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return backtrack(trace, d, n, m);
    }
  }
  return undefined;
}

function backtrack(trace: Int32Array[], last: number, n: number, m: number): Array<[number, number, boolean]> {
  const edits: Array<[number, number, boolean]> = [];
  let x = n;
  let y = m;
  for (let d = last; d > 0; d--) {
    // trace[d] holds the furthest x per diagonal before round d, diagonals -d-1..d+1.
    const v = trace[d];
    const at = (k: number) => v[k + d + 1];
    const k = x - y;
    const down = k === -d || (k !== d && at(k - 1) < at(k + 1));
    const previousX = at(down ? k + 1 : k - 1);
    const previousY = previousX - (down ? k + 1 : k - 1);
    // Back along the matching lines, then one step: down is an insertion of b[previousY], right a deletion of a[previousX].
    edits.push(down ? [previousX, previousY, false] : [previousX, previousY, true]);
    x = previousX;
    y = previousY;
  }
  return edits.reverse();
}

/** Where the `count` code points before `index` begin (fewer at the start of the text). */
export function codePointsBefore(text: string, index: number, count: number): number {
  let start = index;
  for (let n = 0; n < count && start > 0; n++)
    start -=
      start >= 2 && isLowSurrogate(text.charCodeAt(start - 1)) && isHighSurrogate(text.charCodeAt(start - 2)) ? 2 : 1;
  return start;
}

/** Where the `count` code points after `index` end (fewer at the end of the text). */
export function codePointsAfter(text: string, index: number, count: number): number {
  let end = index;
  for (let n = 0; n < count && end < text.length; n++)
    end += isHighSurrogate(text.charCodeAt(end)) && isLowSurrogate(text.charCodeAt(end + 1)) ? 2 : 1;
  return end;
}
