/**
 * Tensors of the Open Inference Protocol v2: JSON `data` (flat or nested,
 * row-major) or raw bytes (the binary tensor data extension), of any of the
 * protocol's datatypes, to the float32 samples a model takes; and outputs back.
 */
import { decodeFp16, InvalidArgumentError } from '@tamp/core';

export const DATATYPES = Object.freeze(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const);
export type Datatype = (typeof DATATYPES)[number];

const BYTES_PER: Record<Exclude<Datatype, 'BYTES'>, number> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
};

export function isDatatype(s: unknown): s is Datatype {
  return typeof s === 'string' && (DATATYPES as readonly string[]).includes(s);
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A shape from the wire: non-negative integers, a bounded element count. */
export function checkShape(shape: unknown, what: string, maxElements: number): number[] {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new InvalidArgumentError(`${what}: "shape" must be a non-empty array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const n = elementCount(shape as number[]);
  if (n > maxElements) throw new InvalidArgumentError(`${what}: shape [${(shape as number[]).join(', ')}] has ${n} elements, more than this server accepts (${maxElements})`);
  return shape as number[];
}

/** Flatten JSON `data` (nested arrays allowed) into exactly `count` finite numbers. */
export function numbersFromJson(data: unknown, count: number, datatype: Datatype, what: string): Float32Array {
  const out = new Float32Array(count);
  // The usual body: one flat array of numbers, read in a plain loop (the walk below visits element by element through a closure).
  if (Array.isArray(data) && data.length === count) {
    let i = 0;
    for (; i < count; i++) {
      const v: unknown = data[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) break;
      out[i] = v;
    }
    if (i === count) return out;
  }
  let n = 0;
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (n >= count) {
      n++;
      return;
    }
    const num = typeof v === 'boolean' && datatype === 'BOOL' ? Number(v) : v;
    if (typeof num !== 'number' || !Number.isFinite(num)) throw new InvalidArgumentError(`${what}: element ${n} is ${JSON.stringify(v)}; inputs must be finite numbers`);
    out[n++] = num;
  };
  visit(data);
  if (n !== count) throw new InvalidArgumentError(`${what}: ${n} elements in "data", but its shape holds ${count}`);
  return out;
}

/** Raw little-endian bytes of `datatype` to float32, refusing a byte count that does not match the shape. */
export function numbersFromBytes(bytes: Uint8Array, count: number, datatype: Exclude<Datatype, 'BYTES'>, what: string): Float32Array {
  const expected = count * BYTES_PER[datatype];
  if (bytes.length !== expected) throw new InvalidArgumentError(`${what}: ${bytes.length} bytes of binary data, but ${count} ${datatype} elements take ${expected}`);
  if (datatype === 'FP16') return decodeFp16(bytes, count, what);
  if (datatype === 'FP32' && LITTLE_ENDIAN) return finiteFloats(bytes, count, what);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  const read: (i: number) => number = {
    BOOL: (i: number) => view.getUint8(i),
    UINT8: (i: number) => view.getUint8(i),
    UINT16: (i: number) => view.getUint16(2 * i, true),
    UINT32: (i: number) => view.getUint32(4 * i, true),
    UINT64: (i: number) => Number(view.getBigUint64(8 * i, true)),
    INT8: (i: number) => view.getInt8(i),
    INT16: (i: number) => view.getInt16(2 * i, true),
    INT32: (i: number) => view.getInt32(4 * i, true),
    INT64: (i: number) => Number(view.getBigInt64(8 * i, true)),
    FP32: (i: number) => view.getFloat32(4 * i, true),
    FP64: (i: number) => view.getFloat64(8 * i, true),
  }[datatype];
  for (let i = 0; i < count; i++) {
    const v = read(i);
    if (!Number.isFinite(v)) throw new InvalidArgumentError(`${what}: element ${i} is ${v}; inputs must be finite numbers`);
    out[i] = v;
  }
  return out;
}

/** Whether this machine's typed arrays are little-endian, as the protocol's bytes are. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** FP32 bytes as they are (one copy into memory the request owns, aligned), then checked: the binary extension's fast path. */
function finiteFloats(bytes: Uint8Array, count: number, what: string): Float32Array {
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes);
  for (let i = 0; i < count; i++) {
    if (!Number.isFinite(out[i])) throw new InvalidArgumentError(`${what}: element ${i} is ${out[i]}; inputs must be finite numbers`);
  }
  return out;
}

/** BYTES elements in the binary extension: each a 4-byte little-endian length, then that many bytes. */
export function bytesElements(bytes: Uint8Array, count: number, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (o + 4 > bytes.length) throw new InvalidArgumentError(`${what}: BYTES element ${out.length} has a truncated length prefix`);
    const len = new DataView(bytes.buffer, bytes.byteOffset + o, 4).getUint32(0, true);
    o += 4;
    if (o + len > bytes.length) throw new InvalidArgumentError(`${what}: BYTES element ${out.length} says ${len} bytes, but only ${bytes.length - o} remain`);
    out.push(bytes.subarray(o, o + len));
    o += len;
  }
  if (out.length !== count) throw new InvalidArgumentError(`${what}: ${out.length} BYTES elements, but its shape holds ${count}`);
  return out;
}
