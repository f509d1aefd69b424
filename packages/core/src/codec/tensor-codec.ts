/**
 * Tensors to wire chunks and back. A tensor (or a slice of a variable's
 * flattened elements) travels as chunks of at most MAX_CHUNK_BYTES, each
 * carrying the whole tensor's header and CRC-32, so the receiver can name
 * exactly what is missing or damaged. The assembler never allocates from a
 * header: memory grows only with bytes actually received.
 */
import { Codec, DType, type TensorChunk } from '@tamp/proto/tamp/v1/tensor';
import { CodecError, TampError } from '../errors.js';
import { MAX_CHUNK_BYTES, MAX_MESSAGE_CHUNK_BYTES, ZERO_COPY_MIN_BYTES } from '../protocol.js';
import { crc32 } from './crc32.js';
import { codecKindOf, decodeWire, encodeWire, protoCodec, type WireCodec, type WireCodecKind } from './compression/wire-codec.js';

export type WireDType = 'float32' | 'int32';

/** A named tensor, or the slice [sliceStart, sliceStart + data.length) of a variable's flattened elements. */
export interface WireTensor {
  readonly name: string;
  /** Shape of the whole variable. */
  readonly shape: readonly number[];
  readonly dtype: WireDType;
  readonly data: Float32Array | Int32Array;
  /** Element offset of `data` within the variable (0 for a whole tensor). */
  readonly sliceStart: number;
  /** The codec it travelled in, when not fp32 (set by TensorAssembler.finish; an int8 pull carries a change, not values). */
  readonly codec?: WireCodecKind;
}

export interface EncodeOptions {
  /** Payload bytes per chunk, at most MAX_CHUNK_BYTES (the default). */
  chunkBytes?: number;
  /** Compress float32 data on the wire (compression/wire-codec.ts); fp32 (the default) sends the raw bytes. */
  codec?: WireCodec;
}

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new TampError('PLATFORM_UNSUPPORTED', 'Tamp needs a little-endian host (x86-64, arm64, ...): tensors travel and are read in place as little-endian bytes, and this CPU is big-endian.');
}

export function sizeOfShape(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

export function bytesOf(data: Float32Array | Int32Array | Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function dtypeOf(data: Float32Array | Int32Array): WireDType {
  return data instanceof Float32Array ? 'float32' : 'int32';
}

const NO_PADDING = new Uint8Array(0);

/** Split a tensor into chunks. Payloads are views of `tensor.data`: no copy. */
export function encodeTensor(tensor: WireTensor, options: EncodeOptions = {}): TensorChunk[] {
  const chunkBytes = options.chunkBytes ?? MAX_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new CodecError('CHUNK_INVALID', `chunkBytes must be an integer in [1, ${MAX_CHUNK_BYTES}], got ${chunkBytes}`, tensor.name);
  }
  if (dtypeOf(tensor.data) !== tensor.dtype) {
    throw new CodecError('CHUNK_INVALID', `tensor "${tensor.name}" says dtype ${tensor.dtype} but holds ${dtypeOf(tensor.data)} data`, tensor.name);
  }
  const size = sizeOfShape(tensor.shape);
  if (tensor.sliceStart < 0 || tensor.sliceStart + tensor.data.length > size) {
    throw new CodecError(
      'CHUNK_INVALID',
      `tensor "${tensor.name}": slice [${tensor.sliceStart}, ${tensor.sliceStart + tensor.data.length}) lies outside its shape [${tensor.shape.join(',')}] (${size} elements)`,
      tensor.name,
    );
  }
  const codec = options.codec ?? { kind: 'fp32' };
  if (codec.kind !== 'fp32' && !(tensor.data instanceof Float32Array)) {
    throw new CodecError('CHUNK_INVALID', `tensor "${tensor.name}": the ${codec.kind} codec compresses float32 data, not ${tensor.dtype}`, tensor.name);
  }
  const bytes = codec.kind === 'fp32' ? bytesOf(tensor.data) : encodeWire(codec, tensor.data as Float32Array);
  return chunksOf({ name: tensor.name, shape: tensor.shape, sliceStart: tensor.sliceStart, length: tensor.data.length, codec: codec.kind, bytes }, tensor.dtype, chunkBytes);
}

/**
 * A float32 tensor (or slice) already encoded by a wire codec: a sender whose
 * error feedback or DGC state must see each gradient exactly once encodes
 * before any retry, and every attempt sends the same bytes.
 */
export interface EncodedTensor {
  readonly name: string;
  /** Shape of the whole variable. */
  readonly shape: readonly number[];
  readonly sliceStart: number;
  /** Elements the payload decodes to. */
  readonly length: number;
  readonly codec: WireCodecKind;
  readonly bytes: Uint8Array;
}

/** Chunks of an encoded tensor (payloads are views of `encoded.bytes`). */
export function encodedTensorChunks(encoded: EncodedTensor, options: { chunkBytes?: number } = {}): TensorChunk[] {
  const chunkBytes = options.chunkBytes ?? MAX_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new CodecError('CHUNK_INVALID', `chunkBytes must be an integer in [1, ${MAX_CHUNK_BYTES}], got ${chunkBytes}`, encoded.name);
  }
  return chunksOf(encoded, 'float32', chunkBytes);
}

