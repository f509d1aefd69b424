/**
 * Pruning and sharing fine-tune a model with batch norm: what they hand on
 * to folding and quantization has moving statistics recomputed under the
 * fine-tuned weights (precise BN), not the exponential averages fine-tuning
 * leaves behind, which still describe the weights before pruning.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ImageClassificationDataset, type ImageClassificationSplit, optimizerSettings, recalibrateBatchNorm, recalibrationBatches } from '@tamp/core';
import { type FinetuneOptions, pruneWhileFinetuning, shareWeights } from './finetune.js';

type S = tfl.SymbolicTensor;
const SHAPE = [6, 6, 1] as const;

function split(name: 'train' | 'validation' | 'test', size: number, seed: number): ImageClassificationSplit {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31);
  const labels = Uint8Array.from({ length: size }, () => next() % 3);
  // Each class lights its own third of the image, plus noise: learnable in a few steps.
  const images = new Uint8Array(size * 36);
  for (let i = 0; i < size; i++) for (let p = 0; p < 36; p++) images[i * 36 + p] = (Math.floor(p / 12) === labels[i] ? 160 : 0) + (next() % 90);
  return { name, size, imageShape: SHAPE, images, labels };
}

const dataset: ImageClassificationDataset = {
  kind: 'classification',
  name: 'thirds',
  source: 'made in the test',
  numClasses: 3,
  classNames: ['a', 'b', 'c'],
  train: split('train', 256, 1),
  validation: split('validation', 64, 2),
  test: split('test', 64, 3),
};

function model(): tfl.LayersModel {
  const input = tfl.input({ shape: [...SHAPE] });
  let x = tfl.layers.conv2d({ filters: 8, kernelSize: 3, useBias: false, kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply(input) as S;
  x = tfl.layers.batchNormalization().apply(x) as S;
  x = tfl.layers.reLU().apply(x) as S;
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as S;
  return tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }).apply(x) as S });
}

const options: FinetuneOptions = { dataset, optimizer: optimizerSettings('sgd', 0.5), batchSize: 32, seed: 1, log: () => {} };

/** The moving mean and variance, then what a fresh recalibration under the same weights sets them to. */
async function statistics(m: tfl.LayersModel): Promise<{ kept: number[]; recomputed: number[] }> {
  const read = () => m.weights.filter((w) => /moving_(mean|variance)/.test(w.name)).flatMap((w) => [...w.read().dataSync()]);
  const kept = read();
  await recalibrateBatchNorm(m, recalibrationBatches(dataset.train, { batchSize: options.batchSize, seed: options.seed }));
  return { kept, recomputed: read() };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('fine-tuning a model with batch norm', () => {
  it('pruning leaves the moving statistics of the pruned weights, recomputed', async () => {
    const m = model();
    await pruneWhileFinetuning(m, { sparsity: 0.75, scope: 'layer', pattern: 'unstructured' }, 2, options);
    const { kept, recomputed } = await statistics(m);
    expect(kept.length).toBe(16);
    for (let i = 0; i < kept.length; i++) expect(kept[i]).toBeCloseTo(recomputed[i] as number, 5);
    m.dispose();
  });

  it('weight sharing too', async () => {
    const m = model();
    await shareWeights(m, 4, 2, options);
    const { kept, recomputed } = await statistics(m);
    for (let i = 0; i < kept.length; i++) expect(kept[i]).toBeCloseTo(recomputed[i] as number, 5);
    m.dispose();
  });
});
