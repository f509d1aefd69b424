import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { type ImageClassificationSplit, gatherBatch } from '../data/dataset.js';
import { InvalidArgumentError } from '../errors.js';
import { batchInput, crossEntropy } from '../train/classifier.js';

/** Fraction of predictions equal to the labels, in [0, 1]. */
export function accuracy(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (predicted.length !== labels.length) throw new InvalidArgumentError(`accuracy: ${predicted.length} predictions for ${labels.length} labels; pass one prediction per label`);
  if (labels.length === 0) return 0;
  let right = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) right++;
  return right / labels.length;
}

/** Index of the largest value in each row of a [rows, cols] array. */
export function argmaxRows(values: ArrayLike<number>, cols: number): Int32Array {
  const rows = Math.floor(values.length / cols);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bestValue = -Infinity;
    for (let c = 0; c < cols; c++) {
      const v = values[r * cols + c] as number;
      if (v > bestValue) {
        bestValue = v;
        best = c;
      }
    }
    out[r] = best;
  }
  return out;
}

export interface ClassifierEvaluation {
  readonly accuracy: number;
  readonly loss: number;
  readonly count: number;
}

/** How an evaluation runs: `batchSize` samples at a time, awaiting `between()` after each batch but the last. */
export interface EvaluationOptions {
  readonly batchSize?: number;
  readonly limit?: number;
  /**
   * Awaited between batches: a server that evaluates on its own event loop
   * (the cluster's chief) passes a yield to it here, so the calls it serves
   * are answered between batches rather than after the whole split.
   */
  readonly between?: () => Promise<void>;
}

/** Accuracy and mean loss of a classifier on a split (the first `limit` samples). */
export async function evaluateClassifier(model: LayersModel, split: ImageClassificationSplit, options: EvaluationOptions = {}): Promise<ClassifierEvaluation> {
  const n = Math.min(split.size, options.limit ?? split.size);
  const batchSize = options.batchSize ?? 500;
  let right = 0;
  let lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const rows = Uint32Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
    const batch = gatherBatch(split, rows);
    const [probs, loss] = tf.tidy(() => {
      const p = model.predict(batchInput(model, batch.xs, batch.size)) as tf.Tensor;
      const numClasses = p.shape[1] as number;
      return [p, crossEntropy(p, tf.tensor1d(batch.labels, 'int32'), numClasses)] as const;
    });
    const values = await probs.data();
    const predicted = argmaxRows(values, probs.shape[1] as number);
    for (let i = 0; i < batch.size; i++) if (predicted[i] === batch.labels[i]) right++;
    lossSum += ((await loss.data())[0] as number) * batch.size;
    probs.dispose();
    loss.dispose();
    if (options.between !== undefined && start + batchSize < n) await options.between();
  }
  return { accuracy: n === 0 ? 0 : right / n, loss: n === 0 ? 0 : lossSum / n, count: n };
}
