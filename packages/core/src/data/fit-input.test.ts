import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.js';
import { fitSamples, inputFit } from './fit-input.js';

describe('fitting samples to a model input', () => {
  it('passes samples of the right size through untouched', () => {
    const xs = new Float32Array(2 * 4 * 4 * 3);
    expect(fitSamples(xs, 2, [4, 4, 3])).toBe(xs);
  });

  it('centres 28x28 grey images in 32x32 and repeats them over 3 channels', () => {
    const xs = Float32Array.from({ length: 2 * 28 * 28 }, (_, i) => i + 1);
    const out = fitSamples(xs, 2, [32, 32, 3]);
    expect(out.length).toBe(2 * 32 * 32 * 3);
    const at = (n: number, y: number, x: number, c: number) => out[((n * 32 + y) * 32 + x) * 3 + c];
    expect(at(0, 0, 0, 0)).toBe(0);
    expect(at(0, 1, 5, 2)).toBe(0);
    expect([0, 1, 2].map((c) => at(0, 2, 2, c))).toEqual([1, 1, 1]);
    expect(at(0, 29, 29, 1)).toBe(28 * 28);
    expect(at(0, 30, 30, 0)).toBe(0);
    expect(at(1, 2 + 3, 2 + 4, 0)).toBe(28 * 28 + 3 * 28 + 4 + 1);
    let sum = 0;
    for (const v of out) sum += v;
    expect(sum).toBe(3 * xs.reduce((a, b) => a + b, 0));
  });

  it('scales up by whole factors with nearest neighbour: 28 -> 96 is 3x (84) with a 6-pixel border', () => {
    expect(inputFit(784, [96, 96, 3])).toEqual({ from: [28, 28, 1], to: [96, 96, 3], scale: 3, top: 6, left: 6 });
    const xs = Float32Array.from({ length: 4 }, (_, i) => i + 1); // 2x2 grey
    const out = fitSamples(xs, 1, [4, 4, 1]);
    expect(Array.from(out)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });

  it('keeps colour channels when the sample has the model\'s channels', () => {
    const xs = Float32Array.from({ length: 1 * 1 * 3 }, (_, i) => i + 1);
    expect(Array.from(fitSamples(xs, 1, [3, 3, 3]).slice(12, 15))).toEqual([1, 2, 3]);
  });

  it('refuses samples larger than the input, or with other channel counts, naming models that fit', () => {
    expect(() => inputFit(96 * 96 * 3, [32, 32, 3])).toThrow(InvalidArgumentError);
    expect(() => inputFit(96 * 96 * 3, [32, 32, 3])).toThrow(/never down/);
    expect(() => inputFit([8, 8, 2], [32, 32, 3])).toThrow(/do not fit/);
    expect(() => inputFit(7, [32, 32, 3])).toThrow(/samples of 7 values/);
  });
});
