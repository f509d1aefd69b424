/** Tensors as raw little-endian bytes, as the binary tensor data extension and gRPC's raw contents carry them. */
import type { Tensor, TypedArray } from './index.js';

/** A tensor's elements as bytes; BYTES items each behind a 4-byte little-endian length. */
export function toBytes(t: Tensor): Uint8Array {
  if (t.datatype === 'BYTES') {
    const items = t.data as readonly Uint8Array[];
    const out = new Uint8Array(items.reduce((s, b) => s + 4 + b.length, 0));
    const view = new DataView(out.buffer);
    let o = 0;
    for (const b of items) {
      view.setUint32(o, b.length, true);
      out.set(b, o + 4);
      o += 4 + b.length;
    }
    return out;
  }
  const typed = ArrayBuffer.isView(t.data) ? (t.data as TypedArray) : ARRAYS[t.datatype].from(t.data as readonly number[]);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

export const ARRAYS = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  FP32: Float32Array,
  FP64: Float64Array,
} as const;

/** Elements from raw bytes, copied to an aligned buffer of their own. */
export function fromBytes(datatype: string, bytes: Uint8Array): Float32Array | Int32Array | Float64Array | Uint8Array {
  // new Uint8Array(view) copies; a Node Buffer's slice() would not (it shares the pool).
  const copy = new Uint8Array(bytes).buffer;
  if (datatype === 'FP32') return new Float32Array(copy);
  if (datatype === 'INT32') return new Int32Array(copy);
  if (datatype === 'FP64') return new Float64Array(copy);
  return new Uint8Array(copy);
}