function chunksOf(t: EncodedTensor, dtype: WireDType, chunkBytes: number): TensorChunk[] {
  const bytes = t.bytes;
  const header = {
    name: t.name,
    shape: [...t.shape],
    dtype: dtype === 'float32' ? DType.D_TYPE_FLOAT32 : DType.D_TYPE_INT32,
    codec: protoCodec(t.codec),
    totalBytes: BigInt(bytes.length),
    crc32: crc32(bytes),
    sliceStart: BigInt(t.sliceStart),
    sliceLength: BigInt(t.length),
    padding: NO_PADDING,
  };
  const chunks: TensorChunk[] = [];
  let offset = 0;
  do {
    const end = Math.min(bytes.length, offset + chunkBytes);
    chunks.push({ ...header, offset: BigInt(offset), payload: bytes.subarray(offset, end) });
    offset = end;
  } while (offset < bytes.length);
  return chunks;
}

interface Pending {
  readonly first: TensorChunk;
  readonly shape: number[];
  readonly dtype: WireDType;
  readonly codec: WireCodecKind;
  readonly totalBytes: number;
  readonly sliceStart: number;
  readonly sliceLength: number;
  readonly parts: Uint8Array[];
  received: number;
}

function toSafeNumber(value: bigint, what: string, name: string): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CodecError('CHUNK_INVALID', `tensor "${name}": ${what} ${value} is out of range`, name);
  }
  return Number(value);
}

/**
 * Reassembles tensors from chunks that arrive in order of offset (as a gRPC
 * stream delivers them). Throws CodecError naming the tensor on the first
 * inconsistency; `finish()` reports tensors left incomplete.
 */
export class TensorAssembler {
  /** Codecs this receiver takes: raw float32 only unless a job agreed to more. */
  private readonly accepted: ReadonlySet<WireCodecKind>;
  private readonly pending = new Map<string, Pending>();
  private readonly order: string[] = [];
  private readonly done = new Set<string>();
  private bytesReceived = 0;

  constructor(options: { accept?: readonly WireCodecKind[] } = {}) {
    this.accepted = new Set<WireCodecKind>(['fp32', ...(options.accept ?? [])]);
  }

  /** Bytes of payload accepted so far. */
  get receivedBytes(): number {
    return this.bytesReceived;
  }

  /** Number of distinct tensors seen so far (complete or not). */
  get tensorCount(): number {
    return this.order.length;
  }

