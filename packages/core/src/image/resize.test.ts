import { describe, expect, it } from 'vitest';
import { rgbToRgba } from './resize.js';

describe('rgbToRgba', () => {
  it('adds an opaque alpha to every pixel and refuses partial pixels', () => {
    expect(Array.from(rgbToRgba(Uint8Array.of(1, 2, 3, 250, 251, 252)))).toEqual([1, 2, 3, 255, 250, 251, 252, 255]);
    expect(() => rgbToRgba(new Uint8Array(4))).toThrow(RangeError);
  });
});
