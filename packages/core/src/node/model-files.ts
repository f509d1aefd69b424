/**
 * tfjs LayersModels on disk: model.json plus one weights.bin, the layout
 * stock `tf.loadLayersModel` reads (over http, or with tfjs-node's file://).
 * tfjs-node is optional, so Tamp brings its own file IO handler.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ModelError, errorMessage } from '../errors.js';
import { atomicWriteFile } from './files.js';
import { readUserFile } from './user-paths.js';

export const WEIGHTS_FILE = 'weights.bin';
export const GENERATED_BY = 'Tamp';

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/** Bytes a weight spec occupies in the weights file. */
export function weightSpecBytes(spec: tf.io.WeightsManifestEntry): number {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const stored = spec.quantization?.dtype ?? spec.dtype;
  const bytes = DTYPE_BYTES[stored];
  if (bytes === undefined) throw new ModelError('MODEL_INVALID', `weight "${spec.name}" has unsupported dtype ${stored}`);
  return size * bytes;
}

function concat(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  const buffers = Array.isArray(data) ? data : [data];
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), at);
    at += b.byteLength;
  }
  return out;
}

/** Build the model.json object for artifacts whose weights are stored in `weightsFile`. */
export function modelJsonFor(artifacts: tf.io.ModelArtifacts, weightsFile = WEIGHTS_FILE): tf.io.ModelJSON {
  return {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
    convertedBy: GENERATED_BY,
    weightsManifest: [{ paths: [weightsFile], weights: artifacts.weightSpecs ?? [] }],
    ...(artifacts.trainingConfig !== undefined ? { trainingConfig: artifacts.trainingConfig } : {}),
    ...(artifacts.userDefinedMetadata !== undefined ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
  };
}

/** Write a model folder atomically: weights first, model.json last, so a reader never sees model.json without its weights. */
export function writeModelArtifacts(dir: string, artifacts: tf.io.ModelArtifacts): { modelJson: string; weightBytes: number } {
  const weights = concat(artifacts.weightData);
  atomicWriteFile(join(dir, WEIGHTS_FILE), weights);
  const modelJson = join(dir, 'model.json');
  atomicWriteFile(modelJson, `${JSON.stringify(modelJsonFor(artifacts))}\n`);
  return { modelJson, weightBytes: weights.length };
}

/** A tfjs IOHandler that saves to a folder. */
export function fileSaveHandler(dir: string): tf.io.IOHandler {
  return tf.io.withSaveHandler(async (artifacts) => {
    const { weightBytes } = writeModelArtifacts(dir, artifacts);
    return {
      modelArtifactsInfo: {
        dateSaved: new Date(),
        modelTopologyType: 'JSON',
        modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
        weightSpecsBytes: JSON.stringify(artifacts.weightSpecs).length,
        weightDataBytes: weightBytes,
      },
    };
  });
}

/** What Tamp records about a model in model.json's userDefinedMetadata.tamp. */
export interface TampModelMetadata {
  readonly model?: string;
  readonly dataset?: string;
  readonly task?: 'classification' | 'detection';
  readonly classNames?: readonly string[];
}

export async function saveLayersModel(model: tfl.LayersModel, dir: string, metadata?: TampModelMetadata): Promise<string> {
  if (metadata !== undefined) model.setUserDefinedMetadata({ tamp: { ...metadata } });
  await model.save(fileSaveHandler(dir));
  return join(dir, 'model.json');
}

const TAMP_MAGIC = 'TAMPMODL';

/** A parser's message without the control bytes of a binary file (which would garble the terminal), at most 160 characters. */
function printable(text: string): string {
  const clean = text.replace(/[\p{Cc}\ufffd]/gu, '?');
  return clean.length > 160 ? `${clean.slice(0, 157)}...` : clean;
}

/** Read model.json and its weight files, checking that the weights match the manifest. */
export function readModelArtifacts(modelJsonPath: string): tf.io.ModelArtifacts {
  const file = resolve(modelJsonPath);
  if (!existsSync(file)) throw new ModelError('MODEL_NOT_FOUND', `${file}: no such model file`);
  const bytes = readUserFile(file, { expected: 'a tfjs model.json', notFound: 'MODEL_NOT_FOUND', inFolder: ['model.json'] });
  if (new TextDecoder('latin1').decode(bytes.subarray(0, TAMP_MAGIC.length)) === TAMP_MAGIC) {
    throw new ModelError(
      'MODEL_INVALID',
      `${file} is a .tamp file (already compressed), not a tfjs model.json: pass the model.json it came from (tamp train writes OUT/model/model.json); tamp eval and tamp infer run a .tamp as it is`,
    );
  }
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(bytes.toString('utf8')) as tf.io.ModelJSON;
  } catch (error) {
    throw new ModelError('MODEL_INVALID', `${file}: not valid JSON (${printable(errorMessage(error))}); expected a tfjs model.json`, { cause: error });
  }
  if (typeof json !== 'object' || json === null || typeof json.modelTopology !== 'object' || json.modelTopology === null) {
    throw new ModelError('MODEL_INVALID', `${file}: no modelTopology; is this a tfjs LayersModel model.json?`);
  }
  const manifest = json.weightsManifest ?? [];
  if (!Array.isArray(manifest)) throw new ModelError('MODEL_INVALID', `${file}: weightsManifest must be an array`);
  const dir = dirname(file);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const group of manifest) {
    if (!Array.isArray(group.paths) || !Array.isArray(group.weights)) throw new ModelError('MODEL_INVALID', `${file}: a weightsManifest group lacks paths or weights`);
    let expected = 0;
    for (const spec of group.weights) {
      if (typeof spec?.name !== 'string' || !Array.isArray(spec.shape)) throw new ModelError('MODEL_INVALID', `${file}: a weight spec lacks a name or shape`);
      expected += weightSpecBytes(spec);
      specs.push(spec);
    }
    let got = 0;
    for (const p of group.paths) {
      const weightsPath = normalize(join(dir, p));
      const rel = relative(dir, weightsPath);
      if (typeof p !== 'string' || isAbsolute(p) || rel.startsWith('..')) {
        throw new ModelError('MODEL_INVALID', `${file}: weights path "${String(p)}" leaves the model folder`);
      }
      if (!existsSync(weightsPath)) throw new ModelError('MODEL_NOT_FOUND', `${weightsPath}: weights file named by ${file} is missing`);
      const bytes = readUserFile(weightsPath, { expected: `the weights file named by ${file}`, notFound: 'MODEL_NOT_FOUND' });
      parts.push(bytes);
      got += bytes.length;
    }
    if (got !== expected) {
      throw new ModelError('MODEL_INVALID', `${file}: weight files hold ${got} bytes but the manifest describes ${expected}; the files are truncated or do not belong together`);
    }
  }
  const weightData = concat(parts.map((p) => p.buffer.slice(p.byteOffset, p.byteOffset + p.byteLength) as ArrayBuffer));
  return {
    modelTopology: json.modelTopology,
    ...(json.format !== undefined ? { format: json.format } : {}),
    ...(json.generatedBy !== undefined ? { generatedBy: json.generatedBy } : {}),
    ...(json.convertedBy !== undefined && json.convertedBy !== null ? { convertedBy: json.convertedBy } : {}),
    weightSpecs: specs,
    weightData: weightData.buffer as ArrayBuffer,
    ...(json.trainingConfig !== undefined ? { trainingConfig: json.trainingConfig } : {}),
    ...(json.userDefinedMetadata !== undefined ? { userDefinedMetadata: json.userDefinedMetadata } : {}),
  };
}

/** A tfjs IOHandler that loads from a model.json path. */
export function fileLoadHandler(modelJsonPath: string): tf.io.IOHandler {
  return { load: async () => readModelArtifacts(modelJsonPath) };
}

/** Load a LayersModel from disk with typed errors. */
export async function loadLayersModelFile(modelJsonPath: string): Promise<tfl.LayersModel> {
  const handler = fileLoadHandler(modelJsonPath);
  try {
    return await tfl.loadLayersModel(handler);
  } catch (error) {
    if (error instanceof ModelError) throw error;
    throw new ModelError('MODEL_INVALID', `${modelJsonPath}: tfjs could not build the model (${errorMessage(error)})`, { cause: error });
  }
}
