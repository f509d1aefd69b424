/** Nearest-rank percentile of ascending `sorted` values: the smallest value with at least the fraction p of them at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  // A RangeError (as its test expects), not a TampError: its callers time at least one run before asking.
  if (sorted.length === 0) throw new RangeError('percentile of no values');
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}
