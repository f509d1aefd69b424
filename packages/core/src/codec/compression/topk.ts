/**
 * Top-k sparsification on the wire: the k elements of largest magnitude, as
 * half-precision values under one power-of-two scale plus compactly coded
 * positions. Layout (little endian):
 *
 *   u32 k | f32 scale | f16 value × k | varint gap × k
 *
 * A value is half(bits) × scale. The scale is the power of two that puts the
 * largest sent magnitude in [2^14, 2^15), so dividing by it is exact and the
 * halves use their normal range (relative error at most 2^-11 for every value
 * at least 2^-28 of the largest; error feedback carries what rounding lost). A
 * NaN or infinite value gives a NaN scale, which the receiver refuses, as for
 * int8. Positions are increasing, so they travel as the gaps between them in
 * LEB128 varints (one byte for gaps under 128: at 1% density the mean gap is
 * 100); the first gap is the first position and each later gap is
 * position[i] - position[i-1] - 1. When k is the tensor's size (a dense
 * warm-up step, or a bias top-k sends whole) every position is sent and
 * no gaps follow: 2 bytes a value, half of float32. At 1% density an element
 * costs about 3.3 bytes, 0.008x of float32. The decoder refuses a position outside the
 * tensor, a count that does not match, a scale that is not finite or is
 * negative, a half that is not finite, and trailing or missing bytes.
 */
import { CodecError } from '../../errors.js';
import { halfValue, toHalfBits } from './fp16.js';

/** k for a fraction of n elements: at least one element of a non-empty tensor. */
export function topkCount(n: number, fraction: number): number {
  if (n === 0) return 0;
  return Math.min(n, Math.max(1, Math.ceil(fraction * n)));
}

/**
 * |x|'s float32 bits, NaN's as +Infinity's: non-negative floats order as these
 * integers do. Each loop below writes out `m > INF_BITS ? INF_BITS : m` itself:
 * a shared helper function measured about 10% slower (0.92 against 0.83 ms).
 */
const INF_BITS = 0x7f800000;

/** Radix-select scratch, one set per thread: counts of the top 15 and the low 16 bits of magnitudes, and index lists. */
let highCounts: Uint32Array | undefined;
let lowCounts: Uint32Array | undefined;
let sureScratch = new Uint32Array(0);
let candidateScratch = new Uint32Array(0);

/**
 * The positions of the k largest magnitudes, in increasing order. Ties at the
 * threshold go to the lowest positions, so the choice is deterministic.
 * NaN counts as the largest magnitude, tied with ±Infinity (so it is sent,
 * and refused).
 *
 * A radix select on the magnitudes' bits (a non-negative float's bits order as
 * the float does): one pass counts the top 15 bits and finds the bucket that
 * holds the k-th largest; a second lists the positions above that bucket and
 * those in it; the candidates' low 16 bits then fix the exact threshold, and
 * a merge by position gives the answer. Two passes over the tensor, where a
 * quickselect on a copy of the magnitudes took about eight times as long
 * (BENCHMARKS.md, "wire:codecs").
 */
export function topkPositions(src: Float32Array, k: number): Uint32Array {
  const n = src.length;
  const out = new Uint32Array(k);
  if (k === 0) return out;
  if (k === n) {
    for (let i = 0; i < n; i++) out[i] = i;
    return out;
  }
  const bits = new Uint32Array(src.buffer, src.byteOffset, n);
  const high = (highCounts ??= new Uint32Array(1 << 15));
  high.fill(0);
  for (let i = 0; i < n; i++) {
    const m = (bits[i] as number) & 0x7fffffff;
    const h = (m > INF_BITS ? INF_BITS : m) >>> 16;
    high[h] = (high[h] as number) + 1;
  }
  // The bucket b holding the k-th largest; `above` magnitudes lie in higher buckets (fewer than k).
  let b = high.length - 1;
  let above = 0;
  while (above + (high[b] as number) < k) above += high[b--] as number;
  const inBucket = high[b] as number;
  if (sureScratch.length < above) sureScratch = new Uint32Array(above);
  if (candidateScratch.length < inBucket) candidateScratch = new Uint32Array(inBucket);
  const sure = sureScratch;
  const candidates = candidateScratch;
  let sureCount = 0;
  let candidateCount = 0;
  for (let i = 0; i < n; i++) {
    const m = (bits[i] as number) & 0x7fffffff;
    const h = (m > INF_BITS ? INF_BITS : m) >>> 16;
    if (h > b) sure[sureCount++] = i;
    else if (h === b) candidates[candidateCount++] = i;
  }
  const low = (lowCounts ??= new Uint32Array(1 << 16));
  low.fill(0);
  for (let j = 0; j < candidateCount; j++) {
    const m = (bits[candidates[j] as number] as number) & 0x7fffffff;
    const l = (m > INF_BITS ? INF_BITS : m) & 0xffff;
    low[l] = (low[l] as number) + 1;
  }
  // The threshold's low bits t: `taken` magnitudes are above the threshold, and the rest of k are ties at it.
  let t = 0xffff;
  let taken = above;
  while (taken + (low[t] as number) < k) taken += low[t--] as number;
  let ties = k - taken;
  let w = 0;
  let s = 0;
  for (let j = 0; j < candidateCount; j++) {
    const i = candidates[j] as number;
    const m = (bits[i] as number) & 0x7fffffff;
    const l = (m > INF_BITS ? INF_BITS : m) & 0xffff;
    if (l > t || (l === t && ties-- > 0)) {
      while (s < sureCount && (sure[s] as number) < i) out[w++] = sure[s++] as number;
      out[w++] = i;
    }
  }
  while (s < sureCount) out[w++] = sure[s++] as number;
  return out;
}

