import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import '../node/wasm-kernels/register.js';
import { BatchSource, gatherBatch } from '../data/dataset.js';
import { shapesDataset } from '../data/shapes.js';
import { lossFunction, trainStep } from '../train/classifier.js';
import { createTfOptimizer, optimizerSettings } from '../train/optimizers.js';
import { createModel, zooEntry } from './zoo.js';

describe('shapes-detector', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
  });

  it('has the documented shape and parameter count', () => {
    const m = createModel('shapes-detector', { seed: 1 });
    expect(m.inputs[0]?.shape).toEqual([null, 96, 96, 3]);
    expect(m.outputs[0]?.shape).toEqual([null, 12, 12, 8]);
    expect(m.countParams()).toBe(zooEntry('shapes-detector').parameters);
    m.dispose();
  });

  it('a tiny training run on the WASM backend lowers the loss on held-out scenes', async () => {
    const data = shapesDataset(1);
    const model = createModel('shapes-detector', { seed: 1 });
    const held = gatherBatch(data.validation, Uint32Array.from({ length: 16 }, (_, i) => i));
    const lossOn = () => {
      const l = tf.tidy(() => lossFunction(model, held)());
      const v = l.dataSync()[0] as number;
      l.dispose();
      return v;
    };
    const before = lossOn();
    const source = new BatchSource(data.train, { batchSize: 8, seed: 1, limit: 400 });
    const optimizer = createTfOptimizer(optimizerSettings('adam', 0.002));
    for (let step = 0; step < 25; step++) {
      const loss = await trainStep(model, optimizer, source.batch(step));
      expect(Number.isFinite(loss)).toBe(true);
    }
    const after = lossOn();
    expect(after).toBeLessThan(before * 0.7);
    optimizer.dispose();
    model.dispose();
  });
});
