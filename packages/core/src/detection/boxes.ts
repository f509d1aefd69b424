/**
 * Boxes, IoU and non-maximum suppression (browser-safe). Boxes are in [0, 1]
 * image coordinates, x to the right and y down, (x1, y1) the top-left corner.
 */

export interface Box {
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
}

export interface Detection extends Box {
  /** Class index. */
  readonly label: number;
  /** Confidence in [0, 1]: objectness × class probability. */
  readonly score: number;
}

export function area(b: Box): number {
  return Math.max(0, b.x2 - b.x1) * Math.max(0, b.y2 - b.y1);
}

/** Intersection over union; 0 for boxes that do not overlap or have no area. */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const h = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = area(a) + area(b) - inter;
  return union <= 0 ? 0 : inter / union;
}

/** A total order on detections: score first, then position and class, so ties never depend on input order. */
export function compareDetections(a: Detection, b: Detection): number {
  return b.score - a.score || a.label - b.label || a.x1 - b.x1 || a.y1 - b.y1 || a.x2 - b.x2 || a.y2 - b.y2;
}

export interface NmsOptions {
  /** A detection is dropped when it overlaps a kept one of its class by more than this (default 0.45). */
  readonly iouThreshold?: number;
  /** Keep at most this many (default 100). */
  readonly maxDetections?: number;
  /** Suppress across classes too (default false: per class). */
  readonly classAgnostic?: boolean;
}

/**
 * Greedy non-maximum suppression, per class unless classAgnostic. The result
 * does not depend on the order of the input (compareDetections breaks ties).
 */
export function nonMaxSuppression(detections: readonly Detection[], options: NmsOptions = {}): Detection[] {
  const threshold = options.iouThreshold ?? 0.45;
  const max = options.maxDetections ?? 100;
  const sorted = [...detections].sort(compareDetections);
  const kept: Detection[] = [];
  for (const d of sorted) {
    if (kept.length >= max) break;
    if (kept.some((k) => (options.classAgnostic === true || k.label === d.label) && iou(k, d) > threshold)) continue;
    kept.push(d);
  }
  return kept;
}

/**
 * How two lists of detections differ (the same image on two devices, or a
 * device against a reference): undefined when they hold the same number of
 * boxes with the same labels, in order, and every coordinate and score within
 * `tolerance`; otherwise a sentence naming the first difference.
 */
export function detectionsDiffer(actual: readonly Detection[], expected: readonly Detection[], tolerance = 1e-3): string | undefined {
  if (actual.length !== expected.length) return `${actual.length} boxes, expected ${expected.length}`;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as Detection;
    const e = expected[i] as Detection;
    if (a.label !== e.label) return `box ${i} has label ${a.label}, expected ${e.label}`;
    for (const k of ['x1', 'y1', 'x2', 'y2', 'score'] as const) {
      if (!(Math.abs(a[k] - e[k]) <= tolerance)) return `box ${i} ${k} is ${a[k]}, expected ${e[k]} (more than ${tolerance} apart)`;
    }
  }
  return undefined;
}
