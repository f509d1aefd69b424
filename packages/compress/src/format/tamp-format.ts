/**
 * The .tamp container (specified in packages/compress/FORMAT.md): a checked
 * header, then sections, each with a type, flags, a length and a CRC-32 of
 * its payload. META and TOPO are JSON; each weight is a TNSR section with an
 * encoding. Reading never trusts a length it has not checked against the
 * bytes actually present, so damaged or hostile files become a ModelError,
 * not a crash or a huge allocation.
 *
 * Longer than most files here on purpose: the writer and the reader of each
 * of the seven tensor encodings sit side by side, so a change to one is made
 * next to the other and to the FORMAT.md section it implements.
 */
import { InvalidArgumentError, ModelError, crc32 } from '@tamp/core';
import { type HuffmanStream, huffmanDecode, huffmanEncode } from '../huffman.js';
import { ByteReader, ByteWriter } from './binary.js';

export const TAMP_MAGIC = 'TAMPMODL';
export const TAMP_MAJOR = 1;
export const TAMP_MINOR = 2;
const HEADER_BYTES = 24;
const MAX_SECTIONS = 1 << 16;
const MAX_RANK = 8;

/** Section flag: a reader that does not know the section's type may skip it. */
export const SECTION_OPTIONAL = 1;

/** Tensor encodings (FORMAT.md). 0-1 since 1.0; 2-6 since 1.1. */
export const ENCODINGS = Object.freeze({
  DENSE_F32: 0,
  INT8_CHANNEL: 1,
  CLUSTER_PACKED: 2,
  SPARSE_F32: 3,
  SPARSE_INT8_CHANNEL: 4,
  SPARSE_CLUSTER: 5,
  INT8_TENSOR: 6,
} as const);

/** A weight's values, in one of three forms. */
export type TensorEncoding =
  | { readonly kind: 'f32'; readonly data: Float32Array }
  | { readonly kind: 'int8'; readonly values: Int8Array; readonly scales: Float32Array }
  /** int8 with one scale for the whole tensor (biases: per-channel scales would cost as much as the values). */
  | { readonly kind: 'int8-tensor'; readonly values: Int8Array; readonly scale: number }
  /** Weight sharing: each element is codebook[indices[i]] (at most 256 shared values). */
  | { readonly kind: 'clustered'; readonly codebook: Float32Array; readonly indices: Uint8Array };

/**
 * How a weight is stored: every element (dense), or only the non-zero ones
 * with Huffman-coded gaps between them (sparse; for clustered weights the
 * cluster indices are Huffman-coded too, and codebook[0] must be 0).
 */
export type TensorStorage = 'dense' | 'sparse';

export interface TampTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly encoding: TensorEncoding;
  /** Default: dense. */
  readonly storage?: TensorStorage;
}

/**
 * Gap symbols 0..254 are zeros before the next element; 255 is a filler: 255
 * zeros and no element. Every run of 255 zeros is written, also after the
 * last element, so fewer than 255 trailing zeros go unwritten.
 */
const GAP_FILLER = 255;

function isZero(e: TensorEncoding, i: number): boolean {
  if (e.kind === 'f32') return e.data[i] === 0;
  if (e.kind === 'int8' || e.kind === 'int8-tensor') return e.values[i] === 0;
  return e.indices[i] === 0;
}

/** Positions of the non-zero elements as gap symbols. */
function gapSymbols(e: TensorEncoding, size: number): { gaps: Uint16Array; nonZero: Uint32Array } {
  const gaps: number[] = [];
  const nonZero: number[] = [];
  let run = 0;
  for (let i = 0; i < size; i++) {
    if (isZero(e, i)) {
      run++;
      if (run === GAP_FILLER) {
        gaps.push(GAP_FILLER);
        run = 0;
      }
      continue;
    }
    gaps.push(run);
    nonZero.push(i);
    run = 0;
  }
  return { gaps: Uint16Array.from(gaps), nonZero: Uint32Array.from(nonZero) };
}

function writeHuffman(w: ByteWriter, s: HuffmanStream): void {
  w.u16(s.lengths.length).bytes(s.lengths).u32(s.bits).bytes(s.data);
}

