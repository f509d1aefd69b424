/**
 * The `shapes` scenes: procedurally drawn RGB images of circles, squares and
 * triangles on noisy, textured backgrounds, with their ground-truth boxes.
 * Scene i of a split is a pure function of (seed, split, i), so training
 * scenes are unlimited and never stored, and validation and test scenes are
 * the same on every machine. Browser-safe: the demo draws scenes with it.
 */
import { InvalidArgumentError } from '../errors.js';
import { Random, deriveSeed } from '../random.js';
import type { DetectionDataset, DetectionSplit, SplitName } from './dataset.js';

export const SHAPE_CLASSES = Object.freeze(['circle', 'square', 'triangle'] as const);
export type ShapeClass = (typeof SHAPE_CLASSES)[number];

/** An object's box in [0, 1] image coordinates (x to the right, y down) and its class index. */
export interface GroundTruth {
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
  readonly label: number;
}

export interface Scene {
  /** size × size × 3 bytes, row-major, RGB. */
  readonly pixels: Uint8Array;
  readonly objects: readonly GroundTruth[];
}

export interface SceneOptions {
  /** Side of the square image in pixels (default 96). */
  readonly size?: number;
  /** Objects per scene, inclusive (default 1 to 4). */
  readonly minObjects?: number;
  readonly maxObjects?: number;
  /** Object side in pixels, inclusive range (default 12 to 40 at size 96, scaled with size). */
  readonly minSide?: number;
  readonly maxSide?: number;
}

export const SHAPES_SCENE_SIZE = 96;

type Rgb = [number, number, number];

function colour(r: Random): Rgb {
  return [r.int(256), r.int(256), r.int(256)];
}

function distance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

function iou(a: GroundTruth, b: GroundTruth): number {
  const w = Math.max(0, Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1));
  const h = Math.max(0, Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1));
  const inter = w * h;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
}

/** Signed area test for a point against the triangle's edges. */
function inTriangle(px: number, py: number, v: ReadonlyArray<readonly [number, number]>): boolean {
  const [a, b, c] = v as [[number, number], [number, number], [number, number]];
  const s1 = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0]);
  const s2 = (c[0] - b[0]) * (py - b[1]) - (c[1] - b[1]) * (px - b[0]);
  const s3 = (a[0] - c[0]) * (py - c[1]) - (a[1] - c[1]) * (px - c[0]);
  return (s1 >= 0 && s2 >= 0 && s3 >= 0) || (s1 <= 0 && s2 <= 0 && s3 <= 0);
}

