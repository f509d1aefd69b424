/**
 * Canonical Huffman coding with code lengths limited to 16 bits, for cluster
 * indices and the gaps between non-zero weights. A table of code lengths
 * (one byte per symbol) is all a decoder needs; bits are written most
 * significant first. Decoding checks every read, so a damaged stream is an
 * error, never an out-of-range access.
 */
import { ModelError } from '@tamp/core';

export const MAX_CODE_BITS = 16;

/** Code lengths (0: symbol unused) for the given symbol frequencies. */
export function huffmanLengths(frequencies: ArrayLike<number>): Uint8Array {
  const n = frequencies.length;
  let freq = Array.from(frequencies);
  for (;;) {
    const lengths = new Uint8Array(n);
    const used = freq.map((f, s) => ({ f, s })).filter((x) => x.f > 0);
    if (used.length === 0) return lengths;
    if (used.length === 1) {
      lengths[(used[0] as { s: number }).s] = 1;
      return lengths;
    }
    // Two-queue Huffman over sorted leaves: O(n log n) for the sort.
    type Node = { f: number; symbols: number[] };
    const leaves: Node[] = used.sort((a, b) => a.f - b.f || a.s - b.s).map((x) => ({ f: x.f, symbols: [x.s] }));
    const merged: Node[] = [];
    const take = (): Node => {
      const a = leaves[0];
      const b = merged[0];
      if (b === undefined || (a !== undefined && a.f <= b.f)) return leaves.shift() as Node;
      return merged.shift() as Node;
    };
    while (leaves.length + merged.length > 1) {
      const x = take();
      const y = take();
      for (const s of x.symbols) lengths[s] = (lengths[s] as number) + 1;
      for (const s of y.symbols) lengths[s] = (lengths[s] as number) + 1;
      merged.push({ f: x.f + y.f, symbols: x.symbols.concat(y.symbols) });
    }
    if (Math.max(...lengths) <= MAX_CODE_BITS) return lengths;
    // Too deep: flatten the distribution and try again.
    freq = freq.map((f) => (f > 0 ? Math.max(1, Math.floor(f / 2)) : 0));
  }
}

/** Canonical codes for code lengths: codes[s] (valid where lengths[s] > 0). */
function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const count = new Uint32Array(MAX_CODE_BITS + 1);
  for (const l of lengths) if (l > 0) count[l] = (count[l] as number) + 1;
  // The first code of length L is (first code of L−1 + codes of length L−1) << 1 (RFC 1951, 3.2.2).
  const next = new Uint32Array(MAX_CODE_BITS + 2);
  let code = 0;
  for (let bits = 1; bits <= MAX_CODE_BITS; bits++) {
    next[bits] = code;
    code = (code + (count[bits] as number)) << 1;
  }
  const codes = new Uint32Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s] as number;
    if (l > 0) {
      codes[s] = next[l] as number;
      next[l] = (next[l] as number) + 1;
    }
  }
  return codes;
}

export class BitWriter {
  private bytes: number[] = [];
  private current = 0;
  private filled = 0;
  bits = 0;

  write(code: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) {
      this.current = (this.current << 1) | ((code >>> i) & 1);
      this.filled++;
      this.bits++;
      if (this.filled === 8) {
        this.bytes.push(this.current);
        this.current = 0;
        this.filled = 0;
      }
    }
  }

  finish(): Uint8Array {
    const out = Uint8Array.from(this.bytes);
    if (this.filled === 0) return out;
    const last = new Uint8Array(out.length + 1);
    last.set(out);
    last[out.length] = this.current << (8 - this.filled);
    return last;
  }
}

export interface HuffmanStream {
  readonly lengths: Uint8Array;
  readonly data: Uint8Array;
  readonly bits: number;
}

export function huffmanEncode(symbols: ArrayLike<number>, alphabet: number): HuffmanStream {
  const freq = new Uint32Array(alphabet);
  for (let i = 0; i < symbols.length; i++) {
    const s = symbols[i] as number;
    // Internal: the .tamp writer passes gap symbols (< 256) and cluster indices it checked against the codebook first.
    if (s < 0 || s >= alphabet) throw new RangeError(`symbol ${s} outside the alphabet of ${alphabet}`);
    freq[s] = (freq[s] as number) + 1;
  }
  const lengths = huffmanLengths(freq);
  const codes = canonicalCodes(lengths);
  const w = new BitWriter();
  for (let i = 0; i < symbols.length; i++) {
    const s = symbols[i] as number;
    w.write(codes[s] as number, lengths[s] as number);
  }
  return { lengths, data: w.finish(), bits: w.bits };
}

/** Decode `count` symbols; throws ModelError on an invalid table or a short stream. */
export function huffmanDecode(stream: HuffmanStream, count: number, where = 'Huffman stream'): Uint16Array {
  const { lengths, data, bits } = stream;
  if (bits > data.length * 8) throw new ModelError('MODEL_INVALID', `${where}: claims ${bits} bits in ${data.length} bytes`);
  // Every code is at least one bit: checked before allocating the output.
  if (count > bits) throw new ModelError('MODEL_INVALID', `${where}: ${count} symbols cannot fit in ${bits} bits`);
  const counts = new Uint32Array(MAX_CODE_BITS + 1);
  for (const l of lengths) {
    if (l > MAX_CODE_BITS) throw new ModelError('MODEL_INVALID', `${where}: code length ${l} exceeds ${MAX_CODE_BITS}`);
    if (l > 0) counts[l] = (counts[l] as number) + 1;
  }
  // Kraft inequality: an over-subscribed table is corrupt.
  let space = 1;
  for (let l = 1; l <= MAX_CODE_BITS; l++) {
    space = space * 2 - (counts[l] as number);
    if (space < 0) throw new ModelError('MODEL_INVALID', `${where}: code lengths are over-subscribed (corrupt table)`);
  }
  // Symbols sorted by (length, symbol): the canonical order.
  const offsets = new Uint32Array(MAX_CODE_BITS + 2);
  for (let l = 1; l <= MAX_CODE_BITS; l++) offsets[l + 1] = (offsets[l] as number) + (counts[l] as number);
  const sorted = new Uint16Array(lengths.length);
  const fill = Uint32Array.from(offsets);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s] as number;
    if (l > 0) {
      sorted[fill[l] as number] = s;
      fill[l] = (fill[l] as number) + 1;
    }
  }
  const out = new Uint16Array(count);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    let code = 0;
    let first = 0;
    let index = 0;
    let found = false;
    for (let len = 1; len <= MAX_CODE_BITS; len++) {
      if (pos >= bits) throw new ModelError('MODEL_INVALID', `${where}: ends after ${i} of ${count} symbols`);
      code |= ((data[pos >>> 3] as number) >>> (7 - (pos & 7))) & 1;
      pos++;
      const c = counts[len] as number;
      if (code - first < c) {
        out[i] = sorted[index + code - first] as number;
        found = true;
        break;
      }
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
    if (!found) throw new ModelError('MODEL_INVALID', `${where}: invalid code at bit ${pos}`);
  }
  return out;
}