function readHuffman(r: ByteReader, what: string): HuffmanStream {
  const alphabet = r.u16(`${what} alphabet size`);
  const lengths = Uint8Array.from(r.take(alphabet, `${what} code lengths`));
  const bits = r.u32(`${what} bit count`);
  const data = r.take(Math.ceil(bits / 8), `${what} bits`);
  return { lengths, data, bits };
}

/** Positions of the non-zero elements from gap symbols; checks they stay inside the tensor. */
function positions(gaps: Uint16Array, nonZero: number, size: number, where: ByteReader): Uint32Array {
  const out = new Uint32Array(nonZero);
  let pos = 0;
  let k = 0;
  for (const g of gaps) {
    pos += g;
    if (g === GAP_FILLER) continue;
    if (k >= nonZero || pos >= size) throw where.fail(`sparse positions run past the tensor's ${size} elements`);
    out[k++] = pos++;
  }
  if (k !== nonZero) throw where.fail(`sparse positions give ${k} elements, the header says ${nonZero}`);
  if (pos > size || size - pos >= GAP_FILLER) throw where.fail(`sparse positions cover ${pos} of ${size} elements (runs of 255 zeros must be written, also at the end)`);
  return out;
}

/** What a model was, where it came from, and how to use it. */
export interface TampMeta {
  readonly producer: string;
  readonly created: string;
  readonly model?: string;
  readonly task?: 'classification' | 'detection';
  readonly classNames?: readonly string[];
  readonly dataset?: string;
  readonly [key: string]: unknown;
}

