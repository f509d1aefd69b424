/**
 * .tamp models and tfjs LayersModels: build a .tamp from a model's
 * artifacts, and load a .tamp as a LayersModel (weights dequantized to
 * float32 at load, for the CPU and WASM backends; @tamp/webgpu keeps them
 * packed instead).
 */
import type * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ModelError, errorMessage } from '@tamp/core';
import { outputChannels, quantizeInt8, quantizeInt8Tensor } from './quantize.js';
import { type TampMeta, type TampModel, type TampTensor, decodeTampModel, tensorValues } from './format/tamp-format.js';

/** Float32 weights of artifacts, by spec (quantized tfjs weights are dequantized). */
export function artifactWeights(artifacts: tf.io.ModelArtifacts): Array<{ name: string; shape: number[]; data: Float32Array }> {
  const specs = artifacts.weightSpecs ?? [];
  const buffers = artifacts.weightData === undefined ? [] : Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData];
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    bytes.set(new Uint8Array(b), at);
    at += b.byteLength;
  }
  const out: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  let offset = 0;
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const q = spec.quantization;
    if (spec.dtype !== 'float32') throw new ModelError('MODEL_INVALID', `weight "${spec.name}" is ${spec.dtype}; only float32 weights can be compressed`);
    let data: Float32Array;
    if (q === undefined) {
      data = new Float32Array(size);
      new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + size * 4));
      offset += size * 4;
    } else if (q.dtype === 'uint8' && q.scale !== undefined && q.min !== undefined) {
      const scale = q.scale;
      const min = q.min;
      data = Float32Array.from(bytes.subarray(offset, offset + size), (v) => v * scale + min);
      offset += size;
    } else {
      throw new ModelError('MODEL_INVALID', `weight "${spec.name}" uses ${q.dtype} quantization; start from a float32 or uint8-affine model`);
    }
    out.push({ name: spec.name, shape: [...spec.shape], data });
  }
  if (offset !== total) throw new ModelError('MODEL_INVALID', `the weights hold ${total} bytes but their specs describe ${offset}`);
  return out;
}

export interface ToTampOptions {
  /** Quantize kernels (rank ≥ 2) to int8 per output channel. */
  readonly int8: boolean;
  /** Also quantize biases (rank < 2) to int8 with one scale per tensor, as `tamp compress --int8` does; float32 otherwise. */
  readonly int8Biases?: boolean;
  readonly meta: TampMeta;
}

export function artifactsToTamp(artifacts: tf.io.ModelArtifacts, options: ToTampOptions): TampModel {
  const weights: TampTensor[] = artifactWeights(artifacts).map((w): TampTensor => {
    if (w.shape.length >= 2 && options.int8) return { name: w.name, shape: w.shape, encoding: { kind: 'int8', ...quantizeInt8(w.data, w.shape, outputChannels(w.name, w.shape)) } };
    if (w.shape.length < 2 && options.int8Biases === true) return { name: w.name, shape: w.shape, encoding: { kind: 'int8-tensor', ...quantizeInt8Tensor(w.data) } };
    return { name: w.name, shape: w.shape, encoding: { kind: 'f32', data: w.data } };
  });
  return { meta: options.meta, modelTopology: compactTopology(artifacts.modelTopology), weights };
}

/**
 * The topology without what loading never uses: null settings and weight
 * initialisers (weights are loaded, never initialised). tfjs fills in its
 * defaults for missing keys.
 */
export function compactTopology(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(compactTopology);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === null || v === undefined || k.endsWith('_initializer')) continue;
    out[k] = compactTopology(v);
  }
  return out;
}

/** tfjs artifacts of a .tamp model, weights as float32. */
export function tampToArtifacts(model: TampModel): tf.io.ModelArtifacts {
  const values = model.weights.map(tensorValues);
  const total = values.reduce((n, v) => n + v.byteLength, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const v of values) {
    data.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
    at += v.byteLength;
  }
  return {
    modelTopology: model.modelTopology as object,
    format: 'layers-model',
    weightSpecs: model.weights.map((w) => ({ name: w.name, shape: [...w.shape], dtype: 'float32' })),
    weightData: data.buffer,
  };
}

/** Load .tamp bytes as a tfjs LayersModel (float32 weights). */
export async function loadTampAsLayersModel(bytes: Uint8Array, source = '.tamp file'): Promise<tfl.LayersModel> {
  const model = decodeTampModel(bytes, source);
  try {
    return await tfl.loadLayersModel({ load: async () => tampToArtifacts(model) });
  } catch (error) {
    throw new ModelError('MODEL_INVALID', `${source}: tfjs could not build the model from its topology (${errorMessage(error)})`, { cause: error });
  }
}
