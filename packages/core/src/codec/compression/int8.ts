/**
 * int8 on the wire: symmetric, one float32 scale per block of elements
 * (scale = max |x| / 127 over the block), as QSGD-style and BytePS-style
 * quantizers do. Layout (little endian):
 *
 *   u32 blockSize | f32 scale × ceil(n / blockSize) | i8 × n
 *
 * A block holding NaN or ±Infinity gets a NaN scale, so the receiver refuses
 * the tensor instead of silently sending zeros for it.
 */
import { CodecError } from '../../errors.js';

export const INT8_BLOCK = 256;
/** The largest block a receiver accepts (bounds the scale array it reads, not an allocation). */
const MAX_BLOCK = 1 << 20;

export function int8Bytes(n: number, blockSize = INT8_BLOCK): number {
  return 4 + 4 * Math.ceil(n / blockSize) + n;
}

export function encodeInt8(src: Float32Array, blockSize = INT8_BLOCK): Uint8Array {
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK) {
    throw new CodecError('CHUNK_INVALID', `int8 block size must be an integer in [1, ${MAX_BLOCK}], got ${blockSize}`);
  }
  const n = src.length;
  const blocks = Math.ceil(n / blockSize);
  const out = new Uint8Array(int8Bytes(n, blockSize));
  const view = new DataView(out.buffer);
  view.setUint32(0, blockSize, true);
  const q = new Int8Array(out.buffer, 4 + 4 * blocks, n);
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    let max = 0;
    let finite = true;
    for (let i = start; i < end; i++) {
      const a = Math.abs(src[i] as number);
      if (!(a <= Number.MAX_VALUE)) finite = false;
      else if (a > max) max = a;
    }
    const scale = finite ? Math.fround(max / 127) : NaN;
    view.setFloat32(4 + 4 * b, scale, true);
    if (scale > 0) {
      const inv = 1 / scale;
      for (let i = start; i < end; i++) q[i] = Math.max(-127, Math.min(127, Math.round((src[i] as number) * inv)));
    }
  }
  return out;
}

export function decodeInt8(bytes: Uint8Array, n: number, name: string): Float32Array {
  if (bytes.length < 4) throw new CodecError('CHUNK_INVALID', `int8 tensor "${name}": ${bytes.length} bytes cannot hold its header`, name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blockSize = view.getUint32(0, true);
  if (blockSize < 1 || blockSize > MAX_BLOCK) throw new CodecError('CHUNK_INVALID', `int8 tensor "${name}": block size ${blockSize} outside [1, ${MAX_BLOCK}]`, name);
  const expected = int8Bytes(n, blockSize);
  if (bytes.length !== expected) {
    throw new CodecError('CHUNK_INVALID', `int8 tensor "${name}": ${bytes.length} bytes for ${n} elements in blocks of ${blockSize} (expected ${expected})`, name);
  }
  const blocks = Math.ceil(n / blockSize);
  const out = new Float32Array(n);
  const q = new Int8Array(bytes.buffer, bytes.byteOffset + 4 + 4 * blocks, n);
  for (let b = 0; b < blocks; b++) {
    const scale = view.getFloat32(4 + 4 * b, true);
    if (!(scale >= 0 && scale <= 3.4e38)) {
      throw new CodecError('CHUNK_INVALID', `int8 tensor "${name}": block ${b} has scale ${scale} (a scale is finite and not negative; the sender's gradient was not finite)`, name);
    }
    const end = Math.min(n, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) {
      const v = q[i] as number;
      if (v === -128) throw new CodecError('CHUNK_INVALID', `int8 tensor "${name}": element ${i} is -128 (symmetric int8 uses -127..127)`, name);
      out[i] = v * scale;
    }
  }
  return out;
}