export interface TampModel {
  readonly meta: TampMeta;
  /** tfjs LayersModel topology (the "modelTopology" of a model.json). */
  readonly modelTopology: unknown;
  /** Weights in the model's order (the order of model.getWeights()). */
  readonly weights: readonly TampTensor[];
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function section(w: ByteWriter, type: string, flags: number, payload: Uint8Array): void {
  w.utf8(type).u32(flags).u64(payload.length).bytes(payload).u32(crc32(payload));
}

function encodeTensor(t: TampTensor): Uint8Array {
  const w = new ByteWriter();
  const name = new TextEncoder().encode(t.name);
  w.u16(name.length).bytes(name);
  const e = t.encoding;
  const size = sizeOf(t.shape);
  const sparse = t.storage === 'sparse';
  const channels = t.shape.length === 0 ? 1 : (t.shape[t.shape.length - 1] as number);
  const bad = (what: string) => new InvalidArgumentError(`cannot write tensor "${t.name}" to a .tamp file: ${what}`);
  // Since 1.2 the channels may also be the last two axes together (depthwise kernels [kh, kw, in, multiplier]).
  const lastTwo = t.shape.length < 2 ? channels : channels * (t.shape[t.shape.length - 2] as number);
  if (e.kind === 'int8-tensor' && sparse) throw bad("int8-tensor weights are stored dense: leave out storage: 'sparse' (or use per-channel int8)");
  const code =
    e.kind === 'f32'
      ? sparse ? ENCODINGS.SPARSE_F32 : ENCODINGS.DENSE_F32
      : e.kind === 'int8'
        ? sparse ? ENCODINGS.SPARSE_INT8_CHANNEL : ENCODINGS.INT8_CHANNEL
        : e.kind === 'int8-tensor'
          ? ENCODINGS.INT8_TENSOR
          : sparse ? ENCODINGS.SPARSE_CLUSTER : ENCODINGS.CLUSTER_PACKED;
  w.u8(code).u8(t.shape.length);
  for (const d of t.shape) w.u32(d);
  const length = e.kind === 'f32' ? e.data.length : e.kind === 'int8' || e.kind === 'int8-tensor' ? e.values.length : e.indices.length;
  if (length !== size) throw bad(`${length} values for shape [${t.shape.join(',')}], which holds ${size}`);
  if (e.kind === 'int8') {
    if (e.scales.length !== channels && e.scales.length !== lastTwo) throw bad(`${e.scales.length} scales for ${channels} channels: int8 weights need one scale per channel of the last dimension (or, for depthwise kernels, of the last two)`);
    w.u32(e.scales.length).f32s(e.scales);
  }
  if (e.kind === 'clustered') {
    const k = e.codebook.length;
    if (k < 1 || k > 256) throw bad(`a codebook of ${k} values; it must hold 1 to 256`);
    if (sparse && e.codebook[0] !== 0) throw bad('sparse clustered storage needs codebook[0] = 0 for the pruned weights');
    for (const i of e.indices) if (i >= k) throw bad(`index ${i} is outside its codebook of ${k}`);
    w.u16(k).f32s(e.codebook);
  }
  if (e.kind === 'int8-tensor') {
    w.f32s(Float32Array.of(e.scale)).bytes(new Uint8Array(e.values.buffer, e.values.byteOffset, e.values.byteLength));
    return w.finish();
  }
  if (!sparse) {
    if (e.kind === 'f32') w.f32s(e.data);
    else if (e.kind === 'int8') w.bytes(new Uint8Array(e.values.buffer, e.values.byteOffset, e.values.byteLength));
    else {
      const bits = Math.max(1, Math.ceil(Math.log2(e.codebook.length)));
      const packed = new Uint8Array(Math.ceil((size * bits) / 8));
      for (let i = 0; i < size; i++) {
        const v = e.indices[i] as number;
        for (let b = 0; b < bits; b++) {
          const bit = i * bits + b;
          if ((v >> b) & 1) packed[bit >> 3] = (packed[bit >> 3] as number) | (1 << (bit & 7));
        }
      }
      w.u8(bits).bytes(packed);
    }
    return w.finish();
  }
  const { gaps, nonZero } = gapSymbols(e, size);
  w.u32(nonZero.length).u32(gaps.length);
  writeHuffman(w, huffmanEncode(gaps, 256));
  if (e.kind === 'f32') w.f32s(Float32Array.from(nonZero, (i) => e.data[i] as number));
  else if (e.kind === 'int8') w.bytes(Uint8Array.from(nonZero, (i) => (e.values[i] as number) & 0xff));
  else writeHuffman(w, huffmanEncode(Uint16Array.from(nonZero, (i) => (e.indices[i] as number) - 1), e.codebook.length - 1 || 1));
  return w.finish();
}

export function encodeTampModel(model: TampModel): Uint8Array {
  const body = new ByteWriter();
  const weights = model.weights.map((t) => ({ name: t.name, shape: t.shape }));
  section(body, 'META', 0, new TextEncoder().encode(JSON.stringify(model.meta)));
  section(body, 'TOPO', 0, new TextEncoder().encode(JSON.stringify({ modelTopology: model.modelTopology, weights })));
  for (const t of model.weights) section(body, 'TNSR', 0, encodeTensor(t));
  const header = new ByteWriter().utf8(TAMP_MAGIC).u16(TAMP_MAJOR).u16(TAMP_MINOR).u32(2 + model.weights.length).u32(0).finish();
  return new ByteWriter().bytes(header).u32(crc32(header)).bytes(body.finish()).finish();
}

function decodeTensor(payload: Uint8Array, index: number): TampTensor {
  const r = new ByteReader(payload, `tensor section ${index}`);
  const name = r.utf8(r.u16('name length'), 'name');
  const where = new ByteReader(payload, `tensor "${name}"`);
  const encoding = r.u8('encoding');
  const rank = r.u8('rank');
  if (rank > MAX_RANK) throw where.fail(`rank ${rank} is more than ${MAX_RANK}`);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(r.u32('dimension'));
  const size = sizeOf(shape);
  if (!Number.isSafeInteger(size)) throw where.fail(`shape [${shape.join(',')}] is too large`);
  const expectedChannels = rank === 0 ? 1 : (shape[rank - 1] as number);
  const lastTwo = rank < 2 ? expectedChannels : expectedChannels * (shape[rank - 2] as number);
  const readScales = () => {
    const channels = r.u32('channels');
    if (channels !== expectedChannels && channels !== lastTwo) throw where.fail(`${channels} channel scales for a last dimension of ${expectedChannels} (or ${lastTwo}, the last two)`);
    return r.f32s(channels, 'scales');
  };
  const readCodebook = () => {
    const k = r.u16('codebook size');
    if (k < 1 || k > 256) throw where.fail(`codebook of ${k} values (1..256)`);
    return r.f32s(k, 'codebook');
  };
  const readSparse = () => {
    const nonZero = r.u32('non-zero count');
    const gapCount = r.u32('gap symbol count');
    if (nonZero > size) throw where.fail(`${nonZero} non-zero elements in a tensor of ${size}`);
    // One symbol per element plus at most one filler per 255 zeros: bounds the decode.
    if (gapCount < nonZero || gapCount > nonZero + Math.ceil(size / GAP_FILLER)) throw where.fail(`${gapCount} gap symbols cannot place ${nonZero} elements in ${size}`);
    // Each symbol covers at most 255 elements and fewer than 255 remain after the last: bounds what decoding allocates.
    if (size >= GAP_FILLER * (gapCount + 1)) throw where.fail(`${gapCount} gap symbols cannot cover a tensor of ${size} elements`);
    const gapStream = readHuffman(r, 'gap stream');
    if (gapStream.lengths.length !== 256) throw where.fail('gap alphabet must have 256 symbols');
    return { nonZero, gapCount, gapStream };
  };
  const decodeGaps = (s: ReturnType<typeof readSparse>) =>
    positions(huffmanDecode(s.gapStream, s.gapCount, `tensor "${name}" gaps`), s.nonZero, size, where);
  let decoded: TensorEncoding;
  let storage: TensorStorage = 'dense';
  if (encoding === ENCODINGS.DENSE_F32) {
    if (r.remaining !== size * 4) throw where.fail(`shape [${shape.join(',')}] needs ${size * 4} bytes of float32, the section has ${r.remaining}`);
    decoded = { kind: 'f32', data: r.f32s(size, 'values') };
  } else if (encoding === ENCODINGS.INT8_CHANNEL) {
    const scales = readScales();
    if (r.remaining !== size) throw where.fail(`int8 data for shape [${shape.join(',')}] needs ${size} bytes, the section has ${r.remaining}`);
    decoded = { kind: 'int8', scales, values: Int8Array.from(r.take(size, 'values'), (b) => (b << 24) >> 24) };
  } else if (encoding === ENCODINGS.INT8_TENSOR) {
    const scale = r.f32s(1, 'scale')[0] as number;
    if (r.remaining !== size) throw where.fail(`int8 data for shape [${shape.join(',')}] needs ${size} bytes, the section has ${r.remaining}`);
    decoded = { kind: 'int8-tensor', scale, values: Int8Array.from(r.take(size, 'values'), (b) => (b << 24) >> 24) };
  } else if (encoding === ENCODINGS.CLUSTER_PACKED) {
    const codebook = readCodebook();
    const bits = r.u8('index bits');
    if (bits < 1 || bits > 8 || 1 << bits < codebook.length) throw where.fail(`${bits}-bit indices cannot address a codebook of ${codebook.length}`);
    const packedBytes = Math.ceil((size * bits) / 8);
    if (r.remaining !== packedBytes) throw where.fail(`${bits}-bit indices for shape [${shape.join(',')}] need ${packedBytes} bytes, the section has ${r.remaining}`);
    const packed = r.take(packedBytes, 'indices');
    const indices = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      let v = 0;
      for (let b = 0; b < bits; b++) {
        const bit = i * bits + b;
        v |= (((packed[bit >> 3] as number) >> (bit & 7)) & 1) << b;
      }
      if (v >= codebook.length) throw where.fail(`index ${v} outside the codebook of ${codebook.length}`);
      indices[i] = v;
    }
    decoded = { kind: 'clustered', codebook, indices };
  } else if (encoding === ENCODINGS.SPARSE_F32 || encoding === ENCODINGS.SPARSE_INT8_CHANNEL || encoding === ENCODINGS.SPARSE_CLUSTER) {
    storage = 'sparse';
    const scales = encoding === ENCODINGS.SPARSE_INT8_CHANNEL ? readScales() : undefined;
    const codebook = encoding === ENCODINGS.SPARSE_CLUSTER ? readCodebook() : undefined;
    if (codebook !== undefined && codebook[0] !== 0) throw where.fail('a sparse clustered weight needs codebook[0] = 0');
    const sparse = readSparse();
    const at = decodeGaps(sparse);
    if (encoding === ENCODINGS.SPARSE_F32) {
      if (r.remaining !== sparse.nonZero * 4) throw where.fail(`${sparse.nonZero} float32 values need ${sparse.nonZero * 4} bytes, ${r.remaining} remain`);
      const values = r.f32s(sparse.nonZero, 'values');
      const data = new Float32Array(size);
      at.forEach((p, k) => (data[p] = values[k] as number));
      decoded = { kind: 'f32', data };
    } else if (encoding === ENCODINGS.SPARSE_INT8_CHANNEL) {
      if (r.remaining !== sparse.nonZero) throw where.fail(`${sparse.nonZero} int8 values need ${sparse.nonZero} bytes, ${r.remaining} remain`);
      const bytes = r.take(sparse.nonZero, 'values');
      const values = new Int8Array(size);
      at.forEach((p, k) => (values[p] = ((bytes[k] as number) << 24) >> 24));
      decoded = { kind: 'int8', scales: scales as Float32Array, values };
    } else {
      const cb = codebook as Float32Array;
      const indexStream = readHuffman(r, 'index stream');
      if (indexStream.lengths.length !== Math.max(1, cb.length - 1)) throw where.fail(`index alphabet of ${indexStream.lengths.length} for a codebook of ${cb.length}`);
      const idx = huffmanDecode(indexStream, sparse.nonZero, `tensor "${name}" indices`);
      const indices = new Uint8Array(size);
      at.forEach((p, k) => (indices[p] = (idx[k] as number) + 1));
      decoded = { kind: 'clustered', codebook: cb, indices };
    }
  } else {
    throw new ModelError('VERSION_UNSUPPORTED', `tensor "${name}" uses encoding ${encoding}, which this Tamp does not know: the file was written by a newer Tamp (upgrade)`);
  }
  if (r.remaining !== 0) throw where.fail(`${r.remaining} unexpected bytes after the values`);
  return { name, shape, encoding: decoded, ...(storage === 'sparse' ? { storage } : {}) };
}

