/**
 * Top-k sparsification on the wire: the k elements of largest magnitude, as
 * values plus positions. Positions are increasing, so they travel as the gaps
 * between them in LEB128 varints (one byte for gaps under 128: at 1% density
 * the mean gap is 100). Layout (little endian):
 *
 *   u32 k | f32 value × k | varint gap × k
 *
 * where the first gap is the first position and each later gap is
 * position[i] - position[i-1] - 1. The decoder refuses a position outside the
 * tensor, a count that does not match, and trailing or missing bytes.
 */
import { CodecError } from '../../errors.js';

/** k for a fraction of n elements: at least one element of a non-empty tensor. */
export function topkCount(n: number, fraction: number): number {
  if (n === 0) return 0;
  return Math.min(n, Math.max(1, Math.ceil(fraction * n)));
}

/** In-place quickselect: after it, a[kth] holds the value that sorted order would put there. */
function select(a: Float32Array, kth: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // Median of three as the pivot keeps sorted and constant runs linear on average.
    const mid = (lo + hi) >>> 1;
    const x = a[lo] as number;
    const y = a[mid] as number;
    const z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (kth <= j) hi = j;
    else if (kth >= i) lo = i;
    else break;
  }
  return a[kth] as number;
}

/**
 * The positions of the k largest magnitudes, in increasing order. Ties at the
 * threshold go to the lowest positions, so the choice is deterministic.
 * NaN counts as the largest magnitude (so it is sent, and refused).
 */
export function topkPositions(src: Float32Array, k: number): Uint32Array {
  const n = src.length;
  const out = new Uint32Array(k);
  if (k === 0) return out;
  const mags = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = src[i] as number;
    mags[i] = v === v ? Math.abs(v) : Infinity;
  }
  const threshold = select(mags, n - k);
  let above = 0;
  for (let i = 0; i < n; i++) {
    const v = src[i] as number;
    if ((v === v ? Math.abs(v) : Infinity) > threshold) above++;
  }
  let ties = k - above;
  let w = 0;
  for (let i = 0; i < n && w < k; i++) {
    const v = src[i] as number;
    const m = v === v ? Math.abs(v) : Infinity;
    if (m > threshold || (m === threshold && ties-- > 0)) out[w++] = i;
  }
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

/** Encode the given positions (increasing) and their values from `src`. */
export function encodeTopkAt(src: Float32Array, positions: Uint32Array): Uint8Array {
  const k = positions.length;
  let gapBytes = 0;
  let prev = -1;
  for (let i = 0; i < k; i++) {
    const p = positions[i] as number;
    gapBytes += varintLength(p - prev - 1);
    prev = p;
  }
  const out = new Uint8Array(4 + 4 * k + gapBytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, k, true);
  for (let i = 0; i < k; i++) view.setFloat32(4 + 4 * i, src[positions[i] as number] as number, true);
  let o = 4 + 4 * k;
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
  if (bytes.length < 4) fail(`${bytes.length} bytes cannot hold its count`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const k = view.getUint32(0, true);
  if (k > n) fail(`count ${k} exceeds the tensor's size`);
  // Every gap takes at least one byte: a count the payload cannot hold is refused before allocating for it.
  if (bytes.length < 4 + 5 * k) fail(`${bytes.length} bytes cannot hold ${k} values and positions`);
  const values = new Float32Array(k);
  for (let i = 0; i < k; i++) values[i] = view.getFloat32(4 + 4 * i, true);
  const positions = new Uint32Array(k);
  let o = 4 + 4 * k;
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
