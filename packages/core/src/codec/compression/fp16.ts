/**
 * IEEE 754 half precision on the wire (`fp16`): two bytes per element, round
 * to nearest even. Values beyond half's range saturate to ±65504 (the largest
 * finite half) rather than becoming infinities, so a large but finite
 * gradient stays finite; the error feedback carries what saturation lost.
 * NaN stays NaN, and the parameter server's finiteness check refuses it.
 */
import { CodecError } from '../../errors.js';
import { decodeFp16Wasm, encodeFp16Wasm } from './quantize-wasm.js';

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const MAX_HALF = 0x7bff;

/** One float32 to its half-precision bits. */
export function toHalfBits(x: number): number {
  F32[0] = x;
  const b = U32[0] as number;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 : sign | MAX_HALF;
  const e = exp - 112; // rebias: 127 → 15
  if (e >= 0x1f) return sign | MAX_HALF;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  // Rounding up the largest finite half would carry into infinity: saturate instead.
  return sign | Math.min(h, MAX_HALF);
}

let table: Float32Array | undefined;

/** Every half's float32 value (256 KiB, made on first use): decoding is one lookup per element. */
function halfTable(): Float32Array {
  if (table !== undefined) return table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant !== 0 ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  table = t;
  return t;
}

/** A half's float32 value. */
export function halfValue(h: number): number {
  return halfTable()[h & 0xffff] as number;
}

export function fp16Bytes(n: number): number {
  return 2 * n;
}

/** Where it can, in WebAssembly SIMD (quantize-wasm.ts: the same halves, bit for bit). */
export function encodeFp16(src: Float32Array): Uint8Array {
  const fast = encodeFp16Wasm(src);
  if (fast !== undefined) return fast;
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = toHalfBits(src[i] as number);
  return new Uint8Array(out.buffer);
}

/** Decode `n` halves; a payload of any other length is refused. Where it can, in WebAssembly SIMD (the same floats). */
export function decodeFp16(bytes: Uint8Array, n: number, name: string): Float32Array {
  if (bytes.length !== fp16Bytes(n)) {
    throw new CodecError('CHUNK_INVALID', `fp16 tensor "${name}": ${bytes.length} bytes for ${n} elements (expected ${fp16Bytes(n)})`, name);
  }
  const fast = decodeFp16Wasm(bytes, n);
  if (fast !== undefined) return fast;
  const t = halfTable();
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = t[view.getUint16(2 * i, true)] as number;
  return out;
}