/** Read a .tamp file. `source` names it in errors. */
export function decodeTampModel(bytes: Uint8Array, source = '.tamp file'): TampModel {
  const r = new ByteReader(bytes, source);
  if (bytes.length < HEADER_BYTES) throw r.fail(`${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte header (truncated?)`);
  const magic = new TextDecoder('latin1').decode(bytes.subarray(0, 8));
  if (magic !== TAMP_MAGIC) throw r.fail(`not a .tamp file (magic "${magic.replace(/[^\x20-\x7e]/g, '?')}", expected "${TAMP_MAGIC}")`);
  r.take(8, 'magic');
  const major = r.u16('major version');
  const minor = r.u16('minor version');
  const count = r.u32('section count');
  r.u32('reserved');
  const headerCrc = r.u32('header checksum');
  if (crc32(bytes.subarray(0, 20)) !== headerCrc) throw r.fail('header checksum mismatch (corrupt header)');
  if (major > TAMP_MAJOR) throw new ModelError('VERSION_UNSUPPORTED', `${source}: format ${major}.${minor} is newer than this Tamp reads (${TAMP_MAJOR}.x): upgrade Tamp`);
  if (count > MAX_SECTIONS) throw r.fail(`${count} sections is not plausible`);
  let meta: TampMeta | undefined;
  let topo: { modelTopology: unknown; weights: Array<{ name: string; shape: number[] }> } | undefined;
  const tensors: TampTensor[] = [];
  for (let i = 0; i < count; i++) {
    const type = new TextDecoder('latin1').decode(r.take(4, `section ${i} type`));
    const flags = r.u32(`section ${i} flags`);
    if ((flags & ~SECTION_OPTIONAL) !== 0) throw r.fail(`section ${i} (${type}) has unknown flags 0x${flags.toString(16)} (corrupt, or written by a newer Tamp)`);
    const length = r.u64(`section ${i} length`);
    const payload = r.take(length, `section ${i} (${type}) payload`);
    const crc = r.u32(`section ${i} checksum`);
    if (crc32(payload) !== crc) throw r.fail(`section ${i} (${type}) checksum mismatch: the file is corrupt`);
    const json = () => {
      try {
        return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload)) as unknown;
      } catch {
        throw r.fail(`section ${i} (${type}) is not valid JSON`);
      }
    };
    if (type === 'META') meta = json() as TampMeta;
    else if (type === 'TOPO') topo = json() as typeof topo;
    else if (type === 'TNSR') tensors.push(decodeTensor(payload, i));
    else if ((flags & SECTION_OPTIONAL) === 0) {
      throw new ModelError('VERSION_UNSUPPORTED', `${source}: section type "${type.replace(/[^\x20-\x7e]/g, '?')}" is unknown to this Tamp and not optional: upgrade Tamp`);
    }
  }
  if (r.remaining !== 0) throw r.fail(`${r.remaining} unexpected bytes after the last section`);
  if (meta === undefined || typeof meta !== 'object') throw r.fail('no META section');
  if (topo === undefined || typeof topo !== 'object' || !Array.isArray(topo.weights as unknown)) throw r.fail('no TOPO section with the weight list');
  if (topo.weights.length !== tensors.length) throw r.fail(`TOPO lists ${topo.weights.length} weights, the file holds ${tensors.length}`);
  topo.weights.forEach((w, i) => {
    const t = tensors[i] as TampTensor;
    if (w.name !== t.name || w.shape.length !== t.shape.length || w.shape.some((d, j) => d !== t.shape[j])) {
      throw r.fail(`weight ${i} is "${t.name}" [${t.shape.join(',')}], TOPO expects "${w.name}" [${w.shape.join(',')}]`);
    }
  });
  return { meta, modelTopology: topo.modelTopology, weights: tensors };
}

