import { describe, expect, it } from 'vitest';
import { percentile } from './percentile.js';

describe('percentile (nearest rank)', () => {
  it('picks the smallest value with at least p of the values at or below it', () => {
    const v = Array.from({ length: 20 }, (_, i) => i + 1);
    expect([percentile(v, 0.5), percentile(v, 0.9), percentile(v, 0.99), percentile(v, 0), percentile(v, 1)]).toEqual([10, 18, 20, 1, 20]);
    expect(percentile([7], 0.5)).toBe(7);
    expect(() => percentile([], 0.5)).toThrow(RangeError);
  });
});
