import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@tamp/core';
import { imageToInput, imagesToInput, isImageInput } from './image-input.js';
import { normalizeInput } from './inference-model.js';

function rgba(width: number, height: number, pixel: (x: number, y: number) => [number, number, number, number]): { width: number; height: number; data: Uint8ClampedArray } {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 4);
  return { width, height, data };
}

describe('images as model inputs (ImageData-like pixels; drawables are covered by the browser test)', () => {
  it('feeds RGB in [0, 1] at the same size, and resizes bilinearly', () => {
    const img = rgba(2, 2, (x, y) => [x * 255, y * 255, 51, 255]);
    expect(Array.from(imageToInput(img, [2, 2, 3])).map((v) => +v.toFixed(3))).toEqual([0, 0, 0.2, 1, 0, 0.2, 0, 1, 0.2, 1, 1, 0.2]);
    const flat = rgba(8, 8, () => [255, 0, 0, 255]);
    const small = imageToInput(flat, [4, 4, 3]);
    expect(small.length).toBe(48);
    for (let i = 0; i < 16; i++) expect([small[i * 3], small[i * 3 + 1], small[i * 3 + 2]]).toEqual([1, 0, 0]);
  });

  it('feeds one-channel models luminance times alpha (transparent is black, like MNIST’s background)', () => {
    const img = rgba(2, 1, (x) => (x === 0 ? [255, 255, 255, 255] : [255, 255, 255, 0]));
    const grey = imageToInput(img, [1, 2, 1]);
    expect(grey[0]).toBeCloseTo(1, 5);
    expect(grey[1]).toBe(0);
    const resized = imageToInput(rgba(4, 4, () => [0, 255, 0, 255]), [2, 2, 1]);
    for (const v of resized) expect(v).toBeCloseTo(0.587, 5);
  });

  it('batches an array of images, and predict’s input check takes them', async () => {
    const a = rgba(3, 3, () => [255, 255, 255, 255]);
    const b = rgba(3, 3, () => [0, 0, 0, 255]);
    const { data, batch } = imagesToInput([a, b], [3, 3, 3]);
    expect(batch).toBe(2);
    expect(Array.from(data.subarray(0, 27)).every((v) => v === 1)).toBe(true);
    expect(Array.from(data.subarray(27)).every((v) => v === 0)).toBe(true);
    const n = await normalizeInput([a, b], [3, 3, 3]);
    expect(n.batch).toBe(2);
    expect(n.data).toEqual(data);
    expect(isImageInput(a)).toBe(true);
    expect(isImageInput(new Float32Array(4))).toBe(false);
  });

  it('refuses images for non-image models and pixel data of the wrong size', () => {
    const img = rgba(2, 2, () => [0, 0, 0, 255]);
    expect(() => imageToInput(img, [784])).toThrow(/input is \[height, width, 1 or 3\]/);
    expect(() => imageToInput({ width: 3, height: 3, data: new Uint8ClampedArray(10) }, [3, 3, 3])).toThrow(InvalidArgumentError);
    expect(() => imageToInput({ width: 3, height: 3, data: new Uint8ClampedArray(10) }, [3, 3, 3])).toThrow(/not a 3x3 RGBA image \(36 bytes\)/);
  });
});