  add(chunk: TensorChunk): void {
    const name = chunk.name;
    if (name.length === 0) throw new CodecError('CHUNK_INVALID', 'a tensor chunk has an empty name');
    const sliceStart = toSafeNumber(chunk.sliceStart, 'slice_start', name);
    const key = `${name}@${sliceStart}`;
    let p = this.pending.get(key);
    if (p === undefined) {
      if (this.done.has(key)) {
        throw new CodecError('CHUNK_INVALID', `tensor "${name}" (slice at ${sliceStart}) arrived twice in one stream`, name);
      }
      p = this.start(chunk, name, sliceStart);
      this.pending.set(key, p);
      this.order.push(key);
    } else {
      this.checkSameHeader(p, chunk, name);
    }
    const offset = toSafeNumber(chunk.offset, 'offset', name);
    if (offset > p.received) {
      throw new CodecError(
        'CHUNK_MISSING',
        `tensor "${name}": chunk at byte offset ${offset} arrived but bytes [${p.received}, ${offset}) are missing`,
        name,
      );
    }
    if (offset < p.received) {
      throw new CodecError('CHUNK_INVALID', `tensor "${name}": chunk at byte offset ${offset} overlaps bytes already received (up to ${p.received})`, name);
    }
    const length = chunk.payload.length;
    if (length > MAX_CHUNK_BYTES) {
      throw new CodecError('CHUNK_INVALID', `tensor "${name}": chunk payload of ${length} bytes exceeds the ${MAX_CHUNK_BYTES}-byte limit`, name);
    }
    if (length === 0 && p.totalBytes > 0) {
      throw new CodecError('CHUNK_INVALID', `tensor "${name}": empty chunk at offset ${offset} of a ${p.totalBytes}-byte tensor`, name);
    }
    if (offset + length > p.totalBytes) {
      throw new CodecError('CHUNK_INVALID', `tensor "${name}": chunk at offset ${offset} runs ${offset + length - p.totalBytes} bytes past the tensor's ${p.totalBytes} bytes`, name);
    }
    p.parts.push(chunk.payload);
    p.received += length;
    this.bytesReceived += length;
    if (p.received === p.totalBytes) this.done.add(key);
  }

  /** True when every tensor seen so far is complete. */
  get complete(): boolean {
    return this.order.every((key) => this.done.has(key));
  }

  /** Verify checksums and return the tensors in order of first arrival. */
  finish(): WireTensor[] {
    const out: WireTensor[] = [];
    for (const key of this.order) {
      const p = this.pending.get(key) as Pending;
      const name = p.first.name;
      if (p.received < p.totalBytes) {
        throw new CodecError(
          'CHUNK_MISSING',
          `tensor "${name}": received ${p.received} of ${p.totalBytes} bytes; the chunk at offset ${p.received} never arrived (stream cut short?)`,
          name,
        );
      }
      const single = p.parts.length === 1 ? (p.parts[0] as Uint8Array) : undefined;
      let bytes: Uint8Array;
      if (single !== undefined && single.length >= ZERO_COPY_MIN_BYTES && single.byteOffset % 4 === 0) {
        // In place: a large buffer of its own (never Node's shared pool), aligned.
        bytes = single;
      } else {
        bytes = new Uint8Array(p.totalBytes);
        let at = 0;
        for (const part of p.parts) {
          bytes.set(part, at);
          at += part.length;
        }
      }
      const crc = crc32(bytes);
      if (crc !== p.first.crc32 >>> 0) {
        throw new CodecError(
          'CHUNK_CORRUPT',
          `tensor "${name}": checksum mismatch (CRC-32 ${hex(crc)}, expected ${hex(p.first.crc32)}); its bytes were damaged in transit`,
          name,
        );
      }
      let data: Float32Array | Int32Array;
      if (p.codec !== 'fp32') data = decodeWire(p.codec, bytes, p.sliceLength, name);
      else {
        const n = bytes.byteLength / 4;
        data = p.dtype === 'float32' ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Int32Array(bytes.buffer, bytes.byteOffset, n);
      }
      out.push({ name, shape: p.shape, dtype: p.dtype, data, sliceStart: p.sliceStart, ...(p.codec !== 'fp32' ? { codec: p.codec } : {}) });
    }
    return out;
  }

