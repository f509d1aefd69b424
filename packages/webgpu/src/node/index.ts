/// <reference types="@webgpu/types" preserve="true" />
/**
 * @tamp/webgpu/node: loadModel for Node. Reads model files from disk (or
 * URLs), and gets WebGPU from Dawn (the `webgpu` package): the machine's
 * Vulkan driver, or, when the device is named explicitly and no driver
 * offers an adapter, chromium's SwiftShader driver (correct, slow).
 */
import { dirname, join } from 'node:path';
import { readUserFile, requestDawnAdapter } from '@tamp/core/node';
import { type LoadOptions, type LoadedModel, loadParts } from '../load.js';
import { type ModelParts, isTampBytes, partsFromModelJson, partsFromTamp } from '../model-source.js';
import { readParts as readPartsFromUrl } from '../index.js';
import type { InferenceModel } from '../inference-model.js';

export * from '../index.js';

function readFile(file: string, expected = 'a model.tamp or a tfjs model.json'): Uint8Array {
  return readUserFile(file, { expected, notFound: 'MODEL_NOT_FOUND', inFolder: ['model.tamp', 'model.json'] });
}

/** Model parts from a file path (model.tamp or model.json), an http(s) URL, or .tamp bytes. */
export async function readModelParts(source: string | URL | Uint8Array | ArrayBuffer): Promise<ModelParts> {
  if (typeof source !== 'string' || /^https?:\/\//.test(source)) return readPartsFromUrl(source);
  const bytes = readFile(source);
  if (isTampBytes(bytes)) return partsFromTamp(bytes, source);
  if (source.endsWith('.tamp')) return partsFromTamp(bytes, source); // reports what is wrong with it
  return partsFromModelJson(new TextDecoder().decode(bytes), source, async (path) => readFile(join(dirname(source), path), `the weights file named by ${source}`));
}

/** Dawn adapter as the loader wants it. */
async function dawnAdapter(explicit: boolean, log: (message: string) => void) {
  const found = await requestDawnAdapter({ allowSoftware: explicit, log });
  return { adapter: found.adapter, description: found.description, software: found.software };
}

/** Load a model (file path, URL or .tamp bytes) and bring it up on `options.device` (default auto). */
export async function loadModel(source: string | URL | Uint8Array | ArrayBuffer, options: LoadOptions = {}): Promise<InferenceModel> {
  return (await loadModelWithSelection(source, options)).model;
}

/** loadModel, also saying which devices were passed over and why. */
export async function loadModelWithSelection(source: string | URL | Uint8Array | ArrayBuffer, options: LoadOptions = {}): Promise<LoadedModel> {
  return loadParts(await readModelParts(source), options, dawnAdapter);
}
