import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { quantizeBlocks } from './blocks.js';
import { decodeFp16, encodeFp16, halfValue, toHalfBits } from './fp16.js';
import { decodeInt4, encodeInt4, encodeInt4Change } from './int4.js';
import { decodeInt8, encodeInt8 } from './int8.js';
import { encodeQuantizeModule } from './codec-kernels.js';
import { addFloats, quantizeKernels, setQuantizeKernels } from './quantize-wasm.js';

type Kind = 'wasm-simd' | 'js';
type Mode = 'plain' | 'held' | 'owed' | 'next';

afterEach(() => setQuantizeKernels('wasm-simd'));

/** Gradient-like values with the cases a quantizer must get right: zeros, subnormals, huge values, ±0, NaN and ±Infinity. */
const value = fc.oneof(
  { weight: 6, arbitrary: fc.float({ min: Math.fround(-1), max: Math.fround(1), noNaN: true }) },
  { weight: 1, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -0, 1e-45, -3e-43, 1e-40, 3.4028234663852886e38, -3.4028234663852886e38) },
  { weight: 1, arbitrary: fc.float({ min: Math.fround(-1e-38), max: Math.fround(1e-38), noNaN: true }) },
);
const special = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY);

function run(kind: Kind, src: Float32Array, blockSize: number, limit: number, mode: Mode, aux: Float32Array) {
  setQuantizeKernels(kind);
  const q = new Int8Array(src.length); // callers pass fresh codes: a block with nothing to send leaves them 0
  const scales = new Float32Array(Math.ceil(src.length / blockSize)).fill(99);
  const held = mode === 'held' ? aux.slice() : undefined;
  const owed = mode === 'owed' ? aux.slice() : undefined;
  const next = mode === 'owed' || mode === 'next' ? new Float32Array(src.length).fill(99) : undefined;
  let error: unknown;
  try {
    quantizeBlocks(src, blockSize, limit, q, scales, { ...(held && { held }), ...(owed && { owed }), ...(next && { next }) });
  } catch (e) {
    error = e;
  }
  const bits = (a: Float32Array | undefined) => (a === undefined ? undefined : Array.from(new Uint32Array(a.buffer)));
  return { q: Array.from(q), scales: bits(scales), held: bits(held), next: bits(next), error: error === undefined ? undefined : (error as Error).message };
}

