import { describe, expect, it } from 'vitest';
import { tensorValues } from './format/tamp-format.js';
import { artifactsToTamp } from './tfjs-bridge.js';

const kernel = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1) * 0.5);
const bias = Float32Array.from([0.25, -0.125, 0.0625]);
const weightData = new Uint8Array([...new Uint8Array(kernel.buffer), ...new Uint8Array(bias.buffer)]).buffer;
const artifacts = {
  modelTopology: { class_name: 'Sequential', config: { layers: [] } },
  weightSpecs: [
    { name: 'dense/kernel', shape: [4, 3], dtype: 'float32' as const },
    { name: 'dense/bias', shape: [3], dtype: 'float32' as const },
  ],
  weightData,
};
const meta = { producer: 'test', created: '2026-01-01T00:00:00Z', model: 'tiny' };

describe('artifactsToTamp', () => {
  it('keeps float32 without int8, quantizes kernels per channel with int8, and biases per tensor with int8Biases', () => {
    expect(artifactsToTamp(artifacts, { int8: false, meta }).weights.map((w) => w.encoding.kind)).toEqual(['f32', 'f32']);
    expect(artifactsToTamp(artifacts, { int8: true, meta }).weights.map((w) => w.encoding.kind)).toEqual(['int8', 'f32']);
    const both = artifactsToTamp(artifacts, { int8: true, int8Biases: true, meta });
    expect(both.weights.map((w) => w.encoding.kind)).toEqual(['int8', 'int8-tensor']);
    const b = both.weights[1];
    if (b?.encoding.kind !== 'int8-tensor') throw new Error('bias is not int8-tensor');
    const values = tensorValues(b);
    // Symmetric int8 per tensor: every value within half a step of the original.
    for (let i = 0; i < bias.length; i++) expect(Math.abs((values[i] as number) - (bias[i] as number))).toBeLessThanOrEqual(b.encoding.scale / 2 + 1e-9);
  });
});
