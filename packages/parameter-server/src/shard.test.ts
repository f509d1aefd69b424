import { describe, expect, it } from 'vitest';
import { firstNonFinite } from './shard.js';

describe('firstNonFinite', () => {
  it('finds NaN (any payload) and ±Infinity, and nothing in finite extremes', () => {
    const finite = [0, -0, 1, -1, 3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45, -1.17549435e-38, 1e-40];
    const data = Float32Array.from(finite);
    expect(firstNonFinite(data)).toBe(-1);
    const nanWithPayload = new Float32Array(new Uint32Array([0xffc01234]).buffer)[0] as number;
    for (const bad of [NaN, Infinity, -Infinity, nanWithPayload]) {
      const d = Float32Array.from([...finite, 2, bad, bad]);
      expect(firstNonFinite(d)).toBe(finite.length + 1);
    }
  });

  it('reads a view at its own offset and length', () => {
    const whole = Float32Array.from([NaN, 1, 2, 3, Infinity]);
    expect(firstNonFinite(whole.subarray(1, 4))).toBe(-1);
    expect(firstNonFinite(whole.subarray(1))).toBe(3);
  });
});
