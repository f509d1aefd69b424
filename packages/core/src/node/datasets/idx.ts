/**
 * The IDX format of MNIST and Fashion-MNIST (raw or gzip):
 * bytes 0-1 zero, byte 2 the element type, byte 3 the number of dimensions,
 * then each dimension as a big-endian uint32, then the elements.
 * Only unsigned bytes (type 0x08) are read: images and labels use them.
 */
import { writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DatasetError, errorMessage } from '../../errors.js';
import { readUserFile } from '../user-paths.js';

export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const UBYTE = 0x08;

/** Parse IDX bytes (gunzipping first when they start with the gzip magic). `file` names the source in errors. */
export function parseIdx(input: Uint8Array, file: string): IdxArray {
  let bytes = input;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new DatasetError('DATASET_CORRUPT', `${file}: the gzip stream is damaged or truncated (${errorMessage(error)}); download or reinstall the file`, file, { cause: error });
    }
  }
  if (bytes.length < 4) throw new DatasetError('DATASET_CORRUPT', `${file}: truncated: ${bytes.length} bytes is shorter than the 4-byte IDX magic number`, file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  const type = bytes[2] as number;
  const ndims = bytes[3] as number;
  if (bytes[0] !== 0 || bytes[1] !== 0 || ndims === 0) {
    throw new DatasetError('DATASET_CORRUPT', `${file}: wrong magic number 0x${hex(magic)}; an IDX file starts with 0x000008NN (unsigned bytes, NN dimensions)`, file);
  }
  if (type !== UBYTE) {
    throw new DatasetError('DATASET_CORRUPT', `${file}: element type 0x${type.toString(16).padStart(2, '0')} in magic number 0x${hex(magic)} is not supported; only unsigned bytes (0x08) are`, file);
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new DatasetError('DATASET_CORRUPT', `${file}: truncated: the header needs ${headerBytes} bytes for ${ndims} dimensions, the file has ${bytes.length}`, file);
  }
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i);
    dims.push(d);
    count *= d;
  }
  const available = bytes.length - headerBytes;
  if (available < count) {
    throw new DatasetError(
      'DATASET_CORRUPT',
      `${file}: truncated: dimensions [${dims.join(', ')}] need ${count} bytes of data, the file has ${available}`,
      file,
    );
  }
  if (available > count) {
    throw new DatasetError('DATASET_CORRUPT', `${file}: ${available - count} unexpected bytes after the data of dimensions [${dims.join(', ')}]`, file);
  }
  return { dims, data: bytes.subarray(headerBytes, headerBytes + count) };
}

export function readIdxFile(file: string): IdxArray {
  return parseIdx(readUserFile(file, { expected: 'an IDX file (raw or .gz)', notFound: 'DATASET_NOT_FOUND' }), file);
}

/** Images and labels that belong together, checked against each other. */
export function readIdxPair(imagesFile: string, labelsFile: string): { images: Uint8Array; labels: Uint8Array; imageShape: [number, number, number] } {
  const images = readIdxFile(imagesFile);
  const labels = readIdxFile(labelsFile);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new DatasetError('DATASET_CORRUPT', `${imagesFile}: an images file needs 3 or 4 dimensions [N, H, W(, C)], this one has [${images.dims.join(', ')}]`, imagesFile);
  }
  if (labels.dims.length !== 1) {
    throw new DatasetError('DATASET_CORRUPT', `${labelsFile}: a labels file needs 1 dimension [N], this one has [${labels.dims.join(', ')}]`, labelsFile);
  }
  const n = images.dims[0] as number;
  if (labels.dims[0] !== n) {
    throw new DatasetError(
      'DATASET_CORRUPT',
      `${labelsFile}: holds ${labels.dims[0]} labels but ${imagesFile} holds ${n} images; the two files must come from the same set`,
      labelsFile,
    );
  }
  const [, h, w, c = 1] = images.dims as [number, number, number, number?];
  return { images: images.data, labels: labels.data, imageShape: [h, w, c] };
}

/** Encode an IDX file of unsigned bytes (used by tests and tools). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

/** The first `rows` rows of an IDX file (raw or gzip) written to `to` as a raw IDX file: a small split for tests and benchmarks. */
export function writeIdxHead(from: string, to: string, rows: number): void {
  const { dims, data } = readIdxFile(from);
  const per = dims.slice(1).reduce((a, b) => a * b, 1);
  const n = Math.min(rows, dims[0] ?? 0);
  writeFileSync(to, encodeIdx([n, ...dims.slice(1)], data.subarray(0, n * per)));
}
