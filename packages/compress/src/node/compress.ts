/**
 * `tamp compress`: a trained model.json to model.tamp, a stock-tfjs export
 * (uint8 affine) and a report.
 *
 * Techniques, in Deep Compression's order: pruning (--prune S, while
 * fine-tuning on the polynomial schedule; or --pattern 2:4), weight sharing
 * (--clusters N, k-means per layer, centroids fine-tuned), then storage: a
 * weight with zeros keeps only its non-zero elements, with Huffman-coded
 * gaps (and Huffman-coded cluster indices when shared) when that is smaller;
 * values are shared (clustered), int8 per channel (--int8) or float32.
 * Biases are int8 with one scale per tensor under --int8, float32 otherwise.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { type DataSplit, InvalidArgumentError, TAMP_VERSION, argmaxRows, batchInput, evaluateModel, gatherBatch, isDetectionSplit, optimizerSettings } from '@tamp/core';
import { atomicWriteFile, loadDataset, loadLayersModelFile, readModelArtifacts } from '@tamp/core/node';
import { type TampMeta, type TampModel, type TampTensor, type TensorEncoding, encodeTampModel, encodedBytes, tensorStats } from '../format/tamp-format.js';
import { channelErrors, outputChannels, quantizeInt8, quantizeInt8Tensor } from '../quantize.js';
import { artifactWeights, compactTopology, loadTampAsLayersModel } from '../tfjs-bridge.js';
import { type FoldWeight, foldBatchNorm } from '../fold-batchnorm.js';
import { type PrunePattern, type PruneScope, type SparsityPoint, pruneWhileFinetuning, scoreName, shareWeights } from './finetune.js';
import { accuracySparsitySvg } from './plot.js';
import { exportTfjsUint8 } from './tfjs-export.js';

/** What a .tamp file's META.producer records. */
export const PRODUCER = `Tamp ${TAMP_VERSION}`;

export interface CompressOptions {
  /** A trained model.json. */
  readonly model: string;
  readonly out: string;
  /** int8 per channel for weights that are neither shared nor stored as floats. */
  readonly int8: boolean;
  /** Fraction of kernel weights to remove (0.92 removes 92%). */
  readonly prune?: number;
  /** 2:4 structured pruning (half of the weights, two in every four). */
  readonly pattern?: PrunePattern;
  readonly scope?: PruneScope;
  /** Shared values per layer (k-means), at most 256. */
  readonly clusters?: number;
  /** Fine-tuning epochs while pruning (weight sharing fine-tunes for half as many). 0: no fine-tuning. */
  readonly finetuneEpochs?: number;
  /** Samples per fine-tuning epoch (default: the whole training split; a detection set's default epoch size). */
  readonly finetuneEpochSize?: number;
  readonly finetuneLearningRate?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  /** Dataset to measure accuracy on and fine-tune with (default: the one the model was trained on, from its metadata). */
  readonly dataset?: string;
  readonly log?: (message: string) => void;
}

export interface LayerRow {
  readonly name: string;
  readonly shape: readonly number[];
  readonly parameters: number;
  readonly encoding: string;
  /** Fraction of weights kept (non-zero). */
  readonly kept: number;
  /** Bits per weight of the tensor, everything included (bytes × 8 / parameters). */
  readonly bitsPerWeight: number;
  /** Sparse storage: bits per kept weight spent on its position. */
  readonly indexBits: number;
  /** Bits per stored weight spent on its value (float, int8 or Huffman-coded cluster index). */
  readonly valueBits: number;
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
  readonly task: 'classification' | 'detection' | undefined;
  /** Classifiers: test accuracy of the original and of the .tamp model. */
  readonly accuracyBefore?: number;
  readonly accuracyAfter?: number;
  /** Detectors: test mAP@0.5 of the original and of the .tamp model. */
  readonly mAPBefore?: number;
  readonly mAPAfter?: number;
  /** Fraction of all weights kept. */
  readonly kept: number;
  readonly seconds: number;
  /** Validation accuracy (mAP for detectors) against sparsity while pruning (also drawn in plot). */
  readonly sparsityCurve: readonly SparsityPoint[];
  readonly plot: string | undefined;
  readonly tfjs: {
    readonly modelJson: string;
    readonly weightBytes: number;
    readonly ratio: number;
    /** Test accuracy (mAP@0.5 for detectors) of the export. */
    readonly accuracy: number | undefined;
    /** Classifiers: fraction of test samples where the export's top-1 equals the .tamp model's. */
    readonly top1Agreement: number | undefined;
    /** Largest difference between the two models' outputs (softmax scores; raw grid values for detectors) over the test split. */
    readonly maxOutputDifference: number | undefined;
  };
  readonly layers: readonly LayerRow[];
}

