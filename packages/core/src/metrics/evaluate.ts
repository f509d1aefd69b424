/**
 * Evaluation of a tfjs model on a split, whatever its task (browser-safe):
 * accuracy for classifiers, mAP@0.5 for the detector; the loss for both.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { type DataSplit, gatherBatch, isDetectionSplit } from '../data/dataset.js';
import type { Detection } from '../detection/boxes.js';
import { type DecodeOptions, decodeGrid, encodeTargets } from '../detection/grid.js';
import { detectionLoss } from '../detection/loss.js';
import { batchInput, detectorGrid } from '../train/classifier.js';
import { type EvaluationOptions, evaluateClassifier } from './classification.js';
import { type DetectionMetrics, type LabelledBox, meanAveragePrecision } from './detection.js';

export interface Evaluation {
  readonly task: 'classification' | 'detection';
  /** Classifiers: top-1 accuracy. */
  readonly accuracy?: number;
  /** Detectors: mAP@0.5 (VOC), and AP per class. */
  readonly mAP?: number;
  readonly perClassAP?: ReadonlyArray<number | undefined>;
  readonly loss: number;
  readonly count: number;
  /** The task's headline number: accuracy or mAP. */
  readonly score: number;
}

/** mAP@0.5 and loss of a detector on a split (the first `limit` scenes). */
export async function evaluateDetector(
  model: LayersModel,
  split: DataSplit,
  options: EvaluationOptions & { decode?: DecodeOptions } = {},
): Promise<DetectionMetrics & { loss: number; count: number }> {
  const shape = detectorGrid(model);
  const n = Math.min(split.size, options.limit ?? split.size);
  const batchSize = options.batchSize ?? 50;
  const detections: Detection[][] = [];
  const truth: LabelledBox[][] = [];
  let lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const batch = gatherBatch(split, Uint32Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i));
    const objects = batch.objects ?? [];
    const targets = encodeTargets(objects, shape);
    const [out, loss] = tf.tidy(() => {
      const y = model.predict(batchInput(model, batch.xs, batch.size)) as tf.Tensor;
      return [y, detectionLoss(y, targets, shape.numClasses)] as const;
    });
    detections.push(...decodeGrid(await out.data(), batch.size, shape, options.decode));
    truth.push(...objects.map((o) => [...o]));
    lossSum += ((await loss.data())[0] as number) * batch.size;
    out.dispose();
    loss.dispose();
    if (options.between !== undefined && start + batchSize < n) await options.between();
  }
  return { ...meanAveragePrecision(detections, truth, shape.numClasses), loss: n === 0 ? 0 : lossSum / n, count: n };
}

/** Evaluate on a split by its task. */
export async function evaluateModel(model: LayersModel, split: DataSplit, options: EvaluationOptions = {}): Promise<Evaluation> {
  if (isDetectionSplit(split)) {
    const d = await evaluateDetector(model, split, options);
    return { task: 'detection', mAP: d.mAP, perClassAP: d.perClass, loss: d.loss, count: d.count, score: d.mAP };
  }
  const c = await evaluateClassifier(model, split, options);
  return { task: 'classification', accuracy: c.accuracy, loss: c.loss, count: c.count, score: c.accuracy };
}
