/**
 * Pruning and weight sharing while fine-tuning (tfjs, on whatever backend is
 * current; Tamp's WASM path here).
 *
 * Pruning follows the polynomial schedule over the first 60% of the steps,
 * updating masks a few times per epoch, then holds the final masks; after
 * every optimizer step the masked weights are set back to zero, so masks
 * survive fine-tuning. Weight sharing then clusters each kernel's non-zero
 * weights (k-means, linear initialisation) and keeps fine-tuning the shared
 * values: after every step each cluster's weights are replaced by their
 * mean, which moves the centroid by the cluster's summed gradient as Deep
 * Compression does, and pruned weights stay zero.
 *
 * Batch norm: `tamp compress` prunes with batch norm in place and folds it
 * afterwards, before sharing (compress.ts), so pruning's fine-tuning trains
 * the batch norms too and sharing's sees none. Fine-tuning steps move the
 * moving statistics only by an
 * exponential average (momentum 0.99), which after a few dozen steps still
 * describes the weights before pruning. So every evaluation, and the model
 * handed back, first has them recomputed from training batches under the
 * current weights (precise BN, train/batch-norm.ts in @tamp/core).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { type Dataset, type OptimizerSettings, BatchSource, createTfOptimizer, evaluateModel, recalibrateBatchNorm, recalibrationBatches, trainStep } from '@tamp/core';
import { kmeans1d } from '../cluster.js';
import { type Mask, applyMask, globalMagnitudeMasks, magnitudeMask, polynomialSparsity, structured24Mask } from '../prune.js';

/** Batch norm's moving statistics recomputed under the current weights (nothing without batch norm or a dataset). */
async function settleBatchNorm(model: tfl.LayersModel, options: FinetuneOptions): Promise<void> {
  if ((options.dataset as Dataset | undefined) === undefined) return;
  await recalibrateBatchNorm(model, recalibrationBatches(options.dataset.train, { batchSize: options.batchSize, seed: options.seed }));
}

export type PrunePattern = 'unstructured' | '2:4';
export type PruneScope = 'global' | 'layer';

export interface FinetuneOptions {
  readonly dataset: Dataset;
  readonly optimizer: OptimizerSettings;
  readonly batchSize: number;
  readonly seed: number;
  /** Samples per fine-tuning epoch: a subset of the training split, so that a slow model can be fine-tuned in bounded time. */
  readonly epochSize?: number;
  readonly log: (message: string) => void;
}

/** A point of the accuracy-against-sparsity curve. */
export interface SparsityPoint {
  readonly sparsity: number;
  /** Validation accuracy (classifiers) or mAP@0.5 (detectors). */
  readonly validationScore: number;
  readonly step: number;
}

export function scoreName(dataset: Dataset): string {
  return dataset.kind === 'detection' ? 'mAP@0.5' : 'accuracy';
}

/** Fine-tuning batches: `epochSize` when given; a detection dataset's epochs are otherwise its default epoch size, not its unlimited split. */
function finetuneSource(options: FinetuneOptions, seed: number): BatchSource {
  const limit = options.epochSize !== undefined ? { limit: options.epochSize } : options.dataset.kind === 'detection' ? { limit: options.dataset.defaultEpochSize } : {};
  return new BatchSource(options.dataset.train, { batchSize: options.batchSize, seed, ...limit });
}

interface Kernel {
  readonly variable: tfl.LayerVariable;
  readonly name: string;
  readonly shape: number[];
}

/**
 * The weights pruning and sharing act on: every kernel but depthwise ones.
 * A depthwise 3x3 kernel has nine weights per channel, where pruning costs
 * accuracy fastest and saves least (MobileNets keep most of their weights in
 * the pointwise and dense layers).
 */
export function kernelsOf(model: tfl.LayersModel): Kernel[] {
  return model.trainableWeights
    .filter((w) => w.shape.length >= 2 && !/(^|\/)depthwise_kernel(_\d+)?$/.test(w.originalName))
    .map((w) => ({ variable: w, name: w.originalName, shape: [...w.shape] as number[] }));
}

function read(k: Kernel): Float32Array {
  return k.variable.read().dataSync() as Float32Array;
}

function write(k: Kernel, values: Float32Array): void {
  const t = tf.tensor(values, k.shape, 'float32');
  k.variable.write(t);
  t.dispose();
}

function masksFor(kernels: readonly Kernel[], sparsity: number, scope: PruneScope, pattern: PrunePattern): Mask[] {
  const values = kernels.map(read);
  if (pattern === '2:4') return kernels.map((k, i) => structured24Mask(values[i] as Float32Array, k.shape));
  if (scope === 'global') return globalMagnitudeMasks(values, sparsity);
  return values.map((v) => magnitudeMask(v, sparsity));
}

function applyMasks(kernels: readonly Kernel[], masks: readonly Mask[]): void {
  kernels.forEach((k, i) => {
    const v = Float32Array.from(read(k));
    applyMask(v, masks[i] as Mask);
    write(k, v);
  });
}