/** Outputs of a model on a whole split. */
async function outputs(model: tfl.LayersModel, split: DataSplit): Promise<{ values: Float32Array; cols: number }> {
  const batch = gatherBatch(split, Uint32Array.from({ length: split.size }, (_, i) => i));
  const y = tf.tidy(() => model.predict(batchInput(model, batch.xs, batch.size)) as tf.Tensor);
  const values = (await y.data()) as Float32Array;
  const cols = y.size / (y.shape[0] as number);
  y.dispose();
  return { values, cols };
}

/** Artifacts of a model as it is now (after fine-tuning). */
async function currentArtifacts(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      captured = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return captured as tf.io.ModelArtifacts;
}

/** Artifacts with the folded topology and weights (float32, in one buffer). */
function foldedArtifacts(original: tf.io.ModelArtifacts, fold: { modelTopology: unknown; weights: readonly FoldWeight[] }): tf.io.ModelArtifacts {
  const total = fold.weights.reduce((n, w) => n + w.data.byteLength, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const w of fold.weights) {
    data.set(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength), at);
    at += w.data.byteLength;
  }
  return {
    ...original,
    modelTopology: fold.modelTopology as object,
    weightSpecs: fold.weights.map((w) => ({ name: w.name, shape: [...w.shape], dtype: 'float32' as const })),
    weightData: data.buffer,
  };
}

