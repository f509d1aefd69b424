/**
 * A MobileNet-style zoo model (batch norm, depthwise convs, ReLU6, a
 * residual add) through a local cluster: the parameter servers hold
 * trainable variables only, and the chief recomputes the batch-norm
 * statistics (precise BN) before evaluating and saving.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { recalibrateBatchNorm, recalibrationBatches } from '@tamp/core';
import { loadDataset, loadLayersModelFile } from '@tamp/core/node';
import { jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-zoo-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mobilenet-tiny on a local cluster', () => {
  it('trains (1 ps, 2 workers, sync), reports accuracy, and saves the batch-norm statistics of its weights', async () => {
    const out = join(dir, 'cluster');
    const r = await runTamp(
      ['train', '--local', '--ps', '1', '--workers', '2', '--mode', 'sync', '--model', 'mobilenet-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '128', '--batch-size', '16', '--seed', '3', '--heartbeat-timeout', '60', '--out', out, '--json'],
      { timeoutMs: 420_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const report = jsonOf<{ testAccuracy: number; validationAccuracy: number; steps: number; workers: number }>(r);
    expect(report.workers).toBe(2);
    expect(report.steps).toBe(4);
    expect(report.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(report.testAccuracy).toBeLessThanOrEqual(1);
    expect(typeof report.validationAccuracy).toBe('number');

    // The saved statistics are what recalibration gives for the saved weights
    // (not the fresh model's mean 0 / variance 1, which nothing else updates).
    await tf.setBackend('cpu');
    const model = await loadLayersModelFile(join(out, 'model', 'model.json'));
    const saved = await Promise.all(model.getLayer('block_1_depthwise_BN').getWeights().slice(2).map(async (t) => Array.from(await t.data())));
    expect(saved[1]?.some((v) => Math.abs(v - 1) > 1e-3)).toBe(true);
    const dataset = loadDataset('mnist');
    await recalibrateBatchNorm(model, recalibrationBatches(dataset.train, { batchSize: 16, seed: 3 }));
    const again = await Promise.all(model.getLayer('block_1_depthwise_BN').getWeights().slice(2).map(async (t) => Array.from(await t.data())));
    for (const [k, values] of again.entries()) {
      values.forEach((v, i) => expect(Math.abs(v - (saved[k]?.[i] as number)), `statistic ${k}, channel ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(v))));
    }
    model.dispose();
  }, 480_000);
});
