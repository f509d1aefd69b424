/**
 * `tamp compress`: a trained model.json to model.tamp (per-channel int8
 * kernels, float32 biases), a stock-tfjs export (uint8 affine), and a report
 * with per-layer sizes and errors and the accuracy before and after.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { type ImageClassificationSplit, InvalidArgumentError, argmaxRows, evaluateClassifier, gatherBatch, batchInput } from '@tamp/core';
import { atomicWriteFile, loadClassificationDataset, loadLayersModelFile, readModelArtifacts } from '@tamp/core/node';
import { type TampMeta, encodeTampModel, encodedBytes } from '../format/tamp-format.js';
import { channelErrors } from '../quantize.js';
import { artifactWeights, artifactsToTamp, loadTampAsLayersModel } from '../tfjs-bridge.js';
import { exportTfjsUint8 } from './tfjs-export.js';

export const PRODUCER = 'Tamp 0.1.0';

export interface CompressOptions {
  /** A trained model.json. */
  readonly model: string;
  readonly out: string;
  readonly int8: boolean;
  /** Dataset to measure accuracy on (default: the one the model was trained on, from its metadata). */
  readonly dataset?: string;
  readonly log?: (message: string) => void;
}

export interface LayerRow {
  readonly name: string;
  readonly shape: readonly number[];
  readonly parameters: number;
  readonly encoding: string;
  readonly bitsPerWeight: number;
  readonly bytes: number;
  /** int8: the largest |w − dequantized w| over all channels, and the largest half step (scale/2) it must stay within. */
  readonly maxError?: number;
  readonly maxHalfStep?: number;
}

export interface CompressReport {
  readonly model: string;
  readonly out: string;
  readonly tamp: string;
  readonly techniques: readonly string[];
  readonly dataset: string | undefined;
  readonly parameters: number;
  /** fp32 bytes of all weights. */
  readonly originalBytes: number;
  /** Size of the whole .tamp file. */
  readonly compressedBytes: number;
  readonly ratio: number;
  readonly accuracyBefore: number | undefined;
  readonly accuracyAfter: number | undefined;
  readonly tfjs: {
    readonly modelJson: string;
    readonly weightBytes: number;
    readonly ratio: number;
    readonly accuracy: number | undefined;
    /** Fraction of test samples where the export's top-1 equals the .tamp model's. */
    readonly top1Agreement: number | undefined;
    /** Largest difference between the two models' outputs (softmax scores) over the test split. */
    readonly maxOutputDifference: number | undefined;
  };
  readonly layers: readonly LayerRow[];
}

/** Outputs of a model on the first n samples of a split. */
async function outputs(model: tfl.LayersModel, split: ImageClassificationSplit): Promise<{ values: Float32Array; cols: number }> {
  const rows = Uint32Array.from({ length: split.size }, (_, i) => i);
  const batch = gatherBatch(split, rows);
  const y = tf.tidy(() => model.predict(batchInput(model, batch.xs, batch.size)) as tf.Tensor);
  const values = (await y.data()) as Float32Array;
  const cols = y.shape[1] as number;
  y.dispose();
  return { values, cols };
}

export async function compressModel(options: CompressOptions): Promise<CompressReport> {
  const log = options.log ?? (() => {});
  const artifacts = readModelArtifacts(options.model);
  const stored = (artifacts.userDefinedMetadata as { tamp?: Partial<TampMeta> } | undefined)?.tamp ?? {};
  const datasetName = options.dataset ?? stored.dataset;
  const meta: TampMeta = { ...stored, producer: PRODUCER, created: new Date().toISOString(), source: options.model };
  if (!options.int8) throw new InvalidArgumentError('nothing to do: choose --int8 (or the techniques of compression part 2)');
  const weights = artifactWeights(artifacts);
  const tamp = artifactsToTamp(artifacts, { int8: options.int8, meta });
  const bytes = encodeTampModel(tamp);
  const tampPath = join(options.out, 'model.tamp');
  atomicWriteFile(tampPath, bytes);
  const exported = exportTfjsUint8(artifacts, weights, join(options.out, 'tfjs'));
  const parameters = weights.reduce((n, w) => n + w.data.length, 0);
  const originalBytes = parameters * 4;
  const layers: LayerRow[] = tamp.weights.map((t, i) => {
    const w = weights[i] as { data: Float32Array };
    const encoded = encodedBytes(t);
    const row: LayerRow = {
      name: t.name,
      shape: t.shape,
      parameters: w.data.length,
      encoding: t.encoding.kind === 'int8' ? 'int8 per channel' : 'float32',
      bitsPerWeight: (encoded * 8) / Math.max(1, w.data.length),
      bytes: encoded,
    };
    if (t.encoding.kind !== 'int8') return row;
    const errors = channelErrors(w.data, { shape: t.shape, values: t.encoding.values, scales: t.encoding.scales });
    return { ...row, maxError: Math.max(...errors), maxHalfStep: Math.max(...t.encoding.scales) / 2 };
  });
  log(`wrote ${tampPath} (${bytes.length} bytes, ${(originalBytes / bytes.length).toFixed(2)}x) and ${exported.modelJson}`);

  let accuracyBefore: number | undefined;
  let accuracyAfter: number | undefined;
  let tfjsAccuracy: number | undefined;
  let top1Agreement: number | undefined;
  let maxOutputDifference: number | undefined;
  if (datasetName !== undefined) {
    const test = loadClassificationDataset(datasetName).test;
    const original = await loadLayersModelFile(options.model);
    const compressed = await loadTampAsLayersModel(bytes, tampPath);
    const stock = await loadLayersModelFile(exported.modelJson);
    accuracyBefore = (await evaluateClassifier(original, test)).accuracy;
    accuracyAfter = (await evaluateClassifier(compressed, test)).accuracy;
    tfjsAccuracy = (await evaluateClassifier(stock, test)).accuracy;
    const a = await outputs(compressed, test);
    const b = await outputs(stock, test);
    const ta = argmaxRows(a.values, a.cols);
    const tb = argmaxRows(b.values, b.cols);
    top1Agreement = ta.reduce((n, v, i) => n + (v === tb[i] ? 1 : 0), 0) / ta.length;
    maxOutputDifference = a.values.reduce((m, v, i) => Math.max(m, Math.abs(v - (b.values[i] as number))), 0);
    for (const m of [original, compressed, stock]) m.dispose();
    log(`accuracy on ${datasetName} test split: ${(accuracyBefore * 100).toFixed(2)}% before, ${(accuracyAfter * 100).toFixed(2)}% after int8`);
  } else {
    log('no --dataset and none recorded in the model: accuracy not measured');
  }
  const report: CompressReport = {
    model: options.model,
    out: options.out,
    tamp: tampPath,
    techniques: ['int8'],
    dataset: datasetName,
    parameters,
    originalBytes,
    compressedBytes: bytes.length,
    ratio: originalBytes / bytes.length,
    accuracyBefore,
    accuracyAfter,
    tfjs: {
      modelJson: exported.modelJson,
      weightBytes: exported.weightBytes,
      ratio: originalBytes / (exported.weightBytes + statSync(exported.modelJson).size),
      accuracy: tfjsAccuracy,
      top1Agreement,
      maxOutputDifference,
    },
    layers,
  };
  atomicWriteFile(join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}
