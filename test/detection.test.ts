/**
 * The detector through the real `tamp` commands: training in one process and
 * on a local cluster (tiny epochs), mAP in the reports, tamp eval and tamp
 * infer on the shapes dataset and on a PNG scene. The mAP of a trained
 * detector (≥ 0.8) is a benchmark (pnpm bench:detect); here the runs are
 * short, so the checks are on what the commands produce and how they agree.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateDetector, renderScene, rgbToRgba, sceneSeed, shapesDataset } from '@tamp/core';
import { encodePng, loadLayersModelFile } from '@tamp/core/node';
import { jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-detect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface DetectReport {
  task: string;
  mAP: number;
  perClassAP: Array<number | null>;
  testAccuracy?: number;
  steps: number;
  workers: number;
  history: Array<{ validationMAP?: number }>;
}

describe('shapes-detector through tamp', () => {
  const single = join(dir, 'single');

  beforeAll(async () => {
    await tf.setBackend('wasm');
  });

  it('trains in one process: report.json carries mAP, not accuracy', async () => {
    const r = await runTamp(['train', '--model', 'shapes-detector', '--dataset', 'shapes', '--epochs', '2', '--epoch-size', '192', '--batch-size', '16', '--lr', '0.003', '--backend', 'wasm', '--out', single, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = jsonOf<DetectReport>(r);
    expect(report.task).toBe('detection');
    expect(report.testAccuracy).toBeUndefined();
    expect(report.steps).toBe(2 * 12);
    expect(report.mAP).toBeGreaterThanOrEqual(0);
    expect(report.mAP).toBeLessThanOrEqual(1);
    expect(report.perClassAP).toHaveLength(3);
    expect(report.history.map((h) => typeof h.validationMAP)).toEqual(['number', 'number']);
    // The chief's figure is the same computation tamp's own evaluation gives on the saved model.
    const model = await loadLayersModelFile(join(single, 'model', 'model.json'));
    expect((await evaluateDetector(model, shapesDataset().test)).mAP).toBeCloseTo(report.mAP, 10);
    model.dispose();
  });

  it('trains on a local cluster (1 ps, 2 workers, sync)', async () => {
    const r = await runTamp(['train', '--local', '--ps', '1', '--workers', '2', '--mode', 'sync', '--model', 'shapes-detector', '--dataset', 'shapes', '--epochs', '1', '--epoch-size', '128', '--batch-size', '16', '--out', join(dir, 'cluster'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = jsonOf<DetectReport>(r);
    expect(report).toMatchObject({ task: 'detection', workers: 2 });
    // 128 scenes in global batches of 2 × 16: 4 sync steps.
    expect(report.steps).toBe(4);
    expect(typeof report.mAP).toBe('number');
  });

  it('tamp eval reports mAP on the shapes test scenes, the same on wasm and (explicitly) webgpu', async () => {
    const model = join(single, 'model', 'model.json');
    const wasm = await runTamp(['eval', model, '--dataset', 'shapes', '--limit', '40', '--device', 'wasm', '--json']);
    expect(wasm.code, wasm.stderr).toBe(0);
    const a = jsonOf<{ task: string; mAP: number; count: number; device: string }>(wasm);
    expect(a).toMatchObject({ task: 'detection', count: 40, device: 'wasm' });
    const gpu = await runTamp(['eval', model, '--dataset', 'shapes', '--limit', '40', '--device', 'webgpu', '--json']);
    expect(gpu.code, gpu.stderr).toBe(0);
    const b = jsonOf<{ mAP: number; device: string }>(gpu);
    expect(b.device).toBe('webgpu');
    // Outputs agree to ~1e-6; a score that close to the 0.05 threshold or an NMS tie could move one detection.
    expect(Math.abs(b.mAP - a.mAP)).toBeLessThan(0.005);
  });

  it('tamp infer finds objects in a PNG scene and refuses a digit dataset', async () => {
    const scene = renderScene(sceneSeed(1, 'test', 0));
    const rgba = new Uint8Array(rgbToRgba(scene.pixels).buffer);
    const png = join(dir, 'scene.png');
    writeFileSync(png, encodePng({ width: 96, height: 96, rgba }));
    const r = await runTamp(['infer', join(single, 'model', 'model.json'), '--image', png, '--device', 'wasm', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = jsonOf<{ task: string; objects: Array<{ label: string; score: number; box: number[] }> }>(r);
    expect(out.task).toBe('detection');
    for (const o of out.objects) {
      expect(['circle', 'square', 'triangle']).toContain(o.label);
      expect(o.score).toBeGreaterThanOrEqual(0.3);
      expect(o.box).toHaveLength(4);
    }
    const wrong = await runTamp(['infer', join(single, 'model', 'model.json'), '--dataset', 'mnist', '--limit', '5']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/is a detector; evaluate it on shapes/);
  });

  it('tamp compress --int8 keeps the trained fixture detector (mAP >= 0.8) within 0.02 mAP', async () => {
    // test/fixtures/shapes-detector is the model `pnpm bench:detect --save` trained (see its README);
    // a tiny model trained here would score near 0 before and after, which proves nothing.
    const fixture = fileURLToPath(new URL('./fixtures/shapes-detector/model.json', import.meta.url));
    const r = await runTamp(['compress', fixture, '--int8', '--out', join(dir, 'int8'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const c = jsonOf<{ task: string; mAPBefore: number; mAPAfter: number; accuracyBefore?: number; ratio: number }>(r);
    expect(c.task).toBe('detection');
    expect(c.accuracyBefore).toBeUndefined();
    expect(c.ratio).toBeGreaterThan(3.5);
    expect(c.mAPBefore).toBeGreaterThanOrEqual(0.8);
    expect(Math.abs(c.mAPBefore - c.mAPAfter)).toBeLessThanOrEqual(0.02);
  });

  it('refuses to train a classifier on shapes or the detector on mnist', async () => {
    const r = await runTamp(['train', '--model', 'lenet-5', '--dataset', 'shapes', '--epochs', '1', '--out', join(dir, 'bad')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/lenet-5 is a classification model and shapes a detection dataset/);
  });
});
