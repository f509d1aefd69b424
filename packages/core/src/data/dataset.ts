/**
 * Datasets as plain arrays (browser-safe). Loaders live in @tamp/core/node;
 * this module only describes splits and cuts them into batches.
 *
 * Images are stored as bytes (0..255) and scaled to [0, 1] floats per batch,
 * so a 60,000-image dataset costs 47 MB instead of 188 MB.
 */
import { InvalidArgumentError } from '../errors.js';
import { deriveSeed, permutation } from '../random.js';
import type { GroundTruth, Scene } from './shapes.js';

export type SplitName = 'train' | 'validation' | 'test';

export interface ImageClassificationSplit {
  readonly name: SplitName;
  readonly size: number;
  /** [height, width, channels] of one image. */
  readonly imageShape: readonly [number, number, number];
  /** size × h × w × c pixel values in 0..255, row-major, channels last. */
  readonly images: Uint8Array;
  /** size class indices. */
  readonly labels: Uint8Array;
}

export interface ImageClassificationDataset {
  readonly kind: 'classification';
  readonly name: string;
  /** Where the data came from (a package, a folder), for reports. */
  readonly source: string;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly train: ImageClassificationSplit;
  readonly validation: ImageClassificationSplit;
  readonly test: ImageClassificationSplit;
}

/**
 * A detection split: scenes made on demand (the `shapes` scenes), so a
 * training split can be as large as wanted without being stored.
 */
export interface DetectionSplit {
  readonly kind: 'detection';
  readonly name: SplitName;
  readonly size: number;
  readonly imageShape: readonly [number, number, number];
  /** Scene `index` (0 <= index < size): pixels and ground-truth boxes. Deterministic. */
  scene(index: number): Scene;
}

export interface DetectionDataset {
  readonly kind: 'detection';
  readonly name: string;
  readonly source: string;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly train: DetectionSplit;
  readonly validation: DetectionSplit;
  readonly test: DetectionSplit;
  /** Samples per epoch when none is asked for (the training split is effectively unlimited). */
  readonly defaultEpochSize: number;
}

export type DataSplit = ImageClassificationSplit | DetectionSplit;
export type Dataset = ImageClassificationDataset | DetectionDataset;

export function isDetectionSplit(split: DataSplit): split is DetectionSplit {
  return (split as DetectionSplit).kind === 'detection';
}

export interface Batch {
  /** size × h × w × c floats in [0, 1]. */
  readonly xs: Float32Array;
  /** Class of each sample (classification); zeros for detection batches. */
  readonly labels: Int32Array;
  /** Ground-truth objects of each sample (detection batches only). */
  readonly objects?: ReadonlyArray<readonly GroundTruth[]>;
  readonly size: number;
}

export interface BatchOptions {
  /** Samples per replica per step. */
  batchSize: number;
  /** Data order seed; each epoch gets its own order derived from it. */
  seed: number;
  epoch?: number;
  /** Shuffle (default true). Evaluation passes false. */
  shuffle?: boolean;
  /**
   * Data parallelism: each step takes a global batch of batchSize × count
   * samples, and replica `index` gets the index-th slice of it. So W replicas
   * with batch b see exactly the samples one process with batch W·b sees.
   */
  replica?: { index: number; count: number };
  /** Use only the first `limit` samples of the epoch's order (--epoch-size). */
  limit?: number;
}

export function imageSize(split: DataSplit): number {
  const [h, w, c] = split.imageShape;
  return h * w * c;
}

/** Build a split from a subset of rows (copies the selected rows). */
export function selectRows(
  name: SplitName,
  images: Uint8Array,
  labels: Uint8Array,
  imageShape: readonly [number, number, number],
  rows: ArrayLike<number>,
): ImageClassificationSplit {
  const n = imageShape[0] * imageShape[1] * imageShape[2];
  const outImages = new Uint8Array(rows.length * n);
  const outLabels = new Uint8Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as number;
    outImages.set(images.subarray(r * n, (r + 1) * n), i * n);
    outLabels[i] = labels[r] as number;
  }
  return { name, size: rows.length, imageShape, images: outImages, labels: outLabels };
}

/** Copy the given rows of a split into a float batch (detection splits render their scenes). */
export function gatherBatch(split: DataSplit, rows: ArrayLike<number>): Batch {
  const n = imageSize(split);
  if (isDetectionSplit(split)) {
    const xs = new Float32Array(rows.length * n);
    const objects: Array<readonly GroundTruth[]> = [];
    for (let i = 0; i < rows.length; i++) {
      const scene = split.scene(rows[i] as number);
      const dst = i * n;
      for (let j = 0; j < n; j++) xs[dst + j] = (scene.pixels[j] as number) / 255;
      objects.push(scene.objects);
    }
    return { xs, labels: new Int32Array(rows.length), objects, size: rows.length };
  }
  const xs = new Float32Array(rows.length * n);
  const labels = new Int32Array(rows.length);
  const scale = 1 / 255;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as number;
    const src = r * n;
    const dst = i * n;
    for (let j = 0; j < n; j++) xs[dst + j] = (split.images[src + j] as number) * scale;
    labels[i] = split.labels[r] as number;
  }
  return { xs, labels, size: rows.length };
}

