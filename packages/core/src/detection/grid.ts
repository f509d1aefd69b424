/**
 * The detector's output grid (browser-safe): a G × G grid of cells, each
 * predicting 5 + C numbers: an objectness logit, the box centre within the
 * cell (two logits, through a sigmoid), the box width and height as
 * fractions of the image (two logits, through a sigmoid), and C class
 * logits. A ground-truth object belongs to the cell holding its centre.
 */
import type { GroundTruth } from '../data/shapes.js';
import { InvalidArgumentError } from '../errors.js';
import { type Detection, type NmsOptions, nonMaxSuppression } from './boxes.js';

export const BOX_CHANNELS = 5;

export interface GridShape {
  readonly grid: number;
  readonly numClasses: number;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Targets for one batch: objectness [N·G·G], box [N·G·G·4] (cell offsets and sizes in [0, 1]), class [N·G·G] (-1: none). */
export interface GridTargets {
  readonly objectness: Float32Array;
  readonly boxes: Float32Array;
  readonly classes: Int32Array;
  /** Objects that lost their cell to a larger one with its centre in the same cell. */
  readonly collisions: number;
}

export function encodeTargets(objects: ReadonlyArray<readonly GroundTruth[]>, shape: GridShape): GridTargets {
  const { grid } = shape;
  const cells = objects.length * grid * grid;
  const objectness = new Float32Array(cells);
  const boxes = new Float32Array(cells * 4);
  const classes = new Int32Array(cells).fill(-1);
  const taken = new Float32Array(cells);
  let collisions = 0;
  objects.forEach((scene, n) => {
    for (const o of scene) {
      const cx = (o.x1 + o.x2) / 2;
      const cy = (o.y1 + o.y2) / 2;
      const gx = Math.min(grid - 1, Math.max(0, Math.floor(cx * grid)));
      const gy = Math.min(grid - 1, Math.max(0, Math.floor(cy * grid)));
      const cell = (n * grid + gy) * grid + gx;
      const size = (o.x2 - o.x1) * (o.y2 - o.y1);
      if ((taken[cell] as number) > 0) {
        collisions++;
        if ((taken[cell] as number) >= size) continue;
      }
      taken[cell] = size;
      objectness[cell] = 1;
      boxes.set([cx * grid - gx, cy * grid - gy, o.x2 - o.x1, o.y2 - o.y1], cell * 4);
      classes[cell] = o.label;
    }
  });
  return { objectness, boxes, classes, collisions };
}

export interface DecodeOptions extends NmsOptions {
  /** Keep detections scoring at least this (default 0.05, low enough for mAP). */
  readonly scoreThreshold?: number;
}

/** Detections of every image in a batch of raw outputs [N, G, G, 5 + C], after score threshold and NMS. */
export function decodeGrid(output: ArrayLike<number>, batch: number, shape: GridShape, options: DecodeOptions = {}): Detection[][] {
  const { grid, numClasses } = shape;
  const channels = BOX_CHANNELS + numClasses;
  if (output.length !== batch * grid * grid * channels) {
    throw new InvalidArgumentError(`decodeGrid: ${output.length} values are not ${batch} × ${grid} × ${grid} × ${channels}; pass the detector's whole output for the batch and its grid shape`);
  }
  const threshold = options.scoreThreshold ?? 0.05;
  const out: Detection[][] = [];
  for (let n = 0; n < batch; n++) {
    const found: Detection[] = [];
    for (let gy = 0; gy < grid; gy++) {
      for (let gx = 0; gx < grid; gx++) {
        const o = ((n * grid + gy) * grid + gx) * channels;
        const objectness = sigmoid(output[o] as number);
        if (objectness < threshold) continue;
        // Softmax over the class logits.
        let max = -Infinity;
        for (let c = 0; c < numClasses; c++) max = Math.max(max, output[o + BOX_CHANNELS + c] as number);
        let sum = 0;
        for (let c = 0; c < numClasses; c++) sum += Math.exp((output[o + BOX_CHANNELS + c] as number) - max);
        const cx = (gx + sigmoid(output[o + 1] as number)) / grid;
        const cy = (gy + sigmoid(output[o + 2] as number)) / grid;
        const w = sigmoid(output[o + 3] as number);
        const h = sigmoid(output[o + 4] as number);
        const box = { x1: Math.max(0, cx - w / 2), y1: Math.max(0, cy - h / 2), x2: Math.min(1, cx + w / 2), y2: Math.min(1, cy + h / 2) };
        for (let c = 0; c < numClasses; c++) {
          const score = objectness * (Math.exp((output[o + BOX_CHANNELS + c] as number) - max) / sum);
          if (score >= threshold) found.push({ ...box, label: c, score });
        }
      }
    }
    out.push(nonMaxSuppression(found, options));
  }
  return out;
}
