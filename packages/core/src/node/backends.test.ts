import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, InvalidArgumentError } from '../errors.js';
import { resolveName } from '../backend/select.js';
import { BACKEND_NAMES } from '../backend/select.js';
import { useBackend } from './backends.js';
import { findSwiftShaderIcd } from './webgpu-dawn.js';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('training backend selection (Node)', () => {
  it('needs chromium for the SwiftShader driver these tests use', () => {
    // Not a skip: without chromium the WebGPU tests cannot run, and must say so.
    expect(findSwiftShaderIcd(), 'install Debian chromium (apt-get install chromium): its SwiftShader Vulkan driver runs the WebGPU tests').toBeDefined();
  });

  it('auto takes WASM here: tfjs-node is absent and no hardware WebGPU adapter exists', async () => {
    const logs: string[] = [];
    const selected = await useBackend('auto', { log: (m) => logs.push(m) });
    expect(selected.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(selected.skipped.map((s) => s.name)).toEqual(['tensorflow', 'webgpu']);
    expect(selected.skipped[0]?.reason).toMatch(/tfjs-node/);
    expect(logs.join('\n')).toMatch(/backend tensorflow: skipped/);
  });

  it('refuses an explicit absent backend with a typed error listing those available', async () => {
    const error = await rejection(useBackend('tensorflow'));
    expect(error).toBeInstanceOf(BackendUnavailableError);
    const e = error as BackendUnavailableError;
    expect(e.code).toBe('BACKEND_UNAVAILABLE');
    expect(e.message).toMatch(/backend "tensorflow" is not available: .*tfjs-node/);
    expect(e.message).toMatch(/Available here: webgpu, wasm, cpu/);
  });

  it('--require-gpu fails loudly when only CPU backends (and a software adapter) exist', async () => {
    const auto = await rejection(useBackend('auto', { requireGpu: true }));
    expect(auto).toBeInstanceOf(BackendUnavailableError);
    expect((auto as Error).message).toMatch(/--require-gpu: no GPU backend came up; wasm is not a GPU backend/);
    const sw = await rejection(useBackend('webgpu', { requireGpu: true }));
    expect((sw as Error).message).toMatch(/webgpu is a software adapter/);
  });

  it('runs explicit webgpu on SwiftShader when no driver offers an adapter', async () => {
    const logs: string[] = [];
    const selected = await useBackend('webgpu', { log: (m) => logs.push(m) });
    expect(selected.name).toBe('webgpu');
    expect(selected.software).toBe(true);
    expect(selected.adapter).toMatch(/swiftshader/i);
    expect(logs.join('\n')).toMatch(/using chromium's SwiftShader driver/);
    const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]));
    expect(Array.from(await y.data())).toEqual([11]);
    // And back: the choice is not sticky.
    expect((await useBackend('cpu')).name).toBe('cpu');
  });

  it('validates names with an error listing the valid ones', () => {
    expect(() => resolveName('cuda', BACKEND_NAMES)).toThrow(InvalidArgumentError);
    expect(() => resolveName('cuda', BACKEND_NAMES)).toThrow('unknown backend "cuda": choose one of auto, tensorflow, webgpu, wasm, cpu');
  });
});
