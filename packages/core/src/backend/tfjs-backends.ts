/**
 * tfjs backend candidates that work in any JavaScript runtime: WebGPU through
 * `navigator.gpu`, WASM and CPU. Node adds tensorflow (tfjs-node) and Dawn
 * for WebGPU in @tamp/core/node.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendUnavailableError, errorMessage } from '../errors.js';
import type { BackendCandidate, ProbeResult } from './select.js';

/** Heuristic used with the adapter's isFallbackAdapter flag. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render/i;

export interface AdapterDescription {
  readonly text: string;
  readonly software: boolean;
}

/** Describe an adapter, and whether it is a software rasteriser (which `auto` skips). */
export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s !== undefined && s !== '');
  const text = parts.length > 0 ? [...new Set(parts)].join(' / ') : 'unknown adapter';
  const legacy = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const software = info.isFallbackAdapter === true || legacy === true || SOFTWARE_ADAPTER.test(parts.join(' '));
  return { text, software };
}

/** Make `name` tfjs's current backend, or throw saying why not. */
export async function activateTfBackend(name: string): Promise<void> {
  if (tf.getBackend() === name) return;
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (error) {
    throw new BackendUnavailableError(`tfjs could not initialise the ${name} backend: ${errorMessage(error)}`, [{ name, reason: errorMessage(error) }], { cause: error });
  }
  if (!ok) throw new BackendUnavailableError(`tfjs could not initialise the ${name} backend (its warning above says why)`, [{ name, reason: 'tf.setBackend returned false' }]);
  await tf.ready();
}

export function cpuCandidate(): BackendCandidate {
  return {
    name: 'cpu',
    async probe(): Promise<ProbeResult> {
      await import('@tensorflow/tfjs-backend-cpu');
      return { available: true, gpu: false, software: false, adapter: 'tfjs cpu (JavaScript)' };
    },
    async activate() {
      await import('@tensorflow/tfjs-backend-cpu');
      await activateTfBackend('cpu');
    },
  };
}

export function wasmCandidate(): BackendCandidate {
  return {
    name: 'wasm',
    async probe(): Promise<ProbeResult> {
      if (typeof WebAssembly !== 'object') return { available: false, gpu: false, software: false, reason: 'WebAssembly is not supported here' };
      await import('@tensorflow/tfjs-backend-wasm');
      return { available: true, gpu: false, software: false, adapter: 'tfjs wasm (XNNPACK)' };
    },
    async activate() {
      await import('@tensorflow/tfjs-backend-wasm');
      await activateTfBackend('wasm');
    },
  };
}

/** WebGPU through the browser's navigator.gpu. */
export function browserWebGpuCandidate(): BackendCandidate {
  return {
    name: 'webgpu',
    async probe(): Promise<ProbeResult> {
      const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
      if (gpu === undefined) return { available: false, gpu: false, software: false, reason: 'this browser has no navigator.gpu (WebGPU disabled or unsupported)' };
      const adapter = await gpu.requestAdapter();
      if (adapter === null) return { available: false, gpu: false, software: false, reason: 'navigator.gpu offered no adapter' };
      const d = describeAdapter(adapter);
      return { available: true, gpu: true, software: d.software, adapter: d.text };
    },
    async activate() {
      await import('@tensorflow/tfjs-backend-webgpu');
      await activateTfBackend('webgpu');
    },
  };
}

/** The candidates a browser has, fastest first. */
export function browserBackendCandidates(): BackendCandidate[] {
  return [browserWebGpuCandidate(), wasmCandidate(), cpuCandidate()];
}