  private start(chunk: TensorChunk, name: string, sliceStart: number): Pending {
    const codec = codecKindOf(chunk.codec, name);
    if (!this.accepted.has(codec)) {
      throw new CodecError(
        'CODEC_UNSUPPORTED',
        `tensor "${name}": codec ${Codec[chunk.codec] ?? chunk.codec} is not one this job agreed to (it takes ${[...this.accepted].join(', ')}); run every role with the job's --wire settings`,
        name,
      );
    }
    let dtype: WireDType;
    if (chunk.dtype === DType.D_TYPE_FLOAT32) dtype = 'float32';
    else if (chunk.dtype === DType.D_TYPE_INT32) dtype = 'int32';
    else throw new CodecError('CHUNK_INVALID', `tensor "${name}": unknown dtype ${chunk.dtype}`, name);
    const shape = [...chunk.shape];
    let size = 1;
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new CodecError('CHUNK_INVALID', `tensor "${name}": bad dimension ${d} in shape`, name);
      size *= d;
    }
    if (!Number.isSafeInteger(size)) throw new CodecError('CHUNK_INVALID', `tensor "${name}": shape [${shape.join(',')}] is too large`, name);
    const sliceLength = toSafeNumber(chunk.sliceLength, 'slice_length', name);
    const totalBytes = toSafeNumber(chunk.totalBytes, 'total_bytes', name);
    if (sliceStart + sliceLength > size) {
      throw new CodecError(
        'CHUNK_INVALID',
        `tensor "${name}": slice [${sliceStart}, ${sliceStart + sliceLength}) lies outside its shape [${shape.join(',')}] (${size} elements)`,
        name,
      );
    }
    if (codec === 'fp32' && totalBytes !== sliceLength * 4) {
      throw new CodecError('CHUNK_INVALID', `tensor "${name}": total_bytes ${totalBytes} does not match ${sliceLength} elements of 4 bytes`, name);
    }
    if (codec !== 'fp32') {
      if (dtype !== 'float32') throw new CodecError('CHUNK_INVALID', `tensor "${name}": the ${codec} codec carries float32 data, not ${dtype}`, name);
      // The most any codec takes per element (top-k: 4 bytes of value and at most 5 of position): a header cannot claim more.
      if (totalBytes > 9 * sliceLength + 8) throw new CodecError('CHUNK_INVALID', `tensor "${name}": total_bytes ${totalBytes} is more than a ${codec} encoding of ${sliceLength} elements can take`, name);
    }
    return { first: chunk, shape, dtype, codec, totalBytes, sliceStart, sliceLength, parts: [], received: 0 };
  }

  private checkSameHeader(p: Pending, chunk: TensorChunk, name: string): void {
    const a = p.first;
    const same =
      a.dtype === chunk.dtype &&
      a.codec === chunk.codec &&
      a.totalBytes === chunk.totalBytes &&
      a.crc32 === chunk.crc32 &&
      a.sliceLength === chunk.sliceLength &&
      a.shape.length === chunk.shape.length &&
      a.shape.every((d, i) => d === chunk.shape[i]);
    if (!same) {
      throw new CodecError('CHUNK_INVALID', `tensor "${name}": chunk at offset ${chunk.offset} disagrees with the tensor's first chunk (shape, dtype, size or checksum)`, name);
    }
  }
}

/** Assemble a complete stream of chunks at once. */
export function decodeTensors(chunks: Iterable<TensorChunk>): WireTensor[] {
  const assembler = new TensorAssembler();
  for (const chunk of chunks) assembler.add(chunk);
  return assembler.finish();
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

/** Bytes a chunk adds to a message besides its payload (name, shape, counters; generous). */
function chunkOverhead(chunk: TensorChunk): number {
  return 64 + chunk.name.length * 3 + chunk.shape.length * 5;
}

/**
 * Pack chunks, in order, into messages of at most `maxBytes` (payloads plus
 * headers; a chunk larger than that travels alone). Receivers read each
 * message's chunks in order, so tensors still arrive in order of offset.
 * Every gRPC message costs both ends far more CPU than its bytes, so a
 * model's biases and small kernels should share messages rather than take
 * one each.
 */
export function groupChunks(chunks: readonly TensorChunk[], maxBytes = MAX_MESSAGE_CHUNK_BYTES): TensorChunk[][] {
  const groups: TensorChunk[][] = [];
  let current: TensorChunk[] = [];
  let bytes = 0;
  for (const chunk of chunks) {
    const size = chunk.payload.length + chunkOverhead(chunk);
    if (current.length > 0 && bytes + size > maxBytes) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(chunk);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** Tensors as the chunks of each message that carries them (encodeTensor, then groupChunks). */
export function encodeTensorMessages(tensors: readonly WireTensor[], maxBytes = MAX_MESSAGE_CHUNK_BYTES, codec?: WireCodec): TensorChunk[][] {
  return groupChunks(tensors.flatMap((t) => encodeTensor(t, codec === undefined ? {} : { codec })), maxBytes);
}
