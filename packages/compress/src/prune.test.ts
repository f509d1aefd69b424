import { describe, expect, it } from 'vitest';
import { Random } from '@tamp/core';
import { kmeans1d } from './cluster.js';
import { globalMagnitudeMasks, magnitudeMask, polynomialSparsity, structured24Mask } from './prune.js';

function random(n: number, seed: number): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

const zeros = (m: Uint8Array) => m.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);

describe('pruning', () => {
  it('hits the requested sparsity exactly and removes the smallest magnitudes', () => {
    const w = random(10_001, 1);
    for (const s of [0, 0.5, 0.9, 0.92, 0.999, 1]) expect(zeros(magnitudeMask(w, s))).toBe(Math.round(s * w.length));
    const m = magnitudeMask(w, 0.9);
    let maxPruned = 0;
    let minKept = Infinity;
    w.forEach((v, i) => (m[i] === 0 ? (maxPruned = Math.max(maxPruned, Math.abs(v))) : (minKept = Math.min(minKept, Math.abs(v)))));
    expect(maxPruned).toBeLessThanOrEqual(minKept);
  });

  it('global pruning removes exactly the requested fraction over all layers, more from the smaller weights', () => {
    const big = random(5000, 2);
    const small = random(500, 3).map((v) => v * 0.1);
    const [mb, ms] = globalMagnitudeMasks([big, small], 0.8) as [Uint8Array, Uint8Array];
    expect(zeros(mb) + zeros(ms)).toBe(Math.round(0.8 * 5500));
    expect(zeros(ms) / 500).toBeGreaterThan(zeros(mb) / 5000);
  });

  it('2:4 keeps exactly the two largest of every four along the input axis', () => {
    const shape = [8, 3];
    const w = random(24, 4);
    const m = structured24Mask(w, shape);
    for (let c = 0; c < 3; c++) {
      for (let g = 0; g < 2; g++) {
        const idx = [0, 1, 2, 3].map((r) => (g * 4 + r) * 3 + c);
        expect(idx.filter((i) => m[i] === 1)).toHaveLength(2);
        const kept = Math.min(...idx.filter((i) => m[i] === 1).map((i) => Math.abs(w[i] as number)));
        const dropped = Math.max(...idx.filter((i) => m[i] === 0).map((i) => Math.abs(w[i] as number)));
        expect(kept).toBeGreaterThanOrEqual(dropped);
      }
    }
    expect(zeros(structured24Mask(random(5 * 5 * 20 * 50, 5), [5, 5, 20, 50]))).toBe((5 * 5 * 20 * 50) / 2);
  });

  it('follows the cubic schedule from the initial to the final sparsity', () => {
    const s = { initialSparsity: 0, finalSparsity: 0.9, beginStep: 10, endStep: 110 };
    expect(polynomialSparsity(0, s)).toBe(0);
    expect(polynomialSparsity(10, s)).toBe(0);
    expect(polynomialSparsity(60, s)).toBeCloseTo(0.9 - 0.9 * 0.125, 12);
    expect(polynomialSparsity(110, s)).toBe(0.9);
    expect(polynomialSparsity(500, s)).toBe(0.9);
  });
});

describe('k-means weight sharing', () => {
  it('is deterministic under a seed, with ordered centroids and every value near its centroid', () => {
    const w = random(20_000, 6);
    const a = kmeans1d(w, 16, { seed: 3 });
    const b = kmeans1d(w, 16, { seed: 3 });
    expect(Array.from(a.centroids)).toEqual(Array.from(b.centroids));
    expect(Array.from(a.assignments)).toEqual(Array.from(b.assignments));
    for (let j = 1; j < 16; j++) expect(a.centroids[j]).toBeGreaterThan(a.centroids[j - 1] as number);
    // Each value is assigned its nearest centroid.
    w.forEach((v, i) => {
      const mine = Math.abs(v - (a.centroids[a.assignments[i] as number] as number));
      for (const c of a.centroids) expect(mine).toBeLessThanOrEqual(Math.abs(v - c) + 1e-6);
    });
  });

  it('uses linear initialisation: the extremes keep clusters of their own', () => {
    const w = Float32Array.from([...new Array<number>(1000).fill(0.01), 5, -5]);
    const { centroids } = kmeans1d(w, 4);
    expect(centroids[0]).toBeCloseTo(-5, 5);
    expect(centroids[3]).toBeCloseTo(5, 5);
  });
});
