/**
 * int8 on the wire: symmetric, one float32 scale per block of elements
 * (scale = max |x| / 127 over the block), as QSGD-style and BytePS-style
 * quantizers do (blocks.ts). Layout (little endian):
 *
 *   u32 blockSize | f32 scale × ceil(n / blockSize) | i8 × n
 *
 * A block holding NaN or ±Infinity gets a NaN scale, so the receiver refuses
 * the tensor instead of silently sending zeros for it.
 */
import { CodecError } from '../../errors.js';
import { dequantizeWasm } from './quantize-wasm.js';
import { type QuantizeWith, checkBlockSize, quantizeBlocks, readBlockHeader, writeBlockHeader } from './blocks.js';

export const INT8_BLOCK = 256;

export function int8Bytes(n: number, blockSize = INT8_BLOCK): number {
  return 4 + 4 * Math.ceil(n / blockSize) + n;
}

/** `feedback`: error feedback (blocks.ts, QuantizeWith): code `src + owed` and write what is lost to `next`. */
export function encodeInt8(src: Float32Array, blockSize = INT8_BLOCK, feedback?: { readonly owed?: Float32Array; readonly next: Float32Array }): Uint8Array {
  return quantizeInt8(src, feedback ?? {}, blockSize);
}

/**
 * The change from `held` to `live`, int8-coded, and `held` moved by exactly
 * what the receiver will decode and add (float32 `held[i] + q[i] × scale`),
 * in one pass: the server side of an int8 pull (shard/pull-deltas.ts).
 */
export function encodeInt8Change(live: Float32Array, held: Float32Array, blockSize = INT8_BLOCK): Uint8Array {
  return quantizeInt8(live, { held }, blockSize);
}

function quantizeInt8(src: Float32Array, w: QuantizeWith, blockSize: number): Uint8Array {
  checkBlockSize('int8', blockSize);
  const n = src.length;
  const scales = new Float32Array(Math.ceil(n / blockSize));
  const out = new Uint8Array(int8Bytes(n, blockSize));
  quantizeBlocks(src, blockSize, 127, new Int8Array(out.buffer, 4 + 4 * scales.length, n), scales, w);
  writeBlockHeader(out, blockSize, scales);
  return out;
}

export function decodeInt8(bytes: Uint8Array, n: number, name: string): Float32Array {
  const { blockSize, scales } = readBlockHeader('int8', bytes, n, name, int8Bytes);
  const out = new Float32Array(n);
  const q = new Int8Array(bytes.buffer, bytes.byteOffset + 4 + 4 * scales.length, n);
  const fast = dequantizeWasm('int8', q, n, scales, blockSize);
  if (fast instanceof Float32Array) return fast;
  // The JavaScript loop: where WebAssembly cannot run, and to name the element that is -128.
  for (let b = 0; b < scales.length; b++) {
    const scale = scales[b] as number;
    const end = Math.min(n, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) {
      const v = q[i] as number;
      if (v === -128) throw new CodecError('CHUNK_INVALID', `int8 tensor "${name}": element ${i} is -128 (symmetric int8 uses -127..127)`, name);
      out[i] = v * scale;
    }
  }
  return out;
}
