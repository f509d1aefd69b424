/**
 * int4 on the wire: symmetric 4-bit, one float32 scale per block of elements
 * (scale = max |x| / 7 over the block), two elements a byte: an eighth of
 * float32's bytes and about half of int8's. QSGD (Alistarh et al. 2017) sends
 * 4-bit gradients with stochastic rounding; here rounding is to nearest, and
 * what it loses travels later (error feedback on pushes; the change-coded
 * pull keeps each worker's reference on the server). Layout (little endian):
 *
 *   u32 blockSize | f32 scale × ceil(n / blockSize) | u8 × ceil(n / 2)
 *
 * Element 2k is byte k's low nibble and element 2k + 1 its high nibble, each
 * in two's complement, -7..7 (-8 is refused, as int8 refuses -128); when n is
 * odd the last high nibble is 0. A block holding NaN or ±Infinity gets a NaN
 * scale, so the receiver refuses the tensor.
 */
import { CodecError } from '../../errors.js';
import { dequantizeWasm } from './quantize-wasm.js';
import { type QuantizeWith, checkBlockSize, quantizeBlocks, readBlockHeader, writeBlockHeader } from './blocks.js';

/** Smaller blocks than int8's: with 15 levels, one large element flattens its whole block to zero. */
export const INT4_BLOCK = 64;

export function int4Bytes(n: number, blockSize = INT4_BLOCK): number {
  return 4 + 4 * Math.ceil(n / blockSize) + Math.ceil(n / 2);
}

/** `feedback`: error feedback (blocks.ts, QuantizeWith): code `src + owed` and write what is lost to `next`. */
export function encodeInt4(src: Float32Array, blockSize = INT4_BLOCK, feedback?: { readonly owed?: Float32Array; readonly next: Float32Array }): Uint8Array {
  return quantizeInt4(src, feedback ?? {}, blockSize);
}

/**
 * The change from `held` to `live`, int4-coded, and `held` moved by exactly
 * what the receiver will decode and add: the server side of an int4 pull.
 */
export function encodeInt4Change(live: Float32Array, held: Float32Array, blockSize = INT4_BLOCK): Uint8Array {
  return quantizeInt4(live, { held }, blockSize);
}

function quantizeInt4(src: Float32Array, w: QuantizeWith, blockSize: number): Uint8Array {
  checkBlockSize('int4', blockSize);
  const n = src.length;
  const scales = new Float32Array(Math.ceil(n / blockSize));
  const q = new Int8Array(n + 1); // one spare zero: the high nibble of an odd tail
  const out = new Uint8Array(int4Bytes(n, blockSize));
  const at = 4 + 4 * scales.length;
  const packed = quantizeBlocks(src, blockSize, 7, q, scales, w, out.subarray(at));
  writeBlockHeader(out, blockSize, scales);
  if (!packed) for (let k = 0, i = 0; i < n; k++, i += 2) out[at + k] = ((q[i] as number) & 0xf) | (((q[i + 1] as number) & 0xf) << 4);
  return out;
}

/** Each byte's low and high nibble, sign-extended; and whether either is -8 (refused). */
const LOW = new Int8Array(256).map((_, b) => (b << 28) >> 28);
const HIGH = new Int8Array(256).map((_, b) => (b << 24) >> 28);
const HAS_MINUS_8 = new Uint8Array(256).map((_, b) => ((b & 0xf) === 8 || b >> 4 === 8 ? 1 : 0));

export function decodeInt4(bytes: Uint8Array, n: number, name: string): Float32Array {
  const { blockSize, scales } = readBlockHeader('int4', bytes, n, name, int4Bytes);
  const packed = new Uint8Array(bytes.buffer, bytes.byteOffset + 4 + 4 * scales.length, Math.ceil(n / 2));
  if (n % 2 === 1 && (packed[packed.length - 1] as number) >> 4 !== 0) {
    throw new CodecError('CHUNK_INVALID', `int4 tensor "${name}": the unused high nibble after element ${n - 1} is not 0`, name);
  }
  const fast = dequantizeWasm('int4', packed, n, scales, blockSize);
  if (fast instanceof Float32Array) return fast;
  // The JavaScript loop: where WebAssembly cannot run, and to name the element that is -8.
  const out = new Float32Array(n);
  let bad = 0;
  for (let b = 0; b < scales.length; b++) {
    const scale = scales[b] as number;
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    let i = start;
    // An odd start: the block begins in a byte's high nibble.
    if ((i & 1) === 1 && i < end) {
      const byte = packed[i >> 1] as number;
      bad |= HAS_MINUS_8[byte] as number;
      out[i++] = (HIGH[byte] as number) * scale;
    }
    // Whole bytes: two elements each.
    for (; i + 1 < end; i += 2) {
      const byte = packed[i >> 1] as number;
      bad |= HAS_MINUS_8[byte] as number;
      out[i] = (LOW[byte] as number) * scale;
      out[i + 1] = (HIGH[byte] as number) * scale;
    }
    if (i < end) {
      const byte = packed[i >> 1] as number;
      if ((LOW[byte] as number) === -8) bad = 1;
      out[i] = (LOW[byte] as number) * scale;
    }
  }
  if (bad !== 0) {
    // Only the nibbles of elements count here: an odd tail's unused high nibble is checked below.
    for (let i = 0; i < n; i++) {
      const byte = packed[i >> 1] as number;
      if (((i & 1) === 0 ? LOW[byte] : HIGH[byte]) === -8) throw new CodecError('CHUNK_INVALID', `int4 tensor "${name}": element ${i} is -8 (symmetric int4 uses -7..7)`, name);
    }
  }
  return out;
}
