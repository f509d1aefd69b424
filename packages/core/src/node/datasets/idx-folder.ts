/**
 * A folder of IDX files in the MNIST layout (train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,
 * each raw or .gz). The validation split is held out of the training files
 * under a fixed seed: 5,000 images for sets of 50,000 or more, else 10%.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ImageClassificationDataset } from '../../data/dataset.js';
import { selectRows } from '../../data/dataset.js';
import { DatasetError, FileError } from '../../errors.js';
import { permutation } from '../../random.js';
import { readIdxPair } from './idx.js';
import { userPathError } from '../user-paths.js';

export const IDX_SPLIT_SEED = 2017;

const PATTERNS = {
  trainImages: /^train-images[.-]idx3-ubyte(\.gz)?$/,
  trainLabels: /^train-labels[.-]idx1-ubyte(\.gz)?$/,
  testImages: /^t10k-images[.-]idx3-ubyte(\.gz)?$/,
  testLabels: /^t10k-labels[.-]idx1-ubyte(\.gz)?$/,
} as const;

export type IdxFiles = Record<keyof typeof PATTERNS, string>;

/** Find the four IDX files in a folder; DATASET_NOT_FOUND names the missing ones. */
export function findIdxFiles(folder: string): IdxFiles {
  const dir = resolve(folder);
  const expected = 'an IDX dataset folder (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-... files, raw or .gz)';
  if (!existsSync(dir)) throw new DatasetError('DATASET_NOT_FOUND', `${dir}: no such folder; expected ${expected}`, dir);
  if (!statSync(dir).isDirectory()) throw new FileError('FILE_ACCESS', `${dir}: is a file; expected ${expected}`, dir, 'ENOTDIR');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw userPathError(error, dir, { expected });
  }
  const found: Partial<IdxFiles> = {};
  const missing: string[] = [];
  for (const [key, pattern] of Object.entries(PATTERNS) as Array<[keyof IdxFiles, RegExp]>) {
    const name = names.filter((n) => pattern.test(n)).sort()[0];
    if (name === undefined) missing.push(pattern.source.replace(/\\|\^|\$|\(\\\.gz\)\?/g, '').replace('[.-]', '-'));
    else found[key] = join(dir, name);
  }
  if (missing.length > 0) {
    throw new DatasetError('DATASET_NOT_FOUND', `${dir}: not an IDX dataset folder, missing ${missing.join(', ')} (raw or .gz)`, dir);
  }
  return found as IdxFiles;
}

export interface IdxFolderOptions {
  name?: string;
  classNames?: readonly string[];
  source?: string;
}

export function loadIdxFolder(folder: string, options: IdxFolderOptions = {}): ImageClassificationDataset {
  const files = findIdxFiles(folder);
  const train = readIdxPair(files.trainImages, files.trainLabels);
  const test = readIdxPair(files.testImages, files.testLabels);
  if (train.imageShape.join('x') !== test.imageShape.join('x')) {
    throw new DatasetError('DATASET_CORRUPT', `${files.testImages}: images are ${test.imageShape.join('x')} but the training images are ${train.imageShape.join('x')}`, files.testImages);
  }
  let maxLabel = 0;
  for (const l of train.labels) if (l > maxLabel) maxLabel = l;
  for (const l of test.labels) if (l > maxLabel) maxLabel = l;
  const numClasses = Math.max(maxLabel + 1, options.classNames?.length ?? 0);
  const n = train.labels.length;
  const validationSize = n >= 50_000 ? 5_000 : Math.max(1, Math.round(n * 0.1));
  if (n < 2) throw new DatasetError('DATASET_CORRUPT', `${files.trainImages}: needs at least 2 training images, has ${n}`, files.trainImages);
  const order = permutation(n, IDX_SPLIT_SEED);
  const shape = train.imageShape;
  return {
    kind: 'classification',
    name: options.name ?? resolve(folder),
    source: options.source ?? `IDX folder ${resolve(folder)}`,
    numClasses,
    classNames: options.classNames ?? Array.from({ length: numClasses }, (_, i) => String(i)),
    train: selectRows('train', train.images, train.labels, shape, order.subarray(validationSize)),
    validation: selectRows('validation', train.images, train.labels, shape, order.subarray(0, validationSize)),
    test: selectRows('test', test.images, test.labels, shape, Uint32Array.from({ length: test.labels.length }, (_, i) => i)),
  };
}
