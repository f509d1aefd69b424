import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../data/dataset.js';
import { Random } from '../random.js';
import { createModel } from '../zoo/zoo.js';
import { batchNormLayers, recalibrateBatchNorm } from './batch-norm.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const FEATURES = 5;
const MEANS = [3, -2, 0, 10, 0.5];
const STDS = [0.5, 2, 1, 3, 0.1];

function gaussianBatches(count: number, size: number, seed: number): Batch[] {
  const r = new Random(seed);
  return Array.from({ length: count }, () => ({
    xs: Float32Array.from({ length: size * FEATURES }, (_, i) => (MEANS[i % FEATURES] as number) + (STDS[i % FEATURES] as number) * r.normal()),
    labels: new Int32Array(size),
    size,
  }));
}

/** Mean and biased variance per feature over all samples, in float64. */
function populationStats(batches: Batch[]): { mean: number[]; variance: number[] } {
  const mean = new Array<number>(FEATURES).fill(0);
  const square = new Array<number>(FEATURES).fill(0);
  let n = 0;
  for (const b of batches) {
    for (let i = 0; i < b.xs.length; i++) {
      mean[i % FEATURES] = (mean[i % FEATURES] as number) + (b.xs[i] as number);
    }
    n += b.size;
  }
  for (let f = 0; f < FEATURES; f++) mean[f] = (mean[f] as number) / n;
  for (const b of batches) {
    for (let i = 0; i < b.xs.length; i++) square[i % FEATURES] = (square[i % FEATURES] as number) + ((b.xs[i] as number) - (mean[i % FEATURES] as number)) ** 2;
  }
  return { mean, variance: square.map((s) => s / n) };
}

function bnModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [FEATURES] });
  const bn = tfl.layers.batchNormalization({ name: 'bn' }).apply(input) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ name: 'fc', units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }).apply(bn) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

async function movingStats(model: tfl.LayersModel, layer: string): Promise<{ mean: number[]; variance: number[] }> {
  const w = model.getLayer(layer).getWeights();
  return { mean: Array.from(await (w[2] as tf.Tensor).data()), variance: Array.from(await (w[3] as tf.Tensor).data()) };
}

function expectClose(got: number[], want: number[], tolerance: number): void {
  expect(got).toHaveLength(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs((got[i] as number) - (want[i] as number)), `entry ${i}: ${got[i]} vs ${want[i]}`).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(want[i] as number)));
}

describe('recalibrateBatchNorm (precise BN)', () => {
  it('after one batch the moving statistics are that batch\'s statistics', async () => {
    const model = bnModel();
    const [batch] = gaussianBatches(1, 64, 1);
    const result = await recalibrateBatchNorm(model, [batch as Batch]);
    expect(result).toEqual({ layers: 1, batches: 1, samples: 64 });
    const { mean, variance } = tf.moments(tf.tensor2d((batch as Batch).xs, [64, FEATURES]), 0);
    const got = await movingStats(model, 'bn');
    expectClose(got.mean, Array.from(await mean.data()), 1e-5);
    expectClose(got.variance, Array.from(await variance.data()), 1e-5);
    model.dispose();
  });

  it('over K batches they are the mean and variance of all K batches\' samples, with uneven batch sizes', async () => {
    const model = bnModel();
    const batches = [...gaussianBatches(6, 32, 2), ...gaussianBatches(1, 7, 3)];
    const result = await recalibrateBatchNorm(model, batches);
    expect(result).toEqual({ layers: 1, batches: 7, samples: 6 * 32 + 7 });
    const want = populationStats(batches);
    const got = await movingStats(model, 'bn');
    expectClose(got.mean, want.mean, 1e-5);
    expectClose(got.variance, want.variance, 1e-5);
    // And they are near the distribution's: the data is what the test says it is.
    expectClose(got.mean, MEANS, 0.5);
    model.dispose();
  });

  it('a whole MobileNet-style model then predicts in inference mode what it computes in training mode on that batch', async () => {
    const model = createModel('mobilenet-tiny', { seed: 3 });
    expect(batchNormLayers(model)).toHaveLength(7);
    const r = new Random(4);
    const batch: Batch = { xs: Float32Array.from({ length: 16 * 32 * 32 * 3 }, () => r.next()), labels: new Int32Array(16), size: 16 };
    const x = tf.tensor4d(batch.xs, [16, 32, 32, 3]);
    const training = model.apply(x, { training: true }) as tf.Tensor; // also nudges the moving averages; recalibration overwrites them
    const before = model.predict(x) as tf.Tensor;
    const gap = async (t: tf.Tensor) => tf.max(tf.abs(tf.sub(t, training))).data().then((d) => d[0] as number);
    expect(await gap(before)).toBeGreaterThan(1e-3); // fresh statistics (mean 0, variance 1) are far off
    const result = await recalibrateBatchNorm(model, [batch]);
    expect(result.layers).toBe(7);
    const after = model.predict(x) as tf.Tensor;
    expect(await gap(after)).toBeLessThan(1e-5);
    tf.dispose([x, training, before, after]);
    model.dispose();
  });

  it('leaves a model without batch norm alone', async () => {
    const model = createModel('mlp-tiny');
    const weights = model.getWeights().map((w) => Array.from(w.dataSync()));
    expect(await recalibrateBatchNorm(model, gaussianBatches(1, 4, 5))).toEqual({ layers: 0, batches: 0, samples: 0 });
    expect(model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(weights);
    model.dispose();
  });
});
