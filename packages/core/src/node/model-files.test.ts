import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../errors.js';
import { createModel } from '../zoo/zoo.js';
import { loadLayersModelFile, saveLayersModel } from './model-files.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-model-'));
beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function expectModelError(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ModelError);
  expect((caught as ModelError).code).toBe(code);
  expect((caught as Error).message).toMatch(pattern);
}

describe('model files', () => {
  it('saves model.json + weights.bin and loads the same weights back', async () => {
    const model = createModel('lenet-300-100', { seed: 3 });
    const path = await saveLayersModel(model, join(dir, 'a'));
    const json = JSON.parse(readFileSync(path, 'utf8')) as { format: string; weightsManifest: Array<{ paths: string[] }> };
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest[0]?.paths).toEqual(['weights.bin']);
    expect(readFileSync(join(dir, 'a', 'weights.bin')).length).toBe(266_610 * 4);
    const back = await loadLayersModelFile(path);
    const a = model.getWeights().map((w) => Array.from(w.dataSync()));
    const b = back.getWeights().map((w) => Array.from(w.dataSync()));
    expect(b).toEqual(a);
  });

  it('refuses a missing model, bad JSON, truncated weights and paths leaving the folder', async () => {
    await expectModelError(loadLayersModelFile(join(dir, 'missing', 'model.json')), 'MODEL_NOT_FOUND', /no such model file/);
    const model = createModel('lenet-300-100', { seed: 3 });
    const path = await saveLayersModel(model, join(dir, 'b'));
    writeFileSync(join(dir, 'bad.json'), '{"modelTopology": ');
    await expectModelError(loadLayersModelFile(join(dir, 'bad.json')), 'MODEL_INVALID', /not valid JSON/);
    writeFileSync(join(dir, 'notmodel.json'), '{"hello": 1}');
    await expectModelError(loadLayersModelFile(join(dir, 'notmodel.json')), 'MODEL_INVALID', /no modelTopology/);
    const weights = readFileSync(join(dir, 'b', 'weights.bin'));
    writeFileSync(join(dir, 'b', 'weights.bin'), weights.subarray(0, weights.length - 8));
    await expectModelError(loadLayersModelFile(path), 'MODEL_INVALID', /hold 1066432 bytes but the manifest describes 1066440/);
    const json = JSON.parse(readFileSync(path, 'utf8')) as { weightsManifest: Array<{ paths: string[] }> };
    (json.weightsManifest[0] as { paths: string[] }).paths = ['../../etc/passwd'];
    writeFileSync(join(dir, 'b', 'model.json'), JSON.stringify(json));
    await expectModelError(loadLayersModelFile(path), 'MODEL_INVALID', /leaves the model folder/);
  });
});
