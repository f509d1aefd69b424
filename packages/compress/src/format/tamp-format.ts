/**
 * The .tamp container (specified in packages/compress/FORMAT.md): a checked
 * header, then sections, each with a type, flags, a length and a CRC-32 of
 * its payload. META and TOPO are JSON; each weight is a TNSR section with an
 * encoding. Reading never trusts a length it has not checked against the
 * bytes actually present, so damaged or hostile files become a ModelError,
 * not a crash or a huge allocation.
 */
import { ModelError, crc32 } from '@tamp/core';
import { ByteReader, ByteWriter } from './binary.js';

export const TAMP_MAGIC = 'TAMPMODL';
export const TAMP_MAJOR = 1;
export const TAMP_MINOR = 0;
const HEADER_BYTES = 24;
const MAX_SECTIONS = 1 << 16;
const MAX_RANK = 8;

/** Section flag: a reader that does not know the section's type may skip it. */
export const SECTION_OPTIONAL = 1;

/** Tensor encodings. Part 2 of compression adds sparse and clustered ones. */
export const ENCODINGS = Object.freeze({ DENSE_F32: 0, INT8_CHANNEL: 1 } as const);

export type TensorEncoding =
  | { readonly kind: 'f32'; readonly data: Float32Array }
  | { readonly kind: 'int8'; readonly values: Int8Array; readonly scales: Float32Array };

export interface TampTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly encoding: TensorEncoding;
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
  w.u8(e.kind === 'f32' ? ENCODINGS.DENSE_F32 : ENCODINGS.INT8_CHANNEL).u8(t.shape.length);
  for (const d of t.shape) w.u32(d);
  if (e.kind === 'f32') {
    if (e.data.length !== sizeOf(t.shape)) throw new Error(`tensor "${t.name}": ${e.data.length} values for shape [${t.shape.join(',')}]`);
    w.f32s(e.data);
  } else {
    const channels = t.shape.length === 0 ? 1 : (t.shape[t.shape.length - 1] as number);
    if (e.scales.length !== channels || e.values.length !== sizeOf(t.shape)) throw new Error(`tensor "${t.name}": int8 data does not match shape [${t.shape.join(',')}]`);
    w.u32(channels).f32s(e.scales).bytes(new Uint8Array(e.values.buffer, e.values.byteOffset, e.values.byteLength));
  }
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
  let decoded: TensorEncoding;
  if (encoding === ENCODINGS.DENSE_F32) {
    if (r.remaining !== size * 4) throw where.fail(`shape [${shape.join(',')}] needs ${size * 4} bytes of float32, the section has ${r.remaining}`);
    decoded = { kind: 'f32', data: r.f32s(size, 'values') };
  } else if (encoding === ENCODINGS.INT8_CHANNEL) {
    const channels = r.u32('channels');
    const expected = rank === 0 ? 1 : (shape[rank - 1] as number);
    if (channels !== expected) throw where.fail(`${channels} channel scales for a last dimension of ${expected}`);
    if (r.remaining !== channels * 4 + size) throw where.fail(`int8 data for shape [${shape.join(',')}] needs ${channels * 4 + size} bytes, the section has ${r.remaining}`);
    const scales = r.f32s(channels, 'scales');
    decoded = { kind: 'int8', scales, values: Int8Array.from(r.take(size, 'values'), (b) => (b << 24) >> 24) };
  } else {
    throw new ModelError('VERSION_UNSUPPORTED', `tensor "${name}" uses encoding ${encoding}, which this Tamp does not know: the file was written by a newer Tamp (upgrade)`);
  }
  if (r.remaining !== 0) throw where.fail(`${r.remaining} unexpected bytes after the values`);
  return { name, shape, encoding: decoded };
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
  const channels = e.scales.length;
  const out = new Float32Array(e.values.length);
  for (let i = 0; i < out.length; i++) out[i] = (e.values[i] as number) * (e.scales[i % channels] as number);
  return out;
}

/** Bits per weight an encoding spends, everything included. */
export function encodedBytes(t: TampTensor): number {
  const e = t.encoding;
  return e.kind === 'f32' ? e.data.length * 4 : e.values.length + e.scales.length * 4;
}
