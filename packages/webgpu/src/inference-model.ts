/**
 * The model `loadModel` returns, whichever device runs it, and the checks
 * every device applies to its input.
 */
import { InvalidArgumentError, ModelError } from '@tamp/core';
import type { TampMeta } from '@tamp/compress';
import { type ImageInput, imagesToInput, isImageInput } from './image-input.js';

/** Inference devices, fastest first. `auto` takes the first really present (a software WebGPU adapter is skipped). */
export const DEVICE_NAMES = Object.freeze(['webgpu', 'wasm', 'cpu'] as const);
export type DeviceName = (typeof DEVICE_NAMES)[number];
export type DeviceRequest = DeviceName | 'auto';

/**
 * A batch of inputs: a typed array or number array (samples one after
 * another), a tfjs tensor (anything with `shape` and `data()`), or one image
 * or an array of images (ImageData, ImageBitmap, a canvas, an <img>, a
 * <video>, a VideoFrame: see image-input.ts), resized to the model's input.
 */
export type ModelInput = Float32Array | Uint8Array | readonly number[] | { readonly shape: readonly number[]; data(): Promise<ArrayLike<number>> } | ImageInput | readonly ImageInput[];

export interface Prediction {
  /** [batch, ...output shape of one sample]. */
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface ModelInfo {
  /** The device that runs the model. */
  readonly device: DeviceName;
  /** Adapter or library, e.g. "nvidia / ampere" or "tfjs wasm (XNNPACK)". */
  readonly adapter: string;
  /** A software rasteriser posing as a GPU (SwiftShader). */
  readonly software: boolean;
  readonly format: 'tamp' | 'tfjs';
  readonly name: string;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly parameters: number;
  /** Bytes the weights would take as float32. */
  readonly float32WeightBytes: number;
  /** Bytes of weight buffers on the GPU (weights, scales, codebooks, biases), counted from the buffers created; 0 off the GPU. */
  readonly gpuWeightBytes: number;
  /** All bytes this model holds on the GPU now (weights, activations, staging). */
  readonly gpuBytes: number;
  /** GPU buffers this model holds now. */
  readonly gpuBuffers: number;
  /** Compute dispatches per inference pass (WebGPU; 0 elsewhere). Bias and activation are fused into their layer's dispatch. */
  readonly dispatches: number;
  /** How each weight is kept on the device, by name. */
  readonly weights: ReadonlyArray<{ readonly name: string; readonly storage: string; readonly bytes: number }>;
  readonly meta: Partial<TampMeta>;
}

export interface InferenceModel {
  /** Run a batch; returns the outputs of every sample. */
  predict(input: ModelInput): Promise<Prediction>;
  /** Compile and run once, so the first real call is not slower. */
  warmup(batch?: number): Promise<void>;
  /** Release every GPU buffer (or tfjs tensor); the model cannot be used after. */
  dispose(): void;
  info(): ModelInfo;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Check an input against a model's input shape; returns the samples as float32 and the batch size. */
export async function normalizeInput(input: ModelInput, inputShape: readonly number[]): Promise<{ data: Float32Array; batch: number }> {
  const per = sizeOf(inputShape);
  const expected = `[N, ${inputShape.join(', ')}]`;
  let data: Float32Array;
  let shape: readonly number[] | undefined;
  if (input instanceof Float32Array) data = input;
  else if (input instanceof Uint8Array) data = Float32Array.from(input);
  else if (isImageInput(input) || (Array.isArray(input) && input.length > 0 && (input as unknown[]).every(isImageInput))) {
    return imagesToInput(input as ImageInput | readonly ImageInput[], inputShape);
  } else if (Array.isArray(input)) data = Float32Array.from(input as ArrayLike<number>);
  else if (typeof input === 'object' && input !== null && 'data' in input && typeof input.data === 'function') {
    shape = input.shape;
    data = Float32Array.from(await input.data());
  } else {
    throw new InvalidArgumentError(`predict: expected a Float32Array, a number array, a tensor of shape ${expected} or an image, got ${typeof input}`);
  }
  if (shape !== undefined) {
    // A tensor: its batch axis first, then one sample's shape (or the same number of elements, e.g. [N, 784] for [28, 28, 1]).
    if (shape.length < 1 || sizeOf(shape.slice(1)) !== per) throw new InvalidArgumentError(`predict: input has shape [${shape.join(', ')}], expected ${expected}`);
  }
  if (data.length === 0 || data.length % per !== 0) {
    throw new InvalidArgumentError(`predict: ${data.length} values are not a whole number of samples of shape [${inputShape.join(', ')}] (${per} values each; expected ${expected})`);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new InvalidArgumentError(`predict: input value ${i} is ${data[i]}; inputs must be finite numbers`);
  }
  return { data, batch: data.length / per };
}

export function disposedError(name: string): ModelError {
  return new ModelError('MODEL_DISPOSED', `model "${name}" was disposed: load it again with loadModel()`);
}
