import { describe, expect, it } from 'vitest';
import { Random } from '@tamp/core';
import { channelErrors, dequantizeInt8, outputChannels, quantizeInt8, quantizeUint8Affine } from './quantize.js';
import { type TampTensor, decodeTampModel, encodeTampModel, tensorValues } from './format/tamp-format.js';

function random(n: number, seed: number, spread = 1): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: n }, () => r.normal() * spread);
}

describe('int8 per-channel quantization', () => {
  for (const shape of [[784, 300], [5, 5, 20, 50], [7, 3], [10]]) {
    it(`keeps every weight within half a step of its channel, shape [${shape.join(',')}]`, () => {
      const n = shape.reduce((a, b) => a * b, 1);
      // Channels of very different ranges: per-channel scales matter.
      const channels = shape[shape.length - 1] as number;
      const data = random(n, n).map((v, i) => v * (1 + (i % channels)) ** 2 * 0.01);
      const q = quantizeInt8(data, shape);
      expect(q.scales.length).toBe(channels);
      const errors = channelErrors(data, q);
      errors.forEach((e, c) => expect(e, `channel ${c}`).toBeLessThanOrEqual((q.scales[c] as number) / 2 + 1e-12));
      for (const v of q.values) expect(Math.abs(v)).toBeLessThanOrEqual(127);
      const back = dequantizeInt8(q);
      expect(back.length).toBe(n);
    });
  }

  it('maps each channel maximum to ±127 and zero channels exactly', () => {
    const data = Float32Array.from([0.5, 0, -2, 0, 1, 0]); // shape [3, 2]: channel 1 is all zeros
    const q = quantizeInt8(data, [3, 2]);
    expect(Array.from(q.values)).toEqual([32, 0, -127, 0, 64, 0]);
    expect(Array.from(dequantizeInt8(q))[1]).toBe(0);
  });

  it('quantizes depthwise kernels per output channel: in × multiplier scales, and the .tamp file keeps them', () => {
    // [kh, kw, in, multiplier] = [2, 2, 3, 2]: output channel c·2 + m is element i mod 6.
    const shape = [2, 2, 3, 2];
    expect(outputChannels('block/depthwise_kernel', shape)).toBe(6);
    expect(outputChannels('block/kernel', shape)).toBe(2);
    // Channel f holds values of size f + 1: per-channel scales differ, a last-axis-only split could not reproduce them.
    const data = Float32Array.from({ length: 24 }, (_, i) => ((i % 6) + 1) * (i % 2 === 0 ? 1 : -0.5) * (1 + Math.floor(i / 6) / 10));
    const q = quantizeInt8(data, shape, 6);
    expect(q.scales).toHaveLength(6);
    const errors = channelErrors(data, q);
    errors.forEach((e, c) => expect(e).toBeLessThanOrEqual((q.scales[c] as number) / 2 + 1e-7));
    const t: TampTensor = { name: 'block/depthwise_kernel', shape, encoding: { kind: 'int8', ...q } };
    const back = decodeTampModel(encodeTampModel({ meta: { producer: 't', created: 'now' }, modelTopology: {}, weights: [t] })).weights[0] as TampTensor;
    expect(Array.from(tensorValues(back))).toEqual(Array.from(dequantizeInt8(q)));
  });

  it('uint8 affine reproduces min and max and stays within half a step', () => {
    const data = random(1000, 3);
    const q = quantizeUint8Affine(data);
    let worst = 0;
    data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ((q.values[i] as number) * q.scale + q.min)))));
    expect(worst).toBeLessThanOrEqual(q.scale / 2 + 1e-6);
  });
});
