/**
 * A set of batch numbers as sorted, disjoint, non-adjacent [start, end)
 * ranges: what the batch claims (batch-claims.ts) and the workers keep of
 * done, owned and handed-back batches. Written here rather than taken from a
 * library: about forty lines over plain arrays, and the claims need exactly
 * these operations (take the first range, a contiguous prefix) on numbers the
 * manifest stores as pairs.
 */

export type BatchRange = readonly [start: number, end: number];

export class BatchRanges {
  private ranges: Array<[number, number]> = [];

  constructor(initial: Iterable<BatchRange> = []) {
    for (const [s, e] of initial) this.add(s, e);
  }

  /** Add [start, end), merging with neighbours. */
  add(start: number, end: number): void {
    if (end <= start) return;
    const kept: Array<[number, number]> = [];
    let s = start;
    let e = end;
    for (const r of this.ranges) {
      if (r[1] < s || r[0] > e) kept.push(r);
      else {
        s = Math.min(s, r[0]);
        e = Math.max(e, r[1]);
      }
    }
    kept.push([s, e]);
    this.ranges = kept.sort((a, b) => a[0] - b[0]);
  }

  /** Remove [start, end). */
  remove(start: number, end: number): void {
    if (end <= start) return;
    const kept: Array<[number, number]> = [];
    for (const [s, e] of this.ranges) {
      if (e <= start || s >= end) kept.push([s, e]);
      else {
        if (s < start) kept.push([s, start]);
        if (e > end) kept.push([end, e]);
      }
    }
    this.ranges = kept;
  }

  /** Remove and return up to `count` batches from the first range (empty when there is none). */
  takeFirst(count: number): BatchRange | undefined {
    const first = this.ranges[0];
    if (first === undefined || count <= 0) return undefined;
    const end = Math.min(first[1], first[0] + count);
    const taken: BatchRange = [first[0], end];
    this.remove(first[0], end);
    return taken;
  }

  has(batch: number): boolean {
    return this.ranges.some(([s, e]) => batch >= s && batch < e);
  }

  /** How many batches the set holds. */
  get size(): number {
    return this.ranges.reduce((n, [s, e]) => n + e - s, 0);
  }

  /** The first batch not in the set counting from 0 (every batch below it is in it). */
  get prefixEnd(): number {
    const first = this.ranges[0];
    return first !== undefined && first[0] === 0 ? first[1] : 0;
  }

  /** The end of the last range (0 when empty). */
  get maxEnd(): number {
    return this.ranges[this.ranges.length - 1]?.[1] ?? 0;
  }

  /** The ranges, as pairs (a copy). */
  toArray(): BatchRange[] {
    return this.ranges.map(([s, e]) => [s, e] as const);
  }

  clear(): void {
    this.ranges = [];
  }
}
