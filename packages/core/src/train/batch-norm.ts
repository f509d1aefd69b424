/**
 * Batch-norm statistics recomputed from training batches ("precise BN",
 * Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", section 3.1).
 *
 * Parameter servers hold trainable variables only, so a cluster's model
 * arrives at the chief with the moving means and variances it was created
 * with. Rather than averaging each worker's exponential moving averages over
 * the wire (statistics of other weights, mixed in by a momentum), the chief
 * runs K training batches through the current weights in training mode
 * (each batch norm normalises with its batch's statistics, as in training;
 * no gradients, no weight change) and sets every batch norm's moving
 * statistics to the population statistics of those batches:
 *   mean = E[μ_B],  variance = E[σ²_B + μ_B²] − E[μ_B]²
 * (batch-size weighted; σ²_B the biased batch variance tfjs-layers uses),
 * which are exactly the mean and variance over all K batches' samples.
 * Workers need no change. See ARCHITECTURE.md (train/).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import * as tfl from '@tensorflow/tfjs-layers';
import { type Batch, type DataSplit, iterateBatches } from '../data/dataset.js';
import { batchInput } from './classifier.js';

/** Samples the chief recalibrates on by default (a fixed, seeded set of training samples). */
export const PRECISE_BN_SAMPLES = 1024;

interface BatchNormLayer {
  readonly layer: tfl.layers.Layer;
  readonly axis: number;
}

/** The model's BatchNormalization layers, in topological order. */
export function batchNormLayers(model: LayersModel): tfl.layers.Layer[] {
  return model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
}

export interface Recalibration {
  /** Batch-norm layers whose statistics were set. */
  readonly layers: number;
  readonly batches: number;
  readonly samples: number;
}

/**
 * Set every batch norm's moving mean and variance to the statistics of its
 * input over `batches` (training mode, current weights). A model without
 * batch norm is left alone at no cost. Resolves once the weights are set.
 */
export async function recalibrateBatchNorm(model: LayersModel, batches: Iterable<Batch>): Promise<Recalibration> {
  const bn: BatchNormLayer[] = batchNormLayers(model).map((layer) => ({ layer, axis: (layer.getConfig().axis as number | undefined) ?? -1 }));
  if (bn.length === 0) return { layers: 0, batches: 0, samples: 0 };
  // A model over the same layers whose outputs are each batch norm's input.
  const probe = tfl.model({ inputs: model.inputs, outputs: bn.map((b) => b.layer.input as SymbolicTensor) });
  const sums = bn.map(() => ({ mean: new Float64Array(0), square: new Float64Array(0) }));
  let samples = 0;
  let count = 0;
  for (const batch of batches) {
    if (batch.size === 0) continue;
    const moments = tf.tidy(() => {
      const outs = probe.apply(batchInput(model, batch.xs, batch.size), { training: true }) as tf.Tensor | tf.Tensor[];
      return (Array.isArray(outs) ? outs : [outs]).map((t, i) => {
        const rank = t.rank;
        const axis = ((bn[i] as BatchNormLayer).axis + rank) % rank;
        const axes = Array.from({ length: rank }, (_, d) => d).filter((d) => d !== axis);
        const { mean, variance } = tf.moments(t, axes);
        return [mean, variance] as const;
      });
    });
    for (const [i, [mean, variance]] of moments.entries()) {
      const m = (await mean.data()) as Float32Array;
      const v = (await variance.data()) as Float32Array;
      const s = sums[i] as { mean: Float64Array; square: Float64Array };
      if (s.mean.length === 0) {
        s.mean = new Float64Array(m.length);
        s.square = new Float64Array(m.length);
      }
      for (let c = 0; c < m.length; c++) {
        const mc = m[c] as number;
        s.mean[c] = (s.mean[c] as number) + batch.size * mc;
        s.square[c] = (s.square[c] as number) + batch.size * ((v[c] as number) + mc * mc);
      }
      tf.dispose([mean, variance]);
    }
    samples += batch.size;
    count++;
  }
  if (samples === 0) return { layers: 0, batches: 0, samples: 0 };
  for (const [i, { layer }] of bn.entries()) {
    const s = sums[i] as { mean: Float64Array; square: Float64Array };
    const mean = Float32Array.from(s.mean, (v) => v / samples);
    const variance = Float32Array.from(s.square, (v, c) => Math.max(0, v / samples - (mean[c] as number) ** 2));
    for (const w of layer.weights) {
      const stat = w.originalName.endsWith('/moving_mean') ? mean : w.originalName.endsWith('/moving_variance') ? variance : undefined;
      if (stat === undefined) continue;
      const t = tf.tensor(stat, w.shape as number[]);
      w.write(t);
      t.dispose();
    }
  }
  return { layers: bn.length, batches: count, samples };
}

/**
 * The batches the chief recalibrates on: the first `samples` training
 * samples of a fixed seeded order (the same every time, so evaluations
 * differ only by the weights).
 */
export function recalibrationBatches(split: DataSplit, options: { batchSize: number; seed: number; samples?: number }): Iterable<Batch> {
  return iterateBatches(split, { batchSize: options.batchSize, seed: options.seed, epoch: 0, limit: Math.min(split.size, options.samples ?? PRECISE_BN_SAMPLES) });
}