describe('the WebAssembly SIMD quantizer', () => {
  it('is what this runtime uses (Node 20 has WebAssembly SIMD), so the comparisons below compare two loops', () => {
    expect(WebAssembly.validate(encodeQuantizeModule())).toBe(true);
    expect(quantizeKernels()).toBe('wasm-simd');
    setQuantizeKernels('js');
    expect(quantizeKernels()).toBe('js');
  });

  it('gives the JavaScript loop\'s codes, scales, held values and owed values bit for bit, for int8 and int4, in every mode', () => {
    fc.assert(
      fc.property(
        fc.array(value, { minLength: 1, maxLength: 600 }),
        fc.array(fc.float({ min: Math.fround(-0.01), max: Math.fround(0.01), noNaN: true }), { minLength: 600, maxLength: 600 }),
        fc.constantFrom(4, 8, 16, 64, 256),
        fc.constantFrom(127, 7),
        fc.constantFrom<Mode>('plain', 'held', 'owed', 'next'),
        fc.option(fc.tuple(fc.nat(), special), { freq: 4 }),
        (values, auxValues, blockSize, limit, mode, bad) => {
          const src = Float32Array.from(values);
          if (bad !== null) src[bad[0] % src.length] = bad[1];
          const aux = Float32Array.from(auxValues.slice(0, src.length));
          const simd = run('wasm-simd', src, blockSize, limit, mode, aux);
          const js = run('js', src, blockSize, limit, mode, aux);
          expect(simd.error).toBe(js.error);
          if (js.error !== undefined) {
            // A refused gradient: the JavaScript loop stops part way; the WebAssembly one writes nothing at all.
            expect(simd.next).toEqual(Array.from(new Uint32Array(new Float32Array(src.length).fill(99).buffer)));
            return;
          }
          expect(simd).toEqual(js);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('codes int4 to the JavaScript loop\'s bytes (its codes packed two a byte in WebAssembly), plain, with error feedback and as a change', () => {
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 700 }), fc.constantFrom(4, 8, 64), fc.constantFrom('plain', 'feedback', 'change'), (values, blockSize, mode) => {
        const src = Float32Array.from(values);
        const owed = src.map((x) => x / 7);
        const code = (kind: Kind) => {
          setQuantizeKernels(kind);
          if (mode === 'plain') return { bytes: encodeInt4(src, blockSize) };
          if (mode === 'change') {
            const held = owed.slice();
            return { bytes: encodeInt4Change(src, held, blockSize), held: Array.from(new Uint32Array(held.buffer)) };
          }
          const next = new Float32Array(src.length);
          try {
            return { bytes: encodeInt4(src, blockSize, { owed, next }), next: Array.from(new Uint32Array(next.buffer)) };
          } catch (e) {
            return { error: (e as Error).message };
          }
        };
        expect(code('wasm-simd')).toEqual(code('js'));
      }),
      { numRuns: 300 },
    );
  });

  // Block sizes include ones the WebAssembly loops leave to JavaScript (not a multiple of 4 for int8, of 8 for int4).
  it.each([
    ['int8', encodeInt8, decodeInt8, [4, 12, 256, 6], 4, /element 35 is -128/],
    ['int4', encodeInt4, decodeInt4, [8, 24, 64, 12], 8, /element 35 is -8/],
  ] as const)('decodes %s as the JavaScript loop does (odd lengths, several block sizes), and still names a refused code', (_, encode, decode, blockSizes, small, refused) => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 700 }), fc.constantFrom(...blockSizes), (values, blockSize) => {
        const bytes = encode(Float32Array.from(values), blockSize);
        setQuantizeKernels('js');
        const js = decode(bytes, values.length, 't');
        setQuantizeKernels('wasm-simd');
        expect(decode(bytes, values.length, 't')).toEqual(js);
      }),
    );
    // Element 35 of 37: int8's second-last byte, int4's second-last byte's high nibble.
    const bytes = encode(new Float32Array(37).fill(0.5), small);
    bytes[bytes.length - 2] = 0x80;
    expect(() => decode(bytes, 37, 't')).toThrow(refused);
  });

  it('codes fp16 as toHalfBits does, bit for bit: rounding to nearest even, subnormals, saturation at ±65504, NaN', () => {
    const bits = (x: Float32Array) => Array.from(new Uint16Array(encodeFp16(x).slice().buffer));
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.float(), fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((b) => new Float32Array(new Uint32Array([b]).buffer)[0] as number)), { maxLength: 300 }), (values) => {
        const x = Float32Array.from(values);
        expect(bits(x)).toEqual(Array.from(x, (v) => toHalfBits(v)));
      }),
      { numRuns: 300 },
    );
    // Every boundary class: ties on either side of even, the subnormal edges, the overflow edge, ±0, ±Infinity, NaN.
    const edges = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 65504, 65519.99, 65520, 1e20, -0, 0, Infinity, -Infinity, Number.NaN, -6.1e-5, 5.96e-8]);
    expect(bits(edges)).toEqual(Array.from(edges, (v) => toHalfBits(v)));
  });

  it('decodes every one of the 65,536 halves to the table\'s float32 (NaN to NaN)', () => {
    const halves = new Uint16Array(65536).map((_, i) => i);
    const out = decodeFp16(new Uint8Array(halves.buffer), 65536, 'h');
    const wrong = [];
    for (let h = 0; h < 65536; h++) {
      const want = halfValue(h);
      if (!(Object.is(out[h], want) || (Number.isNaN(want) && Number.isNaN(out[h])))) wrong.push(`${h.toString(16)}: ${out[h]} (want ${want})`);
    }
    expect(wrong).toEqual([]);
  });

  it('adds float32 arrays as JavaScript does, and refuses arrays of different lengths', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.float(), fc.float()), { maxLength: 300 }), (pairs) => {
        const into = Float32Array.from(pairs.map((p) => p[0]));
        const a = Float32Array.from(pairs.map((p) => p[1]));
        const expected = into.map((x, i) => (a[i] as number) + x);
        addFloats(into, a);
        expect(Array.from(new Uint32Array(into.buffer))).toEqual(Array.from(new Uint32Array(expected.buffer)));
      }),
    );
    expect(() => addFloats(new Float32Array(3), new Float32Array(2))).toThrow(RangeError);
  });

  it('grows its memory for a tensor larger than any before, and keeps working for small ones after', () => {
    // The memory starts at one 64 KiB page; the earlier tests' tensors fit in it.
    const big = new Float32Array(100_001).map((_, i) => Math.sin(i));
    const small = Float32Array.from([0.25, -1, 0.5]);
    for (const src of [small, big, small]) {
      const wasm = run('wasm-simd', src, 256, 127, 'held', src.map((x) => x / 3));
      expect(wasm).toEqual(run('js', src, 256, 127, 'held', src.map((x) => x / 3)));
    }
  });
});