/** A weight as float32, whatever its encoding. */
export function tensorValues(t: TampTensor): Float32Array {
  const e = t.encoding;
  if (e.kind === 'f32') return e.data;
  if (e.kind === 'clustered') return Float32Array.from(e.indices, (i) => e.codebook[i] as number);
  if (e.kind === 'int8-tensor') return Float32Array.from(e.values, (v) => v * e.scale);
  const channels = e.scales.length;
  const out = new Float32Array(e.values.length);
  for (let i = 0; i < out.length; i++) out[i] = (e.values[i] as number) * (e.scales[i % channels] as number);
  return out;
}

/** Bytes a weight takes in a .tamp file (its section payload). */
export function encodedBytes(t: TampTensor): number {
  return encodeTensor(t).length;
}

export interface TensorStats {
  readonly bytes: number;
  readonly elements: number;
  readonly nonZero: number;
  /** Sparse storage: bits spent on positions (the Huffman-coded gaps), per non-zero weight. */
  readonly positionBits: number;
  /** Bits spent on values (float32, int8, or cluster indices) per stored weight. */
  readonly valueBits: number;
}

/** Where a weight's bytes go. */
export function tensorStats(t: TampTensor): TensorStats {
  const size = sizeOf(t.shape);
  const e = t.encoding;
  let nonZero = 0;
  for (let i = 0; i < size; i++) if (!isZero(e, i)) nonZero++;
  const bytes = encodedBytes(t);
  if (t.storage !== 'sparse') {
    const valueBits = e.kind === 'f32' ? 32 : e.kind === 'int8' || e.kind === 'int8-tensor' ? 8 : Math.max(1, Math.ceil(Math.log2(e.codebook.length)));
    return { bytes, elements: size, nonZero, positionBits: 0, valueBits };
  }
  const { gaps } = gapSymbols(e, size);
  const positionBits = huffmanEncode(gaps, 256).bits / Math.max(1, nonZero);
  const valueBits =
    e.kind === 'f32'
      ? 32
      : e.kind === 'int8' || e.kind === 'int8-tensor'
        ? 8
        : huffmanEncode(Uint16Array.from(e.indices.filter((i) => i !== 0), (i) => i - 1), Math.max(1, e.codebook.length - 1)).bits / Math.max(1, nonZero);
  return { bytes, elements: size, nonZero, positionBits, valueBits };
}