function checkOptions(split: DataSplit, options: BatchOptions): { count: number; index: number } {
  const { batchSize } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new InvalidArgumentError(`batch size must be a positive integer, got ${batchSize}`);
  }
  const count = options.replica?.count ?? 1;
  const index = options.replica?.index ?? 0;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new InvalidArgumentError(`replica ${index} of ${count} is not valid: need 0 <= index < count`);
  }
  if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit < 1)) {
    throw new InvalidArgumentError(`epoch size must be a positive integer, got ${options.limit}`);
  }
  if (split.size === 0) throw new InvalidArgumentError(`the ${split.name} split is empty`);
  return { count, index };
}

/** Samples in one epoch after the limit. */
function epochSamples(split: DataSplit, options: BatchOptions): number {
  return Math.min(split.size, options.limit ?? split.size);
}

/**
 * Steps per epoch. One replica keeps a final partial batch (like model.fit);
 * several replicas drop it, so every replica takes the same number of steps.
 */
export function stepsPerEpoch(split: DataSplit, options: BatchOptions): number {
  const { count } = checkOptions(split, options);
  const n = epochSamples(split, options);
  const global = options.batchSize * count;
  return count === 1 ? Math.ceil(n / global) : Math.floor(n / global);
}

/** The rows of one epoch in order (shuffled unless shuffle is false). */
export function epochOrder(split: DataSplit, options: BatchOptions): Uint32Array {
  const n = epochSamples(split, options);
  if (options.shuffle === false) return Uint32Array.from({ length: n }, (_, i) => i);
  return permutation(split.size, deriveSeed(options.seed, split.name, 'epoch', options.epoch ?? 0)).subarray(0, n);
}

/** One replica's batches for one epoch, deterministic under (seed, epoch). */
export function* iterateBatches(split: DataSplit, options: BatchOptions): Generator<Batch, void, undefined> {
  const { count, index } = checkOptions(split, options);
  const order = epochOrder(split, options);
  const steps = stepsPerEpoch(split, options);
  const global = options.batchSize * count;
  for (let s = 0; s < steps; s++) {
    const start = s * global + index * options.batchSize;
    const end = Math.min(order.length, start + options.batchSize);
    yield gatherBatch(split, order.subarray(start, end));
  }
}

/**
 * Batches by step number: step s of a replica is batch (s mod steps) of
 * epoch floor(s / steps). Workers that resume, or skip steps the cluster
 * already took, jump straight to theirs. Each epoch's order is computed once.
 */
export class BatchSource {
  readonly stepsPerEpoch: number;
  private cached: { epoch: number; order: Uint32Array } | undefined;
  private readonly count: number;
  private readonly index: number;

  constructor(
    readonly split: DataSplit,
    readonly options: BatchOptions,
  ) {
    const { count, index } = checkOptions(split, options);
    this.count = count;
    this.index = index;
    this.stepsPerEpoch = stepsPerEpoch(split, options);
    if (this.stepsPerEpoch === 0) {
      throw new InvalidArgumentError(`the ${split.name} split has too few samples for ${count} replica(s) with batch ${options.batchSize}`);
    }
  }

  epochOf(step: number): number {
    return Math.floor(step / this.stepsPerEpoch);
  }

  batch(step: number): Batch {
    return this.at(step, this.index);
  }

  /** Batches of one epoch over all replicas. */
  get globalBatchesPerEpoch(): number {
    return this.stepsPerEpoch * this.count;
  }

  /**
   * The job's batch `n`, numbering every replica's batches in step order:
   * replica n mod count's batch at step floor(n / count), the same data
   * whichever replica trains it (async and ssp workers claim batches by
   * these numbers).
   */
  globalBatch(n: number): Batch {
    return this.at(Math.floor(n / this.count), n % this.count);
  }

  private at(step: number, index: number): Batch {
    const epoch = this.epochOf(step);
    if (this.cached?.epoch !== epoch) this.cached = { epoch, order: epochOrder(this.split, { ...this.options, epoch }) };
    const global = this.options.batchSize * this.count;
    const start = (step % this.stepsPerEpoch) * global + index * this.options.batchSize;
    const end = Math.min(this.cached.order.length, start + this.options.batchSize);
    return gatherBatch(this.split, this.cached.order.subarray(start, end));
  }
}
