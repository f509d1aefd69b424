import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../data/dataset.js';
import { InvalidArgumentError } from '../errors.js';
import { Random } from '../random.js';
import { createModel } from '../zoo/zoo.js';
import { computeGradients, trainStep } from './classifier.js';
import { createTfOptimizer, optimizerSettings } from './optimizers.js';

function randomBatch(n: number, seed: number): Batch {
  const r = new Random(seed);
  const xs = Float32Array.from({ length: n * 784 }, () => r.next());
  const labels = Int32Array.from({ length: n }, () => r.int(10));
  return { xs, labels, size: n };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('training step', () => {
  it('gradients are named after the variables and leave the model unchanged', async () => {
    const model = createModel('lenet-300-100', { seed: 1 });
    const before = Array.from(model.getWeights()[0]?.dataSync() ?? []);
    const { loss, grads } = await computeGradients(model, randomBatch(8, 1));
    expect(loss).toBeGreaterThan(0);
    expect([...grads.keys()]).toEqual(['fc1/kernel', 'fc1/bias', 'fc2/kernel', 'fc2/bias', 'fc3/kernel', 'fc3/bias']);
    expect(grads.get('fc1/kernel')?.shape).toEqual([784, 300]);
    expect(Array.from(model.getWeights()[0]?.dataSync() ?? [])).toEqual(before);
    for (const g of grads.values()) g.dispose();
  });

  it('steps lower the loss on a fixed batch', async () => {
    const model = createModel('lenet-300-100', { seed: 1 });
    const optimizer = createTfOptimizer(optimizerSettings('adam', 0.001));
    const batch = randomBatch(16, 2);
    const first = await trainStep(model, optimizer, batch);
    let last = first;
    for (let i = 0; i < 20; i++) last = await trainStep(model, optimizer, batch);
    expect(last).toBeLessThan(first * 0.5);
  });

  it('refuses unknown optimizers and bad learning rates', () => {
    expect(() => optimizerSettings('rmsprop', 0.1)).toThrow('unknown optimizer "rmsprop": choose one of sgd, momentum, adam, adagrad');
    expect(() => optimizerSettings('sgd', 0)).toThrow(/learning rate must be a positive number/);
  });
});

describe('a model that does not fit the data', () => {
  it('a classifier on detection scenes, or a detector on labelled digits, is an INVALID_ARGUMENT saying what fits', async () => {
    const classifier = createModel('mlp-tiny', { seed: 1 });
    const scenes: Batch = { xs: new Float32Array(2 * 784), labels: new Int32Array(2), objects: [[], []], size: 2 };
    const a = await computeGradients(classifier, scenes).catch((e: unknown) => e);
    expect(a).toBeInstanceOf(InvalidArgumentError);
    expect((a as Error).message).toMatch(/cannot train or score as a detector: its output is \[N, 10\], a detector's is \[N, G, G, 5 \+ classes\]; train a detector \(e\.g\. shapes-detector\) on detection data/);
    const detector = createModel('shapes-detector', { seed: 1 });
    const b = await computeGradients(detector, randomBatch(2, 1)).catch((e: unknown) => e);
    expect(b).toBeInstanceOf(InvalidArgumentError);
    expect((b as Error).message).toMatch(/cannot train or score as a classifier: its output is \[N, 12, 12, 8\], a classifier's is \[N, classes\]/);
  });
});
