/**
 * The stock-tfjs export: model.json + weights.bin with tfjs's own uint8
 * affine quantization for kernels (one scale and minimum per tensor), biases
 * kept float32. Stock tf.loadLayersModel reads it and dequantizes at load.
 */
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import { writeModelArtifacts } from '@tamp/core/node';
import { quantizeUint8Affine } from '../quantize.js';

export function exportTfjsUint8(
  artifacts: tf.io.ModelArtifacts,
  weights: ReadonlyArray<{ name: string; shape: number[]; data: Float32Array }>,
  dir: string,
): { modelJson: string; weightBytes: number } {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const w of weights) {
    if (w.shape.length >= 2) {
      const q = quantizeUint8Affine(w.data);
      specs.push({ name: w.name, shape: w.shape, dtype: 'float32', quantization: { dtype: 'uint8', scale: q.scale, min: q.min } });
      parts.push(q.values);
    } else {
      specs.push({ name: w.name, shape: w.shape, dtype: 'float32' });
      parts.push(new Uint8Array(w.data.buffer.slice(w.data.byteOffset, w.data.byteOffset + w.data.byteLength)));
    }
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return writeModelArtifacts(join(dir), {
    modelTopology: artifacts.modelTopology as object,
    format: 'layers-model',
    ...(artifacts.userDefinedMetadata !== undefined ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
    weightSpecs: specs,
    weightData: data.buffer,
  });
}
