/**
 * What a model is made of, whatever file it came from: metadata, the Keras
 * topology and the weights in their stored encoding. `.tamp` files keep
 * their int8 and shared (clustered) encodings; tfjs model.json weights are
 * float32 (tfjs's uint8-affine weights are dequantized: their per-tensor
 * affine form is not what the int8 kernels compute with).
 */
import { ModelError, errorMessage } from '@tamp/core';
import { type TampMeta, type TampTensor, TAMP_MAGIC, artifactWeights, decodeTampModel } from '@tamp/compress';

export interface ModelParts {
  readonly format: 'tamp' | 'tfjs';
  readonly meta: Partial<TampMeta>;
  readonly modelTopology: unknown;
  readonly weights: readonly TampTensor[];
}

export function isTampBytes(bytes: Uint8Array): boolean {
  if (bytes.length < TAMP_MAGIC.length) return false;
  for (let i = 0; i < TAMP_MAGIC.length; i++) if (bytes[i] !== TAMP_MAGIC.charCodeAt(i)) return false;
  return true;
}

export function partsFromTamp(bytes: Uint8Array, source: string): ModelParts {
  const m = decodeTampModel(bytes, source);
  return { format: 'tamp', meta: m.meta, modelTopology: m.modelTopology, weights: m.weights };
}

interface ModelJson {
  modelTopology?: unknown;
  weightsManifest?: Array<{ paths: string[]; weights: Array<{ name: string; shape: number[]; dtype: string; quantization?: { dtype: string; scale?: number; min?: number } }> }>;
  userDefinedMetadata?: { tamp?: Partial<TampMeta> };
}

/** Parse a tfjs model.json; `readWeights` fetches a manifest path (relative to the model.json). */
export async function partsFromModelJson(text: string, source: string, readWeights: (path: string) => Promise<Uint8Array>): Promise<ModelParts> {
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (error) {
    throw new ModelError('MODEL_INVALID', `${source}: not valid JSON (${errorMessage(error)}): expected a tfjs model.json or a .tamp file`, { cause: error });
  }
  if (typeof json !== 'object' || json === null || json.modelTopology === undefined || !Array.isArray(json.weightsManifest)) {
    throw new ModelError('MODEL_INVALID', `${source}: not a tfjs LayersModel model.json (needs modelTopology and weightsManifest)`);
  }
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  const buffers: ArrayBuffer[] = [];
  for (const group of json.weightsManifest) {
    for (const path of group.paths) {
      let bytes: Uint8Array;
      try {
        bytes = await readWeights(path);
      } catch (error) {
        throw new ModelError('MODEL_NOT_FOUND', `${source}: its weight file "${path}" could not be read (${errorMessage(error)}): keep the weight files beside model.json`, { cause: error });
      }
      buffers.push(bytes.slice().buffer);
    }
  }
  const weights = artifactWeights({ modelTopology: json.modelTopology as object, weightSpecs: specs as never, weightData: buffers });
  return {
    format: 'tfjs',
    meta: json.userDefinedMetadata?.tamp ?? {},
    modelTopology: json.modelTopology,
    weights: weights.map((w) => ({ name: w.name, shape: w.shape, encoding: { kind: 'f32', data: w.data } })),
  };
}
