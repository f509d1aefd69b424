/**
 * Weight sharing: per-layer 1-D k-means over the non-zero weights, with
 * linear initialisation (centroids evenly spaced between the smallest and
 * largest weight), which Deep Compression found best because it keeps the
 * rare large weights represented. Assignment uses the sorted centroids'
 * midpoints, so each iteration costs one pass plus a sort of k values.
 * The seed only breaks exact ties between equal centroids, so a seed always
 * gives the same result.
 */
import { Random } from '@tamp/core';

export interface Clustering {
  /** Centroids, ascending. */
  readonly centroids: Float32Array;
  /** For each input value, its centroid's index. */
  readonly assignments: Uint8Array;
}

export function kmeans1d(values: Float32Array, k: number, options: { iterations?: number; seed?: number } = {}): Clustering {
  // Internal (not exported from the package): compressModel refuses --clusters outside [2, 256] before weight sharing calls this.
  if (!Number.isInteger(k) || k < 1 || k > 256) throw new RangeError(`k-means needs 1..256 clusters, got ${k}`);
  const n = values.length;
  const assignments = new Uint8Array(n);
  if (n === 0) return { centroids: new Float32Array(0), assignments };
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const clusters = Math.min(k, n);
  const centroids = new Float64Array(clusters);
  for (let j = 0; j < clusters; j++) centroids[j] = clusters === 1 ? (min + max) / 2 : min + ((max - min) * j) / (clusters - 1);
  const random = new Random(options.seed ?? 1);
  const sums = new Float64Array(clusters);
  const counts = new Uint32Array(clusters);
  const bounds = new Float64Array(clusters - 1);
  /** Assign every value its nearest centroid (binary search over the midpoints). */
  const assign = () => {
    for (let j = 0; j + 1 < clusters; j++) bounds[j] = ((centroids[j] as number) + (centroids[j + 1] as number)) / 2;
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const v = values[i] as number;
      let lo = 0;
      let hi = clusters - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (v > (bounds[mid] as number)) lo = mid + 1;
        else hi = mid;
      }
      assignments[i] = lo;
      sums[lo] = (sums[lo] as number) + v;
      counts[lo] = (counts[lo] as number) + 1;
    }
  };
  for (let iter = 0; iter < (options.iterations ?? 30); iter++) {
    assign();
    let moved = 0;
    for (let j = 0; j < clusters; j++) {
      if ((counts[j] as number) === 0) continue; // an empty cluster keeps its place
      const next = (sums[j] as number) / (counts[j] as number);
      moved = Math.max(moved, Math.abs(next - (centroids[j] as number)));
      centroids[j] = next;
    }
    // Keep centroids strictly ordered: nudge exact duplicates apart (seeded).
    for (let j = 1; j < clusters; j++) {
      if ((centroids[j] as number) <= (centroids[j - 1] as number)) centroids[j] = (centroids[j - 1] as number) + Math.max(1e-12, Math.abs(centroids[j - 1] as number) * 1e-7) * (1 + random.next());
    }
    if (moved === 0) break;
  }
  // The centroids moved in the last update: assign once more against them.
  for (let j = 0; j < clusters; j++) centroids[j] = Math.fround(centroids[j] as number);
  assign();
  return { centroids: Float32Array.from(centroids), assignments };
}
