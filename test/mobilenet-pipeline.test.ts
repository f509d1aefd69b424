/**
 * A MobileNet-style model through every stage of Tamp, as a user runs it:
 * `tamp train` (mobilenet-tiny: two inverted-residual blocks, batch norm,
 * ReLU6, a residual add) on MNIST fitted to its 32x32x3 input for a few
 * steps on WASM, `tamp compress --int8` (batch norm folded first), the
 * `.tamp` on every inference device against the float64 reference, and the
 * stock-tfjs export loaded by `tf.loadLayersModel`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fitSamples } from '@tamp/core';
import { fileLoadHandler, loadDataset } from '@tamp/core/node';
import { DEVICE_NAMES, loadModel, planModel, readModelParts, runReference } from '@tamp/webgpu/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonOf, runTamp } from './helpers/tamp.js';

describe('mobilenet-tiny: train, compress, every device, stock tfjs', () => {
  let dir: string;
  let x: Float32Array;
  const n = 8;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tamp-mobilenet-'));
    const mnist = loadDataset('mnist');
    if (mnist.kind !== 'classification') throw new Error('mnist is a classification dataset');
    const raw = Float32Array.from(mnist.test.images.subarray(0, n * 784), (b) => b / 255);
    x = fitSamples(raw, n, [32, 32, 3]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('trains, compresses to int8 with batch norm folded, and runs the same on webgpu, wasm and cpu', async () => {
    const train = await runTamp(['train', '--model', 'mobilenet-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '256', '--batch-size', '32', '--backend', 'wasm', '--out', join(dir, 'run'), '--json']);
    expect(train.code, train.stderr).toBe(0);
    expect(jsonOf<{ steps: number }>(train).steps).toBe(8);
    const modelJson = join(dir, 'run', 'model', 'model.json');
    // The saved model carries its batch-norm statistics (moving mean and variance).
    const weights = (JSON.parse(readFileSync(modelJson, 'utf8')) as { weightsManifest: Array<{ weights: Array<{ name: string }> }> }).weightsManifest.flatMap((m) => m.weights.map((w) => w.name));
    expect(weights.some((w) => w.endsWith('moving_variance'))).toBe(true);

    const compress = await runTamp(['compress', modelJson, '--out', join(dir, 'c'), '--int8', '--json']);
    expect(compress.code, compress.stderr).toBe(0);
    expect(jsonOf<{ techniques: string[] }>(compress).techniques).toContain('batch norm folded');
    const tamp = join(dir, 'c', 'model.tamp');

    // Every device runs the same int8 weights: each within 1e-4 (relative to the output scale) of the float64 reference.
    const parts = await readModelParts(tamp);
    const plan = planModel(parts.modelTopology, parts.weights);
    const reference = runReference(plan, parts.weights, x, n);
    const scale = Math.max(...reference.map(Math.abs));
    for (const device of DEVICE_NAMES) {
      const model = await loadModel(tamp, { device });
      try {
        expect(model.info().device).toBe(device);
        const y = await model.predict(x);
        expect(y.shape).toEqual([n, 10]);
        for (let i = 0; i < reference.length; i++) expect(Math.abs((y.data[i] as number) - (reference[i] as number)), `${device} output ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
      } finally {
        model.dispose();
      }
    }

    // Stock tfjs loads the uint8 export (batch norm folded away) and agrees with the .tamp within quantization.
    await tf.setBackend('cpu');
    const stock = await tfl.loadLayersModel(fileLoadHandler(join(dir, 'c', 'tfjs', 'model.json')));
    expect(stock.layers.some((l) => l.getClassName() === 'BatchNormalization')).toBe(false);
    const y = tf.tidy(() => (stock.predict(tf.tensor(x, [n, 32, 32, 3])) as tf.Tensor).dataSync());
    stock.dispose();
    for (let i = 0; i < reference.length; i++) expect(Math.abs((y[i] as number) - (reference[i] as number))).toBeLessThanOrEqual(0.05 * Math.max(1, scale));
  });
});