/** Prune to `sparsity` (2:4: exactly half) while fine-tuning for `epochs` (0: at once, no fine-tuning). */
export async function pruneWhileFinetuning(
  model: tfl.LayersModel,
  target: { sparsity: number; scope: PruneScope; pattern: PrunePattern },
  epochs: number,
  options: FinetuneOptions,
): Promise<{ masks: Mask[]; curve: SparsityPoint[] }> {
  const kernels = kernelsOf(model);
  const final = target.pattern === '2:4' ? 0.5 : target.sparsity;
  const curve: SparsityPoint[] = [];
  const validate = async (sparsity: number, step: number) => {
    // `tamp compress --prune` without a dataset (no fine-tuning): no curve to draw.
    if ((options.dataset as Dataset | undefined) === undefined) return;
    await settleBatchNorm(model, options);
    const { score } = await evaluateModel(model, options.dataset.validation);
    curve.push({ sparsity, validationScore: score, step });
    options.log(`  sparsity ${(sparsity * 100).toFixed(1)}%: validation ${scoreName(options.dataset)} ${(score * 100).toFixed(2)}%`);
  };
  await validate(0, 0);
  if (epochs === 0) {
    const masks = masksFor(kernels, final, target.scope, target.pattern);
    applyMasks(kernels, masks);
    await validate(final, 0);
    return { masks, curve };
  }
  const source = finetuneSource(options, options.seed);
  const total = epochs * source.stepsPerEpoch;
  const schedule = { initialSparsity: 0, finalSparsity: final, beginStep: 0, endStep: Math.max(1, Math.round(0.6 * total)) };
  // Masks change about eight times over the schedule, and the curve is sampled then.
  const every = Math.max(1, Math.round(schedule.endStep / 8));
  const optimizer = createTfOptimizer(options.optimizer);
  let masks: Mask[] = kernels.map((k) => new Uint8Array(k.shape.reduce((a, b) => a * b, 1)).fill(1));
  for (let step = 0; step < total; step++) {
    if (step % every === 0 && step <= schedule.endStep) {
      const s = target.pattern === '2:4' ? final : polynomialSparsity(step, schedule);
      masks = masksFor(kernels, s, target.scope, target.pattern);
      applyMasks(kernels, masks);
      if (step > 0) await validate(s, step);
    }
    await trainStep(model, optimizer, source.batch(step));
    applyMasks(kernels, masks);
  }
  // The schedule's last update may fall short of the end: settle on the exact target.
  masks = masksFor(kernels, final, target.scope, target.pattern);
  applyMasks(kernels, masks);
  optimizer.dispose();
  await validate(final, total);
  return { masks, curve };
}

/** Cluster each kernel's non-zero weights into `clusters` shared values (plus 0 for pruned weights) and fine-tune them. */
export async function shareWeights(
  model: tfl.LayersModel,
  clusters: number,
  epochs: number,
  options: FinetuneOptions,
): Promise<Map<string, { codebook: Float32Array; indices: Uint8Array }>> {
  const kernels = kernelsOf(model);
  const plan = kernels.map((k) => {
    const values = read(k);
    const nonZero = Uint32Array.from(values.keys()).filter((i) => values[i] !== 0);
    const sparse = nonZero.length < values.length;
    // Pruned kernels reserve index 0 for the zeros: their non-zero weights share clusters − 1 values.
    const k8 = Math.max(1, sparse ? clusters - 1 : clusters);
    const c = kmeans1d(Float32Array.from(nonZero, (i) => values[i] as number), k8, { seed: options.seed });
    const offset = sparse ? 1 : 0;
    const indices = new Uint8Array(values.length);
    nonZero.forEach((p, j) => (indices[p] = (c.assignments[j] as number) + offset));
    const codebook = sparse ? Float32Array.from([0, ...c.centroids]) : c.centroids;
    return { kernel: k, codebook, indices, sparse };
  });
  const project = () => {
    for (const p of plan) {
      const current = read(p.kernel);
      const sums = new Float64Array(p.codebook.length);
      const counts = new Uint32Array(p.codebook.length);
      p.indices.forEach((j, i) => {
        sums[j] = (sums[j] as number) + (current[i] as number);
        counts[j] = (counts[j] as number) + 1;
      });
      for (let j = p.sparse ? 1 : 0; j < p.codebook.length; j++) if ((counts[j] as number) > 0) p.codebook[j] = (sums[j] as number) / (counts[j] as number);
      write(p.kernel, Float32Array.from(p.indices, (j) => p.codebook[j] as number));
    }
  };
  project();
  if (epochs > 0) {
    const source = finetuneSource(options, options.seed + 1);
    const optimizer = createTfOptimizer(options.optimizer);
    for (let step = 0; step < epochs * source.stepsPerEpoch; step++) {
      await trainStep(model, optimizer, source.batch(step));
      project();
    }
    optimizer.dispose();
  }
  if ((options.dataset as Dataset | undefined) === undefined) return new Map(plan.map((p) => [p.kernel.name, { codebook: p.codebook, indices: p.indices }]));
  await settleBatchNorm(model, options);
  const { score } = await evaluateModel(model, options.dataset.validation);
  options.log(`  ${clusters} shared values per layer: validation ${scoreName(options.dataset)} ${(score * 100).toFixed(2)}%`);
  return new Map(plan.map((p) => [p.kernel.name, { codebook: p.codebook, indices: p.indices }]));
}