/** Render one scene from a seed. */
export function renderScene(seed: number, options: SceneOptions = {}): Scene {
  const size = options.size ?? SHAPES_SCENE_SIZE;
  const scale = size / SHAPES_SCENE_SIZE;
  const minSide = options.minSide ?? Math.round(12 * scale);
  const maxSide = options.maxSide ?? Math.round(40 * scale);
  const minObjects = options.minObjects ?? 1;
  const maxObjects = options.maxObjects ?? 4;
  const r = new Random(seed);
  const px = new Float32Array(size * size * 3);

  // Background: a colour gradient, a texture of stripes or blotches, and per-pixel noise.
  const base = colour(r);
  const tint = colour(r);
  const angle = r.uniform(0, Math.PI);
  const [gx, gy] = [Math.cos(angle), Math.sin(angle)];
  const stripes = r.next() < 0.5;
  const frequency = r.uniform(0.15, 0.6);
  const textureAmp = r.uniform(10, 40);
  const noise = r.uniform(4, 18);
  const blobs = Array.from({ length: 3 }, () => ({ x: r.uniform(0, size), y: r.uniform(0, size), s: r.uniform(6, 20) * scale }));
  // Gaussian blobs are separable: exp(-(dx² + dy²)/2s²) = exp(-dx²/2s²) · exp(-dy²/2s²).
  const along = (b: { x: number; y: number; s: number }, axis: 'x' | 'y') => Float32Array.from({ length: size }, (_, i) => Math.exp(-((i - b[axis]) ** 2) / (2 * b.s * b.s)));
  const blobX = blobs.map((b) => along(b, 'x'));
  const blobY = blobs.map((b) => along(b, 'y'));
  // Pixel noise: a sum of three uniforms (close to normal, far cheaper to draw), scaled to standard deviation `noise`.
  const grain = () => (r.next() + r.next() + r.next() - 1.5) * 2 * noise;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const t = ((x * gx + y * gy) / size + 1) / 2;
      let texture: number;
      if (stripes) texture = Math.sin((x * gy - y * gx) * frequency) * textureAmp;
      else {
        let sum = 0;
        for (let k = 0; k < blobs.length; k++) sum += (blobX[k] as Float32Array)[x] as number * ((blobY[k] as Float32Array)[y] as number);
        texture = sum * textureAmp * 2 - textureAmp;
      }
      for (let c = 0; c < 3; c++) px[(y * size + x) * 3 + c] = (base[c] as number) * (1 - t) + (tint[c] as number) * t + texture + grain();
    }
  }

  // Objects: a class, a size, a colour that stands out from the background, a place where
  // they overlap others only a little (IoU ≤ 0.25), so every object stays visible.
  const count = minObjects + r.int(maxObjects - minObjects + 1);
  const objects: GroundTruth[] = [];
  for (let attempt = 0; objects.length < count && attempt < 50; attempt++) {
    const label = r.int(SHAPE_CLASSES.length);
    const side = r.uniform(minSide, maxSide);
    const cx = r.uniform(side / 2 + 1, size - side / 2 - 1);
    const cy = r.uniform(side / 2 + 1, size - side / 2 - 1);
    let vertices: Array<[number, number]> = [];
    let box: GroundTruth;
    if (label === 2) {
      // A triangle of random rotation inscribed in a circle of radius side/2 (side is then its box's longer edge, roughly).
      const rot = r.uniform(0, 2 * Math.PI);
      vertices = [0, 1, 2].map((k) => [cx + (side / 2) * Math.cos(rot + (2 * Math.PI * k) / 3), cy + (side / 2) * Math.sin(rot + (2 * Math.PI * k) / 3)] as [number, number]);
      const xs = vertices.map((v) => v[0]);
      const ys = vertices.map((v) => v[1]);
      box = { x1: Math.min(...xs) / size, y1: Math.min(...ys) / size, x2: Math.max(...xs) / size, y2: Math.max(...ys) / size, label };
    } else {
      box = { x1: (cx - side / 2) / size, y1: (cy - side / 2) / size, x2: (cx + side / 2) / size, y2: (cy + side / 2) / size, label };
    }
    if (objects.some((o) => iou(o, box) > 0.25)) continue;
    let ink = colour(r);
    const bg: Rgb = [0, 1, 2].map((c) => px[(Math.round(cy) * size + Math.round(cx)) * 3 + c] as number) as Rgb;
    for (let tries = 0; tries < 10 && distance(ink, bg) < 120; tries++) ink = colour(r);
    const shade = r.uniform(0.8, 1.1);
    const x0 = Math.max(0, Math.floor(box.x1 * size));
    const x1 = Math.min(size - 1, Math.ceil(box.x2 * size));
    const y0 = Math.max(0, Math.floor(box.y1 * size));
    const y1 = Math.min(size - 1, Math.ceil(box.y2 * size));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const sx = x + 0.5;
        const sy = y + 0.5;
        const inside =
          label === 0 ? (sx - cx) ** 2 + (sy - cy) ** 2 <= (side / 2) ** 2 : label === 1 ? Math.abs(sx - cx) <= side / 2 && Math.abs(sy - cy) <= side / 2 : inTriangle(sx, sy, vertices);
        if (!inside) continue;
        // Shading across the shape, and a little noise, so colour alone is not the answer.
        const light = shade + ((sx - cx) / side) * 0.2;
        for (let c = 0; c < 3; c++) px[(y * size + x) * 3 + c] = (ink[c] as number) * light + grain() * 0.5;
      }
    }
    objects.push(box);
  }
  const pixels = new Uint8Array(px.length);
  for (let i = 0; i < px.length; i++) pixels[i] = Math.max(0, Math.min(255, Math.round(px[i] as number)));
  return { pixels, objects };
}

/** The seed of scene `index` of a split: deterministic, distinct per split. */
export function sceneSeed(seed: number, split: string, index: number): number {
  return deriveSeed(seed, 'shapes', split, index);
}

/** Split sizes: the training split is effectively unlimited (scenes are drawn, not stored). */
export const SHAPES_SPLITS = Object.freeze({ train: 1_000_000, validation: 200, test: 200 });
export const SHAPES_EPOCH_SIZE = 5000;

function shapesSplit(seed: number, name: SplitName, size: number, cache: boolean): DetectionSplit {
  const cached = new Map<number, Scene>();
  return {
    kind: 'detection',
    name,
    size,
    imageShape: [SHAPES_SCENE_SIZE, SHAPES_SCENE_SIZE, 3],
    scene(index: number): Scene {
      if (!Number.isInteger(index) || index < 0 || index >= size) throw new InvalidArgumentError(`scene ${index} is outside the ${name} split: use a whole number in [0, ${size})`);
      const hit = cached.get(index);
      if (hit !== undefined) return hit;
      const scene = renderScene(sceneSeed(seed, name, index));
      if (cache) cached.set(index, scene);
      return scene;
    },
  };
}

/**
 * The `shapes` dataset: unlimited training scenes, 200 validation and 200
 * test scenes (kept once drawn), all determined by `seed` (the dataset
 * `shapes` is seed 1; `shapes:<seed>` names another).
 */
export function shapesDataset(seed = 1): DetectionDataset {
  return {
    kind: 'detection',
    name: seed === 1 ? 'shapes' : `shapes:${seed}`,
    source: `procedural scenes (seed ${seed}): circles, squares and triangles on textured backgrounds`,
    numClasses: SHAPE_CLASSES.length,
    classNames: SHAPE_CLASSES,
    train: shapesSplit(seed, 'train', SHAPES_SPLITS.train, false),
    validation: shapesSplit(seed, 'validation', SHAPES_SPLITS.validation, true),
    test: shapesSplit(seed, 'test', SHAPES_SPLITS.test, true),
    defaultEpochSize: SHAPES_EPOCH_SIZE,
  };
}