export async function compressModel(options: CompressOptions): Promise<CompressReport> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const original = readModelArtifacts(options.model);
  const stored = (original.userDefinedMetadata as { tamp?: Partial<TampMeta> } | undefined)?.tamp ?? {};
  const datasetName = options.dataset ?? stored.dataset;
  if (options.pattern === '2:4' && options.prune !== undefined) {
    throw new InvalidArgumentError('--pattern 2:4 prunes exactly half of the weights: leave out --prune (or use --prune S without the pattern)');
  }
  const prune = options.pattern === '2:4' ? 0.5 : (options.prune ?? 0);
  if (!(prune >= 0 && prune < 1)) throw new InvalidArgumentError(`--prune must be in [0, 1), got ${options.prune}`);
  if (options.clusters !== undefined && (!Number.isInteger(options.clusters) || options.clusters < 2 || options.clusters > 256)) {
    throw new InvalidArgumentError(`--clusters must be a whole number in [2, 256], got ${options.clusters}`);
  }
  const reshapes = prune > 0 || options.clusters !== undefined;
  if (!options.int8 && !reshapes) throw new InvalidArgumentError('nothing to do: choose --int8, --prune, --pattern 2:4 or --clusters');
  const epochs = options.finetuneEpochs ?? 0;
  if (options.finetuneEpochSize !== undefined && !(Number.isInteger(options.finetuneEpochSize) && options.finetuneEpochSize >= 1)) {
    throw new InvalidArgumentError(`--finetune-epoch-size must be a whole number of samples, at least 1, got ${options.finetuneEpochSize}`);
  }
  if (reshapes && epochs > 0 && datasetName === undefined) throw new InvalidArgumentError('fine-tuning needs --dataset (the model records none)');
  const meta: TampMeta = { ...stored, producer: PRODUCER, created: new Date().toISOString(), source: options.model };
  const techniques: string[] = [];

  // Batch norm is folded before sharing and int8, which then act on the weights the model really computes with.
  // Pruning with fine-tuning comes first, with batch norm still in place: a network that fine-tunes without its
  // batch norms (residual ones above all) recovers far less from pruning. Folding scales each output channel, so
  // pruned zeros stay zero; it would break shared values, so sharing comes after it.
  const fold = foldBatchNorm(original.modelTopology, artifactWeights(original));
  const pruneBeforeFold = fold.folded.length > 0 && prune > 0 && epochs > 0;
  const folding = (from: tf.io.ModelArtifacts, f: typeof fold, when: string): tf.io.ModelArtifacts => {
    techniques.push(`batch norm folded${when}`);
    log(`folded ${f.folded.length} batch norm layer(s) into the layers before them${when}: ${f.folded.join(', ')}`);
    return foldedArtifacts(from, f);
  };
  let artifacts = fold.folded.length === 0 || pruneBeforeFold ? original : folding(original, fold, '');
  let shared = new Map<string, { codebook: Float32Array; indices: Uint8Array }>();
  let curve: SparsityPoint[] = [];
  if (reshapes) {
    const dataset = datasetName !== undefined ? loadDataset(datasetName) : undefined;
    let model = await tfl.loadLayersModel({ load: async () => artifacts });
    const ft = {
      dataset: dataset as NonNullable<typeof dataset>,
      optimizer: optimizerSettings('adam', options.finetuneLearningRate ?? 2e-4),
      batchSize: options.batchSize ?? 64,
      seed: options.seed ?? 1,
      ...(options.finetuneEpochSize !== undefined ? { epochSize: options.finetuneEpochSize } : {}),
      log,
    };
    if (prune > 0) {
      log(`pruning ${options.pattern === '2:4' ? '2:4 (two of every four)' : `${(prune * 100).toFixed(1)}% (${options.scope ?? 'global'})`} over ${epochs} fine-tuning epoch(s)`);
      curve = (await pruneWhileFinetuning(model, { sparsity: prune, scope: options.scope ?? 'global', pattern: options.pattern ?? 'unstructured' }, epochs, ft)).curve;
      techniques.push(options.pattern === '2:4' ? 'prune 2:4' : `prune ${(prune * 100).toFixed(1)}%`);
    }
    if (pruneBeforeFold) {
      // The fine-tuned batch norms (their statistics recomputed under the pruned weights) fold now.
      const pruned = await currentArtifacts(model);
      model.dispose();
      artifacts = folding(pruned, foldBatchNorm(pruned.modelTopology, artifactWeights(pruned)), ' after pruning');
      model = await tfl.loadLayersModel({ load: async () => artifacts });
    }
    if (options.clusters !== undefined) {
      log(`sharing ${options.clusters} values per layer, ${Math.ceil(epochs / 2)} fine-tuning epoch(s)`);
      shared = await shareWeights(model, options.clusters, Math.ceil(epochs / 2), ft);
      techniques.push(`${options.clusters} shared values`);
    }
    artifacts = { ...(await currentArtifacts(model)), ...(original.userDefinedMetadata !== undefined ? { userDefinedMetadata: original.userDefinedMetadata } : {}) };
    model.dispose();
  }
  if (options.int8) techniques.push('int8');

  const weights = artifactWeights(artifacts);
  const tensors: TampTensor[] = weights.map((w) => {
    if (w.shape.length < 2) {
      // Biases: int8 with one scale per tensor under --int8 (per-channel scales would cost as much as the values).
      return { name: w.name, shape: w.shape, encoding: options.int8 ? { kind: 'int8-tensor', ...quantizeInt8Tensor(w.data) } : { kind: 'f32', data: w.data } };
    }
    const cluster = shared.get(w.name);
    const encoding: TensorEncoding =
      cluster !== undefined
        ? { kind: 'clustered', ...cluster }
        : options.int8
          ? { kind: 'int8', ...quantizeInt8(w.data, w.shape, outputChannels(w.name, w.shape)) }
          : { kind: 'f32', data: w.data };
    const dense: TampTensor = { name: w.name, shape: w.shape, encoding };
    // Sparse storage needs zeros (and, when shared, the zero in codebook[0]); keep whichever is smaller.
    const canSparse = w.data.some((v) => v === 0) && (encoding.kind !== 'clustered' || encoding.codebook[0] === 0);
    if (!canSparse) return dense;
    const sparse: TampTensor = { ...dense, storage: 'sparse' };
    return encodedBytes(sparse) < encodedBytes(dense) ? sparse : dense;
  });
  const tamp: TampModel = { meta, modelTopology: compactTopology(artifacts.modelTopology), weights: tensors };
  const bytes = encodeTampModel(tamp);
  const tampPath = join(options.out, 'model.tamp');
  atomicWriteFile(tampPath, bytes);
  const exported = exportTfjsUint8(artifacts, weights, join(options.out, 'tfjs'));
  const parameters = weights.reduce((n, w) => n + w.data.length, 0);
  const originalBytes = parameters * 4;
  const layers: LayerRow[] = tensors.map((t, i) => {
    const w = weights[i] as { data: Float32Array };
    const st = tensorStats(t);
    const kinds = { clustered: 'shared values', int8: 'int8 per channel', 'int8-tensor': 'int8 per tensor', f32: 'float32' } as const;
    const encoding = `${t.encoding.kind === 'clustered' ? `${t.encoding.codebook.length} ` : ''}${kinds[t.encoding.kind]}${t.storage === 'sparse' ? ', sparse + huffman' : ''}`;
    const row: LayerRow = {
      name: t.name,
      shape: t.shape,
      parameters: w.data.length,
      encoding,
      kept: st.nonZero / Math.max(1, st.elements),
      bitsPerWeight: (st.bytes * 8) / Math.max(1, w.data.length),
      indexBits: st.positionBits,
      valueBits: st.valueBits,
      bytes: st.bytes,
    };
    if (t.encoding.kind !== 'int8') return row;
    const errors = channelErrors(w.data, { shape: t.shape, values: t.encoding.values, scales: t.encoding.scales });
    return { ...row, maxError: Math.max(...errors), maxHalfStep: Math.max(...t.encoding.scales) / 2 };
  });
  if (tensors.some((t) => t.storage === 'sparse')) techniques.push('huffman');
  const kept = layers.reduce((n, l) => n + l.kept * l.parameters, 0) / parameters;
  log(`wrote ${tampPath} (${bytes.length} bytes, ${(originalBytes / bytes.length).toFixed(2)}x) and ${exported.modelJson}`);
  let plot: string | undefined;
  if (curve.length > 1) {
    plot = join(options.out, 'accuracy-vs-sparsity.svg');
    const metric = stored.task === 'detection' ? 'mAP@0.5' : 'accuracy';
    atomicWriteFile(plot, accuracySparsitySvg(curve, `${stored.model ?? 'model'}: validation ${metric} while pruning`, metric));
  }

  let before: number | undefined;
  let after: number | undefined;
  let tfjsScore: number | undefined;
  let top1Agreement: number | undefined;
  let maxOutputDifference: number | undefined;
  let task: CompressReport['task'];
  if (datasetName !== undefined) {
    const ds = loadDataset(datasetName);
    task = ds.kind;
    const test = ds.test;
    const original = await loadLayersModelFile(options.model);
    const compressed = await loadTampAsLayersModel(bytes, tampPath);
    const stock = await loadLayersModelFile(exported.modelJson);
    before = (await evaluateModel(original, test)).score;
    after = (await evaluateModel(compressed, test)).score;
    tfjsScore = (await evaluateModel(stock, test)).score;
    const a = await outputs(compressed, test);
    const b = await outputs(stock, test);
    if (!isDetectionSplit(test)) {
      const ta = argmaxRows(a.values, a.cols);
      const tb = argmaxRows(b.values, b.cols);
      top1Agreement = ta.reduce((n, v, i) => n + (v === tb[i] ? 1 : 0), 0) / ta.length;
    }
    maxOutputDifference = a.values.reduce((m, v, i) => Math.max(m, Math.abs(v - (b.values[i] as number))), 0);
    for (const m of [original, compressed, stock]) m.dispose();
    log(`${scoreName(ds)} on ${datasetName} test split: ${(before * 100).toFixed(2)}% before, ${(after * 100).toFixed(2)}% after (${techniques.join(', ')})`);
  } else {
    log('no --dataset and none recorded in the model: accuracy not measured');
  }
  const scores =
    task === 'detection'
      ? { ...(before !== undefined ? { mAPBefore: before } : {}), ...(after !== undefined ? { mAPAfter: after } : {}) }
      : { ...(before !== undefined ? { accuracyBefore: before } : {}), ...(after !== undefined ? { accuracyAfter: after } : {}) };
  const report: CompressReport = {
    model: options.model,
    out: options.out,
    tamp: tampPath,
    techniques,
    dataset: datasetName,
    parameters,
    originalBytes,
    compressedBytes: bytes.length,
    ratio: originalBytes / bytes.length,
    task,
    ...scores,
    kept,
    seconds: (performance.now() - started) / 1000,
    sparsityCurve: curve,
    plot,
    tfjs: {
      modelJson: exported.modelJson,
      weightBytes: exported.weightBytes,
      ratio: originalBytes / (exported.weightBytes + statSync(exported.modelJson).size),
      accuracy: tfjsScore,
      top1Agreement,
      maxOutputDifference,
    },
    layers,
  };
  atomicWriteFile(join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}
