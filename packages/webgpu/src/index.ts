/// <reference types="@webgpu/types" preserve="true" />
/**
 * @tamp/webgpu: run .tamp and tfjs models with int8 and shared weights kept
 * packed on the GPU, or on WASM/CPU. This root is the browser entry (fetch,
 * navigator.gpu); @tamp/webgpu/node reads files and brings WebGPU up through
 * Dawn.
 */
import { ModelError, errorMessage } from '@tamp/core';
import { type LoadOptions, adapterFrom, loadParts } from './load.js';
import { type ModelParts, isTampBytes, partsFromModelJson, partsFromTamp } from './model-source.js';
import type { InferenceModel } from './inference-model.js';

export * from './inference-model.js';
export * from './image-input.js';
export { type LoadOptions, type LoadedModel, type AdapterProvider, adapterFrom, loadParts } from './load.js';
export { type ModelParts, isTampBytes, partsFromModelJson, partsFromTamp } from './model-source.js';
export { type Plan, type Op, ACTIVATIONS, SUPPORTED_LAYERS, planModel } from './plan.js';
export { runReference } from './reference.js';
export * from './evaluate.js';

export interface BrowserLoadOptions extends LoadOptions {
  /** The WebGPU entry point (default: navigator.gpu). */
  readonly gpu?: GPU;
  /**
   * Where tfjs-backend-wasm's .wasm binaries are served, for the WASM
   * fallback: a URL prefix ending in `/`, or each file's URL by name
   * (`tfjs-backend-wasm.wasm`, `-simd.wasm`, `-threaded-simd.wasm`). tfjs
   * looks beside its own script by default, which a bundler usually moves;
   * with Vite, import each file with `?url` and pass the map.
   */
  readonly wasmPaths?: string | Readonly<Record<string, string>>;
}

/** Point tfjs-backend-wasm at its binaries (before the backend first starts). */
export async function setWasmBinaryPaths(paths: string | Readonly<Record<string, string>>): Promise<void> {
  const { setWasmPaths } = await import('@tensorflow/tfjs-backend-wasm');
  setWasmPaths(paths as string | Record<string, string>);
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new ModelError(response.status === 404 ? 'MODEL_NOT_FOUND' : 'MODEL_INVALID', `${url}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Model parts from a URL (a .tamp file or a tfjs model.json with its weight files beside it) or from .tamp bytes. */
export async function readParts(source: string | URL | Uint8Array | ArrayBuffer): Promise<ModelParts> {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const bytes = source instanceof Uint8Array ? source : new Uint8Array(source);
    if (!isTampBytes(bytes)) throw new ModelError('MODEL_INVALID', 'the bytes are not a .tamp file; load a tfjs model.json by its URL, so its weight files can be found');
    return partsFromTamp(bytes, '.tamp bytes');
  }
  const url = String(source);
  let bytes: Uint8Array;
  try {
    bytes = await fetchBytes(url);
  } catch (error) {
    if (error instanceof ModelError) throw error;
    throw new ModelError('MODEL_NOT_FOUND', `${url}: could not be fetched (${errorMessage(error)})`, { cause: error });
  }
  if (isTampBytes(bytes)) return partsFromTamp(bytes, url);
  return partsFromModelJson(new TextDecoder().decode(bytes), url, (path) => fetchBytes(new URL(path, new URL(url, globalThis.location?.href)).href));
}

/** Load a model and bring it up on `options.device` (default auto). */
export async function loadModel(source: string | URL | Uint8Array | ArrayBuffer, options: BrowserLoadOptions = {}): Promise<InferenceModel> {
  if (options.wasmPaths !== undefined) await setWasmBinaryPaths(options.wasmPaths);
  const parts = await readParts(source);
  const gpu = options.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const { model } = await loadParts(parts, options, () => adapterFrom(gpu, 'this browser'));
  return model;
}
