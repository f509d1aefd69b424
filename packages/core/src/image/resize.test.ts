import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.js';
import { rgbToRgba, rgbaToRgbInput } from './resize.js';

describe('rgbToRgba', () => {
  it('adds an opaque alpha to every pixel and refuses partial pixels', () => {
    expect(Array.from(rgbToRgba(Uint8Array.of(1, 2, 3, 250, 251, 252)))).toEqual([1, 2, 3, 255, 250, 251, 252, 255]);
    expect(() => rgbToRgba(new Uint8Array(4))).toThrow(RangeError);
  });
});

describe('rgbaToRgbInput', () => {
  it('refuses pixels that are not the stated size with INVALID_ARGUMENT', () => {
    expect(() => rgbaToRgbInput(new Uint8Array(10), 2, 2, 4, 4)).toThrow(InvalidArgumentError);
    expect(() => rgbaToRgbInput(new Uint8Array(10), 2, 2, 4, 4)).toThrow("10 bytes are not a 2x2 RGBA image (16 bytes): pass the image's own width and height");
  });
});
