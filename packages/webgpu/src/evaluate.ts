/** Accuracy and cross-entropy of an inference model on a classification split (any device). */
import { type ImageClassificationSplit, argmaxRows, gatherBatch } from '@tamp/core';
import type { InferenceModel } from './inference-model.js';

export interface InferenceEvaluation {
  readonly accuracy: number;
  /** Mean cross-entropy, probabilities clipped to [1e-7, 1 − 1e-7] as in training. */
  readonly loss: number;
  readonly count: number;
  /** Top-1 class of every evaluated sample. */
  readonly predictions: Int32Array;
}

const EPSILON = 1e-7;

export async function evaluateClassification(
  model: InferenceModel,
  split: ImageClassificationSplit,
  options: { limit?: number; batchSize?: number } = {},
): Promise<InferenceEvaluation> {
  const n = Math.min(split.size, options.limit ?? split.size);
  const batchSize = options.batchSize ?? 256;
  const predictions = new Int32Array(n);
  let right = 0;
  let lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const rows = Uint32Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
    const batch = gatherBatch(split, rows);
    const y = await model.predict(batch.xs);
    const classes = y.shape[1] as number;
    const top = argmaxRows(y.data, classes);
    for (let i = 0; i < batch.size; i++) {
      predictions[start + i] = top[i] as number;
      if (top[i] === batch.labels[i]) right++;
      const p = y.data[i * classes + (batch.labels[i] as number)] as number;
      lossSum -= Math.log(Math.min(1 - EPSILON, Math.max(EPSILON, p)));
    }
  }
  return { accuracy: n === 0 ? 0 : right / n, loss: n === 0 ? 0 : lossSum / n, count: n, predictions };
}
