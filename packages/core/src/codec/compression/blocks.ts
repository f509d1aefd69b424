/**
 * Symmetric block quantization, shared by int8 and int4 on the wire: each
 * block of `blockSize` elements gets one float32 scale (max |x| / limit) and
 * each element the nearest whole multiple of it in [-limit, limit]. A block
 * holding NaN or ±Infinity gets a NaN scale (its elements stay 0), so the
 * receiver refuses the tensor instead of reading zeros for it.
 */
import { CodecError } from '../../errors.js';
import { quantizeWasm } from './quantize-wasm.js';

/** The largest block a receiver accepts (bounds the scale array it reads, not an allocation). */
export const MAX_BLOCK = 1 << 20;
const MAX_F32 = 3.4028234663852886e38;

export function checkBlockSize(codec: string, blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK) {
    throw new CodecError('CHUNK_INVALID', `${codec} block size must be an integer in [1, ${MAX_BLOCK}], got ${blockSize}`);
  }
}

/**
 * What a quantizer does besides coding `src`:
 * - `held` (a change-coded pull): code `src − held`, then move `held` by
 *   exactly what the receiver decodes and adds (float32 `held[i] + q[i] × scale`);
 * - `next` (error feedback on a push): code `src + owed` (what earlier sends
 *   lost; none when absent) and write what this send loses to `next`, so a
 *   caller that keeps `next` only when the send succeeds never half-updates.
 */
export interface QuantizeWith {
  readonly held?: Float32Array;
  readonly owed?: Float32Array;
  readonly next?: Float32Array;
}

/**
 * Quantize `src` into `q` and `scales` (see QuantizeWith for `held` and
 * error feedback). Where it can, the WebAssembly SIMD twin of this loop runs
 * instead (quantize-wasm.ts: the same results, bit for bit); with `nibbles`
 * it also packs the codes there, two a byte (int4.ts's layout), and returns
 * true, leaving `q` untouched. False: the codes are in `q`.
 *
 * The JavaScript loops are written for V8: rounding is floor(v + 0.5) by
 * truncating a positive number, which is Math.round's half-up rounding
 * (with Math.round and a clamp, int4 took 1.3-2x as long and int8 up to 1.7x
 * in `pnpm bench:codecs`), and the finiteness test is folded into the
 * block's maximum.
 */
export function quantizeBlocks(src: Float32Array, blockSize: number, limit: number, q: Int8Array, scales: Float32Array, w: QuantizeWith = {}, nibbles?: Uint8Array): boolean {
  const n = src.length;
  const { held, owed, next } = w;
  for (const a of [held, owed, next]) if (a !== undefined && a.length !== n) throw new CodecError('CHUNK_INVALID', `quantize: ${n} values against ${a.length} held or owed`);
  const bad = quantizeWasm(src, blockSize, limit, q, scales, held, owed, next, nibbles);
  if (bad !== undefined) {
    if (bad >= 0 && next !== undefined) throw nonFiniteGradient(bad);
    return nibbles !== undefined;
  }
  const plain = held === undefined && owed === undefined;
  const d = plain ? src : new Float32Array(Math.min(n, blockSize));
  const bias = limit + 1.5;
  for (let b = 0; b < scales.length; b++) {
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    // The block's values are d[i - off]: src itself, or (in d) the change or the compensated gradient.
    const off = plain ? 0 : start;
    if (held !== undefined) for (let i = start; i < end; i++) d[i - start] = (src[i] as number) - (held[i] as number);
    else if (owed !== undefined) for (let i = start; i < end; i++) d[i - start] = (src[i] as number) + (owed[i] as number);
    let max = 0;
    let finite = true;
    for (let i = start; i < end; i++) {
      const a = Math.abs(d[i - off] as number);
      if (!(a <= MAX_F32)) finite = false;
      else if (a > max) max = a;
    }
    const scale = finite ? Math.fround(max / limit) : NaN;
    scales[b] = scale;
    // A receiver refuses the NaN scale; a sender with error feedback refuses it first, owing nothing new.
    if (next !== undefined && !finite) throw nonFiniteGradient(b);
    if (!(scale > 0)) {
      // Nothing sent from this block (all zero, or too small for a scale): all of it is still owed. The receiver
      // still adds its decoded zeros, which turn a held -0 into +0: so does held.
      if (next !== undefined) for (let i = start; i < end; i++) next[i] = d[i - off] as number;
      if (held !== undefined) for (let i = start; i < end; i++) held[i] = (held[i] as number) + 0;
      continue;
    }
    const inv = 1 / scale;
    for (let i = start; i < end; i++) {
      const v = d[i - off] as number;
      const r = (((v * inv + bias) | 0) - (limit + 1)) | 0;
      const k = r > limit ? limit : r < -limit ? -limit : r;
      q[i] = k;
      const sent = Math.fround(k * scale);
      if (held !== undefined) held[i] = (held[i] as number) + sent;
      if (next !== undefined) next[i] = v - sent;
    }
  }
  return false;
}

const nonFiniteGradient = (b: number) => new CodecError('CHUNK_INVALID', `block ${b} of a gradient holds NaN or ±Infinity: nothing was sent (the loss or learning rate diverged)`);

/** Read and check a block-quantized payload's header: its block size and scales (each finite and not negative). */
export function readBlockHeader(codec: string, bytes: Uint8Array, n: number, name: string, payloadBytes: (n: number, blockSize: number) => number): { blockSize: number; scales: Float32Array } {
  if (bytes.length < 4) throw new CodecError('CHUNK_INVALID', `${codec} tensor "${name}": ${bytes.length} bytes cannot hold its header`, name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blockSize = view.getUint32(0, true);
  if (blockSize < 1 || blockSize > MAX_BLOCK) throw new CodecError('CHUNK_INVALID', `${codec} tensor "${name}": block size ${blockSize} outside [1, ${MAX_BLOCK}]`, name);
  const expected = payloadBytes(n, blockSize);
  if (bytes.length !== expected) {
    throw new CodecError('CHUNK_INVALID', `${codec} tensor "${name}": ${bytes.length} bytes for ${n} elements in blocks of ${blockSize} (expected ${expected})`, name);
  }
  const scales = new Float32Array(Math.ceil(n / blockSize));
  for (let b = 0; b < scales.length; b++) {
    const scale = view.getFloat32(4 + 4 * b, true);
    if (!(scale >= 0 && scale <= MAX_F32)) {
      throw new CodecError('CHUNK_INVALID', `${codec} tensor "${name}": block ${b} has scale ${scale} (a scale is finite and not negative; the sender's gradient was not finite)`, name);
    }
    scales[b] = scale;
  }
  return { blockSize, scales };
}

/** Write a block-quantized payload's header (block size, scales) into `out`. */
export function writeBlockHeader(out: Uint8Array, blockSize: number, scales: Float32Array): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(0, blockSize, true);
  for (let b = 0; b < scales.length; b++) view.setFloat32(4 + 4 * b, scales[b] as number, true);
}
