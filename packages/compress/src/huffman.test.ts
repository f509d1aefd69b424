import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelError, Random } from '@tamp/core';
import { MAX_CODE_BITS, huffmanDecode, huffmanEncode, huffmanLengths } from './huffman.js';

describe('canonical Huffman', () => {
  it('round-trips uniform data at about log2(alphabet) bits per symbol', () => {
    const r = new Random(1);
    const symbols = Uint16Array.from({ length: 20_000 }, () => r.int(32));
    const s = huffmanEncode(symbols, 32);
    expect(Array.from(huffmanDecode(s, symbols.length))).toEqual(Array.from(symbols));
    expect(s.bits / symbols.length).toBeGreaterThan(4.9);
    expect(s.bits / symbols.length).toBeLessThan(5.1);
  });

  it('round-trips skewed data below its fixed-width size', () => {
    const r = new Random(2);
    // Geometric: most symbols small, like gaps between non-zero weights.
    const symbols = Uint16Array.from({ length: 20_000 }, () => Math.min(255, Math.floor(-Math.log(1 - r.next()) * 3)));
    const s = huffmanEncode(symbols, 256);
    expect(Array.from(huffmanDecode(s, symbols.length))).toEqual(Array.from(symbols));
    expect(s.bits / symbols.length).toBeLessThan(3.5);
  });

  it('handles a single symbol, an empty stream, and limits code lengths to 16 bits', () => {
    const one = huffmanEncode(new Uint16Array(100).fill(7), 10);
    expect(Array.from(huffmanDecode(one, 100))).toEqual(new Array<number>(100).fill(7));
    expect(huffmanDecode(huffmanEncode(new Uint16Array(0), 4), 0).length).toBe(0);
    // Fibonacci frequencies make the deepest possible tree.
    const fib = [1, 1];
    while (fib.length < 40) fib.push((fib[fib.length - 1] as number) + (fib[fib.length - 2] as number));
    expect(Math.max(...huffmanLengths(fib))).toBeLessThanOrEqual(MAX_CODE_BITS);
  });

  it('refuses damaged tables and short streams', () => {
    const s = huffmanEncode(Uint16Array.from([0, 1, 2, 3, 3, 3]), 4);
    expect(() => huffmanDecode({ ...s, lengths: Uint8Array.from([1, 1, 1, 1]) }, 6)).toThrow(/over-subscribed/);
    expect(() => huffmanDecode({ ...s, bits: s.bits - 3 }, 6)).toThrow(ModelError);
    expect(() => huffmanDecode({ ...s, bits: 1000 }, 6)).toThrow(/claims 1000 bits/);
  });

  it('round-trips any symbols (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 63 }), { maxLength: 500 }), (arr) => {
        const s = huffmanEncode(arr, 64);
        expect(Array.from(huffmanDecode(s, arr.length))).toEqual(arr);
      }),
      { numRuns: 200, seed: 3 },
    );
  });
});
