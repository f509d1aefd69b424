/**
 * Mean average precision at IoU 0.5, as PASCAL VOC computes it (2010 and
 * later: the area under the precision-recall curve with precision made
 * monotone, every point counted). Browser-safe.
 *
 * Per class: detections of every image sorted by score; each is matched to
 * the ground-truth box of its class in its image that it overlaps most; a
 * match with IoU ≥ 0.5 to a box not matched before is a true positive,
 * anything else (a miss, or a duplicate of a matched box) a false positive.
 */
import { type Box, type Detection, compareDetections, iou } from '../detection/boxes.js';
import { InvalidArgumentError } from '../errors.js';

export interface LabelledBox extends Box {
  readonly label: number;
}

export interface DetectionMetrics {
  /** Mean of the per-class APs over classes with at least one ground-truth object (0 when there are none). */
  readonly mAP: number;
  /** AP per class; undefined for a class without ground truth. */
  readonly perClass: ReadonlyArray<number | undefined>;
  readonly images: number;
  readonly objects: number;
  readonly detections: number;
}

/** Average precision of one class from its detections' true-positive flags (in score order) and its object count. */
export function averagePrecision(truePositive: readonly boolean[], objects: number): number {
  if (objects === 0) return 0;
  const recall: number[] = [];
  const precision: number[] = [];
  let tp = 0;
  truePositive.forEach((hit, i) => {
    if (hit) tp++;
    recall.push(tp / objects);
    precision.push(tp / (i + 1));
  });
  // Precision envelope from the right, then the area under the step curve.
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i] as number, precision[i + 1] as number);
  let ap = 0;
  let previous = 0;
  for (let i = 0; i < recall.length; i++) {
    ap += ((recall[i] as number) - previous) * (precision[i] as number);
    previous = recall[i] as number;
  }
  return ap;
}

/** mAP@threshold (default 0.5) of detections against ground truth, image by image. */
export function meanAveragePrecision(
  detections: ReadonlyArray<readonly Detection[]>,
  groundTruth: ReadonlyArray<readonly LabelledBox[]>,
  numClasses: number,
  iouThreshold = 0.5,
): DetectionMetrics {
  if (detections.length !== groundTruth.length) throw new InvalidArgumentError(`mAP: ${detections.length} images of detections for ${groundTruth.length} of ground truth; pass one list of detections per image`);
  const perClass: Array<number | undefined> = [];
  for (let c = 0; c < numClasses; c++) {
    const objects = groundTruth.reduce((n, g) => n + g.filter((b) => b.label === c).length, 0);
    if (objects === 0) {
      perClass.push(undefined);
      continue;
    }
    const ranked = detections.flatMap((ds, image) => ds.filter((d) => d.label === c).map((d) => ({ d, image }))).sort((a, b) => compareDetections(a.d, b.d) || a.image - b.image);
    const matched = groundTruth.map((g) => new Array<boolean>(g.length).fill(false));
    const hits = ranked.map(({ d, image }) => {
      const truth = groundTruth[image] as readonly LabelledBox[];
      let best = -1;
      let bestIou = 0;
      truth.forEach((g, j) => {
        if (g.label !== c) return;
        const o = iou(d, g);
        if (o > bestIou) {
          bestIou = o;
          best = j;
        }
      });
      if (best < 0 || bestIou < iouThreshold) return false;
      const seen = matched[image] as boolean[];
      if (seen[best] === true) return false;
      seen[best] = true;
      return true;
    });
    perClass.push(averagePrecision(hits, objects));
  }
  const defined = perClass.filter((x): x is number => x !== undefined);
  return {
    mAP: defined.length === 0 ? 0 : defined.reduce((a, b) => a + b, 0) / defined.length,
    perClass,
    images: groundTruth.length,
    objects: groundTruth.reduce((n, g) => n + g.length, 0),
    detections: detections.reduce((n, d) => n + d.length, 0),
  };
}