function varintLength(v: number): number {
  let len = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    len++;
  }
  return len;
}

/** The header: count and scale. */
const HEADER_BYTES = 8;

/**
 * The power-of-two scale for values whose largest magnitude is `max`: NaN for
 * a non-finite max (refused by the receiver), 1 for zero.
 */
export function topkScale(max: number): number {
  if (!(max <= 3.4028234663852886e38)) return Number.NaN;
  if (max === 0) return 1;
  // 2^(e - 14) for max in [2^e, 2^(e+1)): max / scale lies in [2^14, 2^15), below half's largest finite 65504.
  const e = Math.floor(Math.log2(max));
  const exact = max >= 2 ** (e + 1) ? e + 1 : max < 2 ** e ? e - 1 : e; // log2 can be off by one near powers of two
  return 2 ** Math.max(exact - 14, -149);
}

/**
 * Encode the given positions (increasing) and their values from `src`. When
 * `sent` is given, it receives the values the receiver will decode, at the
 * same indices as `positions` (for error feedback).
 */
export function encodeTopkAt(src: Float32Array, positions: Uint32Array, sent?: Float32Array): Uint8Array {
  const k = positions.length;
  // All of the tensor: the positions are 0..n-1 and go without gaps.
  const whole = k === src.length;
  let gapBytes = 0;
  let prev = -1;
  let max = 0;
  let finite = true;
  for (let i = 0; i < k; i++) {
    const p = positions[i] as number;
    if (!whole) gapBytes += varintLength(p - prev - 1);
    prev = p;
    const a = Math.abs(src[p] as number);
    if (a > max) max = a;
    else if (a !== a) finite = false;
  }
  const scale = finite ? topkScale(max) : Number.NaN;
  const out = new Uint8Array(HEADER_BYTES + 2 * k + gapBytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, k, true);
  view.setFloat32(4, scale, true);
  const inv = 1 / scale;
  for (let i = 0; i < k; i++) {
    // scale is a power of two: the division is exact (NaN when the scale is).
    const h = toHalfBits((src[positions[i] as number] as number) * inv);
    view.setUint16(HEADER_BYTES + 2 * i, h, true);
    if (sent !== undefined) sent[i] = Math.fround(halfValue(h) * scale);
  }
  if (whole) return out;
  let o = HEADER_BYTES + 2 * k;
  prev = -1;
  for (let i = 0; i < k; i++) {
    const p = positions[i] as number;
    let gap = p - prev - 1;
    prev = p;
    while (gap >= 0x80) {
      out[o++] = (gap & 0x7f) | 0x80;
      gap = Math.floor(gap / 128);
    }
    out[o++] = gap;
  }
  return out;
}

export function encodeTopk(src: Float32Array, fraction: number): Uint8Array {
  return encodeTopkAt(src, topkPositions(src, topkCount(src.length, fraction)));
}

export interface SparseTensor {
  readonly positions: Uint32Array;
  readonly values: Float32Array;
}

/** Read a top-k payload for a tensor of `n` elements. */
export function decodeTopkSparse(bytes: Uint8Array, n: number, name: string): SparseTensor {
  const fail = (why: string): never => {
    throw new CodecError('CHUNK_INVALID', `top-k tensor "${name}" (${n} elements): ${why}`, name);
  };
  if (bytes.length < HEADER_BYTES) fail(`${bytes.length} bytes cannot hold its count and scale`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const k = view.getUint32(0, true);
  if (k > n) fail(`count ${k} exceeds the tensor's size`);
  // Every value takes two bytes and every gap at least one (none when all n are sent): a count the payload cannot hold is refused before allocating for it.
  const whole = k === n;
  if (bytes.length < HEADER_BYTES + (whole ? 2 : 3) * k) fail(`${bytes.length} bytes cannot hold ${k} values${whole ? '' : ' and positions'}`);
  const scale = view.getFloat32(4, true);
  if (!(scale >= 0 && scale <= 3.4e38)) fail(`scale ${scale} is not finite and non-negative (the sender's gradient was not finite)`);
  const values = new Float32Array(k);
  for (let i = 0; i < k; i++) {
    const h = view.getUint16(HEADER_BYTES + 2 * i, true);
    if ((h & 0x7c00) === 0x7c00) fail(`value ${i} is not a finite half`);
    values[i] = halfValue(h) * scale;
  }
  const positions = new Uint32Array(k);
  let o = HEADER_BYTES + 2 * k;
  if (whole) {
    for (let i = 0; i < k; i++) positions[i] = i;
    if (o !== bytes.length) fail(`${bytes.length - o} bytes follow the last of its ${n} values (a whole tensor carries no positions)`);
    return { positions, values };
  }
  let prev = -1;
  for (let i = 0; i < k; i++) {
    let gap = 0;
    let mul = 1;
    for (;;) {
      if (o >= bytes.length) fail(`position ${i} is truncated`);
      const b = bytes[o++] as number;
      gap += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) break;
      mul *= 128;
      if (mul > 2 ** 35) fail(`position ${i} is not a valid varint`);
    }
    const p = prev + 1 + gap;
    if (p >= n) fail(`position ${p} is outside the tensor`);
    positions[i] = p;
    prev = p;
  }
  if (o !== bytes.length) fail(`${bytes.length - o} bytes follow the last position`);
  return { positions, values };
}

export function decodeTopk(bytes: Uint8Array, n: number, name: string): Float32Array {
  const { positions, values } = decodeTopkSparse(bytes, n, name);
  const out = new Float32Array(n);
  for (let i = 0; i < positions.length; i++) out[positions[i] as number] = values[i] as number;
  return out;
}
