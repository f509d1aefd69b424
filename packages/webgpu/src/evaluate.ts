/** Accuracy (classifiers) or mAP@0.5 (the detector) of an inference model on a split, on any device. */
import {
  BOX_CHANNELS,
  type DataSplit,
  type DecodeOptions,
  type Detection,
  type DetectionMetrics,
  type ImageClassificationSplit,
  type LabelledBox,
  argmaxRows,
  decodeGrid,
  InvalidArgumentError,
  gatherBatch,
  meanAveragePrecision,
} from '@tamp/core';
import type { InferenceModel, ModelInput } from './inference-model.js';

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

export interface DetectionEvaluation extends DetectionMetrics {
  readonly count: number;
  /** Detections of every evaluated scene. */
  readonly found: ReadonlyArray<readonly Detection[]>;
}

/** The grid of a detector's output shape [G, G, 5 + C]. */
export function gridOf(outputShape: readonly number[]): { grid: number; numClasses: number } {
  const [g, g2, channels] = outputShape;
  if (outputShape.length !== 3 || g === undefined || g !== g2 || channels === undefined || channels <= BOX_CHANNELS) {
    throw new InvalidArgumentError(`mAP needs a detector, whose output is [G, G, ${BOX_CHANNELS} + classes]; this model's is [${outputShape.join(', ')}]: evaluate a classifier on classification data (accuracy)`);
  }
  return { grid: g, numClasses: channels - BOX_CHANNELS };
}

/**
 * Run a detector and decode its grid after the GPU pass: the boxes of every
 * image of the batch (coordinates in [0, 1] of the image), above
 * `scoreThreshold` (default 0.05) and after NMS (IoU 0.45 by default).
 */
export async function detect(model: InferenceModel, input: ModelInput, options: DecodeOptions = {}): Promise<Detection[][]> {
  const shape = gridOf(model.info().outputShape);
  const y = await model.predict(input);
  return decodeGrid(y.data, y.shape[0] as number, shape, options);
}

/** mAP@0.5 (VOC) of a detector on the first `limit` scenes of a split. */
export async function evaluateDetection(
  model: InferenceModel,
  split: DataSplit,
  options: { limit?: number; batchSize?: number; decode?: DecodeOptions } = {},
): Promise<DetectionEvaluation> {
  const shape = gridOf(model.info().outputShape);
  const n = Math.min(split.size, options.limit ?? split.size);
  const batchSize = options.batchSize ?? 64;
  const detections: Detection[][] = [];
  const truth: LabelledBox[][] = [];
  for (let start = 0; start < n; start += batchSize) {
    const batch = gatherBatch(split, Uint32Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i));
    detections.push(...(await detect(model, batch.xs, options.decode)));
    truth.push(...(batch.objects ?? []).map((o) => [...o]));
  }
  return { ...meanAveragePrecision(detections, truth, shape.numClasses), count: n, found: detections };
}
