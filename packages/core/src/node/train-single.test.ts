import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, describe, expect, it } from 'vitest';
import './wasm-kernels/register.js';
import { recalibrateBatchNorm, recalibrationBatches } from '../train/batch-norm.js';
import { loadDataset } from './datasets/registry.js';
import { trainSingleProcess } from './train-single.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-train-single-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('one-process training of a MobileNet-style model on WASM', () => {
  it('trains mobilenet-tiny on MNIST (28x28 grey fitted to 32x32x3), saves batch-norm statistics, and stock tfjs loads the model', async () => {
    const out = join(dir, 'mobilenet-tiny');
    const report = await trainSingleProcess({
      model: 'mobilenet-tiny', dataset: 'mnist', epochs: 1, epochSize: 96, batchSize: 32, optimizer: 'adam', learningRate: 0.01, backend: 'wasm', seed: 1, out,
    });
    expect(report.backend).toBe('wasm');
    expect(report.steps).toBe(3);
    expect(report.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(report.testLoss)).toBe(true);
    const json = JSON.parse(readFileSync(report.modelPath, 'utf8')) as tf.io.ModelJSON;
    const specs = json.weightsManifest[0]?.weights ?? [];
    expect(specs.map((s) => s.name)).toEqual(expect.arrayContaining(['bn_Conv1/gamma', 'bn_Conv1/moving_mean', 'bn_Conv1/moving_variance', 'block_1_depthwise/depthwise_kernel']));
    // Stock tfjs: model.json and weights.bin through tf.io's own in-memory handler.
    const weights = readFileSync(join(out, 'model', 'weights.bin'));
    const model = await tfl.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology, weightSpecs: specs, weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer,
    }));
    expect(model.inputs[0]?.shape).toEqual([null, 32, 32, 3]);
    // Three training steps moved the moving mean off its zero start.
    const movingMean = model.getLayer('bn_Conv1').getWeights()[2] as tf.Tensor;
    const saved = Array.from(await movingMean.data());
    expect(Math.max(...saved.map(Math.abs))).toBeGreaterThan(0);
    // And the saved statistics are the recomputed ones (precise BN), not the moving averages three steps
    // left near their start: recomputing them on the same samples from the saved weights changes nothing.
    const again = await recalibrateBatchNorm(model, recalibrationBatches(loadDataset('mnist').train, { batchSize: 32, seed: 1 }));
    expect(again.layers).toBeGreaterThan(0);
    const recomputed = Array.from(await (model.getLayer('bn_Conv1').getWeights()[2] as tf.Tensor).data());
    for (let i = 0; i < saved.length; i++) expect(recomputed[i]).toBeCloseTo(saved[i] as number, 4);
    const y = model.predict(tf.zeros([2, 32, 32, 3])) as tf.Tensor;
    const p = Array.from(await y.data());
    expect(p.slice(0, 10).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    model.dispose();
  }, 180_000);
});
