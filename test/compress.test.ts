/**
 * Compression part 1 on really trained models: int8 accuracy, the stock-tfjs
 * export (loaded over HTTP by tf.loadLayersModel), and .tamp files in
 * tamp eval and tamp infer.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argmaxRows, batchInput, gatherBatch } from '@tamp/core';
import { encodePng, loadMnist } from '@tamp/core/node';
import { loadTampAsLayersModel } from '@tamp/compress';
import type { CompressReport } from '@tamp/compress/node';
import { jsonOf, runTamp, serveFolder } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-compress-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function predict(model: tfl.LayersModel, n: number): Promise<{ top1: Int32Array; scores: Float32Array }> {
  const test = loadMnist().test;
  const batch = gatherBatch(test, Uint32Array.from({ length: n }, (_, i) => i));
  const y = tf.tidy(() => model.predict(batchInput(model, batch.xs, batch.size)) as tf.Tensor);
  const scores = (await y.data()) as Float32Array;
  y.dispose();
  return { top1: argmaxRows(scores, 10), scores };
}

const models = [
  ['lenet-300-100', ['--epochs', '3']],
  ['lenet-5', ['--epochs', '1']],
] as const;

describe('compression part 1: int8, .tamp and the tfjs export', () => {
  const reports = new Map<string, CompressReport>();

  beforeAll(async () => {
    await tf.setBackend('wasm');
    for (const [name, flags] of models) {
      const train = await runTamp(['train', '--model', name, '--dataset', 'mnist', ...flags, '--backend', 'wasm', '--out', join(dir, name)]);
      expect(train.code, train.stderr).toBe(0);
      const r = await runTamp(['compress', join(dir, name, 'model', 'model.json'), '--out', join(dir, `${name}-int8`), '--json']);
      expect(r.code, r.stderr).toBe(0);
      reports.set(name, jsonOf<CompressReport>(r));
    }
  });

  for (const [name] of models) {
    it(`${name}: int8 loses at most 0.5 points of test accuracy, about 4x smaller`, () => {
      const r = reports.get(name) as CompressReport;
      expect(r.dataset).toBe('mnist'); // read from the model's metadata
      expect(r.accuracyBefore).toBeGreaterThan(0.9);
      expect((r.accuracyBefore as number) - (r.accuracyAfter as number)).toBeLessThanOrEqual(0.005);
      expect(r.ratio).toBeGreaterThan(3.8);
      expect(r.ratio).toBeLessThan(4);
      expect(r.compressedBytes).toBe(readFileSync(r.tamp).length);
      for (const layer of r.layers.filter((l) => l.maxError !== undefined)) expect(layer.maxError).toBeLessThanOrEqual((layer.maxHalfStep as number) * (1 + 1e-6));
    });

    it(`${name}: stock tfjs loads the uint8 export and agrees with the .tamp model on ≥ 99.5% of test digits`, async () => {
      const r = reports.get(name) as CompressReport;
      const server = await serveFolder(join(dir, `${name}-int8`, 'tfjs'));
      try {
        const stock = await tfl.loadLayersModel(`${server.url}/model.json`);
        const tampModel = await loadTampAsLayersModel(readFileSync(r.tamp));
        const a = await predict(stock, 2000);
        const b = await predict(tampModel, 2000);
        const agree = a.top1.reduce((n, v, i) => n + (v === b.top1[i] ? 1 : 0), 0) / 2000;
        expect(agree).toBeGreaterThanOrEqual(0.995);
        expect(r.tfjs.top1Agreement).toBeGreaterThanOrEqual(0.995);
        expect(r.tfjs.maxOutputDifference).toBeGreaterThan(0);
        expect(r.tfjs.maxOutputDifference).toBeLessThan(1);
      } finally {
        await server.close();
      }
    });
  }

  it('tamp eval and tamp infer take .tamp files, on wasm and (explicitly) on WebGPU', async () => {
    const r = reports.get('lenet-300-100') as CompressReport;
    const evaluation = await runTamp(['eval', r.tamp, '--dataset', 'mnist', '--json']);
    expect(evaluation.code, evaluation.stderr).toBe(0);
    expect(jsonOf<{ accuracy: number }>(evaluation).accuracy).toBe(r.accuracyAfter);
    const infer = await runTamp(['infer', r.tamp, '--dataset', 'mnist', '--limit', '256', '--device', 'wasm', '--json']);
    expect(infer.code, infer.stderr).toBe(0);
    const onWasm = jsonOf<{ count: number; device: string; accuracy: number; predictions: number[] }>(infer);
    expect(onWasm).toMatchObject({ count: 256, device: 'wasm' });
    // --device webgpu finds chromium's SwiftShader by itself (no VK_ICD_FILENAMES) and keeps the int8 weights packed.
    const gpu = await runTamp(['infer', r.tamp, '--dataset', 'mnist', '--limit', '256', '--device', 'webgpu', '--json'], { env: { VK_ICD_FILENAMES: undefined } });
    expect(gpu.code, gpu.stderr).toBe(0);
    expect(gpu.stderr).toMatch(/SwiftShader/);
    const onGpu = jsonOf<{ count: number; device: string; software: boolean; accuracy: number; gpuWeightBytes: number; predictions: number[] }>(gpu);
    expect(onGpu).toMatchObject({ count: 256, device: 'webgpu', software: true, accuracy: onWasm.accuracy, predictions: onWasm.predictions });
    expect(onGpu.gpuWeightBytes / r.originalBytes).toBeLessThanOrEqual(0.3);
    const evalGpu = await runTamp(['eval', r.tamp, '--dataset', 'mnist', '--limit', '256', '--device', 'webgpu', '--json']);
    expect(evalGpu.code, evalGpu.stderr).toBe(0);
    expect(jsonOf<{ device: string; count: number; accuracy: number }>(evalGpu)).toMatchObject({ device: 'webgpu', count: 256, accuracy: onWasm.accuracy });
  });

  it('tamp infer --image classifies PNG digits drawn dark on light at another size', async () => {
    const r = reports.get('lenet-300-100') as CompressReport;
    const model = await loadTampAsLayersModel(readFileSync(r.tamp));
    const { top1, scores } = await predict(model, 200);
    const test = loadMnist().test;
    // Five digits the model is sure of; each rendered 4x larger, black ink on white paper.
    const sure = [...top1.keys()].filter((i) => top1[i] === test.labels[i] && (scores[i * 10 + (top1[i] as number)] as number) > 0.98).slice(0, 5);
    expect(sure).toHaveLength(5);
    for (const i of sure) {
      const size = 112;
      const rgba = new Uint8Array(size * size * 4);
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const v = 255 - (test.images[i * 784 + Math.floor(y / 4) * 28 + Math.floor(x / 4)] as number);
          rgba.set([v, v, v, 255], (y * size + x) * 4);
        }
      }
      const file = join(dir, `digit-${i}.png`);
      writeFileSync(file, encodePng({ width: size, height: size, rgba }));
      const out = await runTamp(['infer', r.tamp, '--image', file, '--device', 'wasm', '--json']);
      expect(out.code, out.stderr).toBe(0);
      expect(jsonOf<{ prediction: string }>(out).prediction, `test digit ${i}`).toBe(String(test.labels[i]));
    }
  });
});
