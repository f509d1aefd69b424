import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../../errors.js';
import { type AdamCorrection, AdamDirection, clipScale, dgcAdamCorrection, dgcDensity, dgcMomentumCorrection, DgcSender } from './dgc.js';
import { ErrorFeedback } from './feedback.js';
import { decodeFp16, encodeFp16, toHalfBits } from './fp16.js';
import { decodeInt4, encodeInt4, encodeInt4Change, int4Bytes } from './int4.js';
import { decodeInt8, encodeInt8, encodeInt8Change, int8Bytes } from './int8.js';
import { decodeTopk, decodeTopkSparse, encodeTopk, encodeTopkAt, topkCount, topkPositions, topkScale } from './topk.js';
import { decodeWire, encodeWire, parseWireCodec } from './wire-codec.js';

const floats = (max = 1e4) => fc.float({ min: Math.fround(-max), max: Math.fround(max), noNaN: true, noDefaultInfinity: true });
const arrays = (max?: number) => fc.array(floats(max), { minLength: 0, maxLength: 700 }).map((a) => Float32Array.from(a));

function invalid(f: () => unknown): CodecError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CodecError);
    expect((e as CodecError).code).toBe('CHUNK_INVALID');
    return e as CodecError;
  }
  throw new Error('expected a CHUNK_INVALID error');
}

describe('fp16', () => {
  it('round trips within half precision (relative 2^-11, or 2^-25 absolute near zero)', () => {
    fc.assert(
      fc.property(arrays(60_000), (a) => {
        const d = decodeFp16(encodeFp16(a), a.length, 't');
        for (let i = 0; i < a.length; i++) {
          const x = a[i] as number;
          expect(Math.abs((d[i] as number) - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
        }
      }),
    );
  });
  it('rounds to nearest even, saturates instead of overflowing, keeps NaN', () => {
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00); // a tie: to even
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toHalfBits(2 ** -24)).toBe(1); // the smallest subnormal
    expect(toHalfBits(1e20)).toBe(0x7bff);
    expect(toHalfBits(-Infinity)).toBe(0xfbff);
    expect(Number.isNaN(decodeFp16(encodeFp16(new Float32Array([NaN])), 1, 't')[0])).toBe(true);
    expect(decodeFp16(encodeFp16(new Float32Array([70_000])), 1, 't')[0]).toBe(65504);
  });
  it('refuses a payload of the wrong length', () => {
    invalid(() => decodeFp16(new Uint8Array(5), 3, 't'));
  });
});

describe('int8', () => {
  it('round trips within half a step of each block (scale / 2)', () => {
    fc.assert(
      fc.property(arrays(), (a) => {
        const bytes = encodeInt8(a, 64);
        expect(bytes.length).toBe(int8Bytes(a.length, 64));
        const d = decodeInt8(bytes, a.length, 't');
        for (let b = 0; b * 64 < a.length; b++) {
          const block = a.subarray(b * 64, (b + 1) * 64);
          const scale = Math.fround(block.reduce((m, x) => Math.max(m, Math.abs(x)), 0) / 127);
          for (let i = 0; i < block.length; i++) expect(Math.abs((d[b * 64 + i] as number) - (block[i] as number))).toBeLessThanOrEqual(scale / 2 + 1e-6 * scale + 1e-42); // below 127 subnormals a block rounds to zero
        }
      }),
    );
  });
  it('rounds each element to the nearest step as Math.round does (half up), within ±127', () => {
    fc.assert(
      fc.property(arrays(), (a) => {
        const bytes = encodeInt8(a, 64);
        const blocks = Math.ceil(a.length / 64);
        const q = new Int8Array(bytes.buffer, 4 + 4 * blocks, a.length);
        const view = new DataView(bytes.buffer);
        for (let i = 0; i < a.length; i++) {
          const scale = view.getFloat32(4 + 4 * Math.floor(i / 64), true);
          const expected = scale > 0 ? Math.max(-127, Math.min(127, Math.round((a[i] as number) * (1 / scale)))) + 0 : 0; // + 0: an Int8Array holds no -0
          expect(q[i]).toBe(expected);
        }
      }),
    );
  });
  it('is about a quarter of float32 (0.27x at most for the default block)', () => {
    expect(int8Bytes(1_000_000) / 4_000_000).toBeLessThan(0.27);
  });
  it('refuses a NaN scale (a non-finite gradient), -128, truncation and a bad block size', () => {
    const nan = encodeInt8(new Float32Array([1, NaN, 3]));
    expect(invalid(() => decodeInt8(nan, 3, 'g')).message).toMatch(/scale NaN/);
    const ok = encodeInt8(new Float32Array([1, 2, 3]));
    const bad = ok.slice();
    bad[ok.length - 1] = 0x80;
    invalid(() => decodeInt8(bad, 3, 'g'));
    invalid(() => decodeInt8(ok.subarray(0, ok.length - 1), 3, 'g'));
    const zeroBlock = ok.slice();
    new DataView(zeroBlock.buffer).setUint32(0, 0, true);
    invalid(() => decodeInt8(zeroBlock, 3, 'g'));
    invalid(() => decodeInt8(ok, 4, 'g')); // count mismatch
  });
});

describe('int4', () => {
  /** Element i's 4-bit value, sign-extended. */
  const nibble = (bytes: Uint8Array, blocks: number, i: number) => {
    const byte = bytes[4 + 4 * blocks + (i >> 1)] as number;
    return (i & 1) === 0 ? (byte << 28) >> 28 : (byte << 24) >> 28;
  };
  it('rounds each element to the nearest of 15 steps per block (half up), and decodes within half a step', () => {
    fc.assert(
      fc.property(arrays(), (a) => {
        const bytes = encodeInt4(a, 16);
        const blocks = Math.ceil(a.length / 16);
        expect(bytes.length).toBe(int4Bytes(a.length, 16));
        const view = new DataView(bytes.buffer);
        const d = decodeInt4(bytes, a.length, 't');
        for (let i = 0; i < a.length; i++) {
          const b = Math.floor(i / 16);
          const block = a.subarray(b * 16, (b + 1) * 16);
          const scale = Math.fround(block.reduce((m, x) => Math.max(m, Math.abs(x)), 0) / 7);
          expect(view.getFloat32(4 + 4 * b, true)).toBe(scale);
          const expected = scale > 0 ? Math.max(-7, Math.min(7, Math.round((a[i] as number) * (1 / scale)))) + 0 : 0;
          expect(nibble(bytes, blocks, i)).toBe(expected);
          expect(Math.abs((d[i] as number) - (a[i] as number))).toBeLessThanOrEqual(scale / 2 + 1e-6 * scale + 1e-42);
        }
      }),
    );
  });
  it('decodes blocks of any size, odd ones starting in a high nibble', () => {
    fc.assert(
      fc.property(arrays(), fc.integer({ min: 1, max: 9 }), (a, block) => {
        const d = decodeInt4(encodeInt4(a, block), a.length, 't');
        for (let i = 0; i < a.length; i++) {
          const b = Math.floor(i / block);
          const scale = Math.fround(a.subarray(b * block, (b + 1) * block).reduce((m, x) => Math.max(m, Math.abs(x)), 0) / 7);
          expect(Math.abs((d[i] as number) - (a[i] as number))).toBeLessThanOrEqual(scale / 2 + 1e-6 * scale + 1e-42);
        }
      }),
    );
  });
  it('is about an eighth of float32 (0.141x at most for the default block)', () => {
    expect(int4Bytes(1_000_000) / 4_000_000).toBeLessThanOrEqual(0.1407);
    expect(int4Bytes(3, 64)).toBe(4 + 4 + 2);
  });
  it('refuses a NaN scale, -8 in either nibble, a used padding nibble, truncation, a count mismatch and a bad block size', () => {
    expect(invalid(() => decodeInt4(encodeInt4(new Float32Array([1, Infinity, 3])), 3, 'g')).message).toMatch(/scale Infinity|scale NaN/);
    const ok = encodeInt4(new Float32Array([1, 2, 3]));
    expect(decodeInt4(ok, 3, 'g')).toEqual(Float32Array.from([1, 2, 3].map((x) => Math.round((x * 7) / 3) * Math.fround(3 / 7))));
    const low = ok.slice();
    low[ok.length - 2] = ((low[ok.length - 2] as number) & 0xf0) | 0x8;
    expect(invalid(() => decodeInt4(low, 3, 'g')).message).toMatch(/element 0 is -8/);
    const high = ok.slice();
    high[ok.length - 2] = ((high[ok.length - 2] as number) & 0x0f) | 0x80;
    expect(invalid(() => decodeInt4(high, 3, 'g')).message).toMatch(/element 1 is -8/);
    const padding = ok.slice();
    padding[ok.length - 1] = ((padding[ok.length - 1] as number) & 0x0f) | 0x10;
    expect(invalid(() => decodeInt4(padding, 3, 'g')).message).toMatch(/high nibble/);
    invalid(() => decodeInt4(ok.subarray(0, ok.length - 1), 3, 'g'));
    invalid(() => decodeInt4(ok, 5, 'g')); // 5 elements take 3 bytes of nibbles, not 2
    invalid(() => decodeInt4(ok, 1, 'g'));
    const zeroBlock = ok.slice();
    new DataView(zeroBlock.buffer).setUint32(0, 0, true);
    invalid(() => decodeInt4(zeroBlock, 3, 'g'));
    invalid(() => encodeInt4(new Float32Array(3), 0));
  });
});

describe('change-coded pulls', () => {
  it.each([
    ['int8', encodeInt8, encodeInt8Change, decodeInt8],
    ['int4', encodeInt4, encodeInt4Change, decodeInt4],
  ] as const)('%s codes a change exactly as it codes the float32 difference, and moves the held values by what the receiver adds', (_, encode, encodeChange, decode) => {
    fc.assert(
      fc.property(fc.array(fc.tuple(floats(100), floats(100)), { maxLength: 400 }), (pairs) => {
        const live = Float32Array.from(pairs.map((p) => p[0]));
        const held = Float32Array.from(pairs.map((p) => p[1]));
        const change = live.map((x, i) => x - (held[i] as number));
        const receiver = held.slice();
        const bytes = encodeChange(live, held, 16);
        expect(bytes).toEqual(encode(change, 16));
        const sent = decode(bytes, live.length, 'p');
        for (let i = 0; i < receiver.length; i++) receiver[i] = (receiver[i] as number) + (sent[i] as number);
        expect(held).toEqual(receiver);
      }),
    );
    invalid(() => encodeChange(new Float32Array(3), new Float32Array(2)));
    // A block with nothing to send: the receiver adds decoded zeros, so a held -0 becomes +0 on both sides.
    const held = Float32Array.from([-0, -0]);
    const receiver = held.slice();
    const sent = decode(encodeChange(Float32Array.from([0, 0]), held, 16), 2, 'p');
    for (let i = 0; i < 2; i++) receiver[i] = (receiver[i] as number) + (sent[i] as number);
    expect([...held, ...receiver].map((x) => Object.is(x, 0))).toEqual([true, true, true, true]);
  });
});

describe('top-k', () => {
  /** The k largest magnitudes by sorting (NaN as Infinity; ties to the lowest positions), in increasing position. */
  const byMagnitude = (a: Float32Array): number[] => {
    const mag = (x: number) => (Number.isNaN(x) ? Infinity : Math.abs(x));
    return [...a.keys()].sort((i, j) => mag(a[j] as number) - mag(a[i] as number) || i - j);
  };
  const sortedTopk = (a: Float32Array, k: number, order = byMagnitude(a)): number[] => order.slice(0, k).sort((i, j) => i - j);
  // fast-check favours the first constants: the infinities and NaN lead.
  const specials = [Infinity, Number.NaN, -Infinity, 0, -0, 1, -1, 0.5, -2, 1e-45, -1e-45, 1.17549435e-38, 3.4028234663852886e38];
  it('selects the same positions as sorting, ties to the lowest positions, NaN tied with Infinity', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          arrays(),
          // Many ties, and the special values: zeros of both signs, subnormals, the largest float, NaN, infinities.
          fc.array(fc.constantFrom(...specials), { maxLength: 300 }).map((a) => Float32Array.from(a)),
          // Magnitudes that share their top bits and differ in the low ones (one radix bucket).
          fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 300 }).map((a) => new Float32Array(Uint32Array.from(a, (x) => 0x3f800000 + x).buffer)),
        ),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (a, f) => {
          const k = Math.round(f * a.length);
          expect([...topkPositions(a, k)]).toEqual(sortedTopk(a, k));
        },
      ),
    );
  });
  it('counts NaN as tied with Infinity: the lowest positions of either go first', () => {
    expect([...topkPositions(Float32Array.from([1, Infinity, Number.NaN, -Infinity, Number.NaN]), 2)]).toEqual([1, 2]);
    expect([...topkPositions(Float32Array.from([-Infinity, Number.NaN, 3]), 1)]).toEqual([0]);
  });
  it('selects from a large tensor as sorting does, in a view that starts inside its buffer', () => {
    const buffer = new Float32Array(100_001);
    let seed = 7;
    for (let i = 0; i < buffer.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      // Gradient-like: mostly small, every 50th about 20x larger, and repeated values for ties.
      buffer[i] = ((seed % 2001) - 1000) * (i % 50 === 0 ? 2e-5 : 1e-6);
    }
    const a = buffer.subarray(1);
    const order = byMagnitude(a);
    for (const k of [1, 1000, 10_000, 99_999]) expect([...topkPositions(a, k)]).toEqual(sortedTopk(a, k, order));
  });
  it('keeps exactly the k largest magnitudes, in order, and zeros the rest', () => {
    fc.assert(
      fc.property(arrays(), fc.double({ min: 0.001, max: 1, noNaN: true }), (a, f) => {
        const k = topkCount(a.length, f);
        const d = decodeTopk(encodeTopk(a, f), a.length, 't');
        const kept = [...d.keys()].filter((i) => d[i] !== 0 || topkPositions(a, k).includes(i));
        const pos = [...topkPositions(a, k)];
        expect(pos).toHaveLength(k);
        expect(pos).toEqual([...pos].sort((x, y) => x - y));
        const sortedMags = [...a].map(Math.abs).sort((x, y) => y - x);
        const threshold = k > 0 ? (sortedMags[k - 1] as number) : Infinity;
        for (const i of pos) expect(Math.abs(a[i] as number)).toBeGreaterThanOrEqual(threshold);
        for (let i = 0; i < a.length; i++) if (!pos.includes(i)) expect(Math.abs(a[i] as number)).toBeLessThanOrEqual(threshold);
        // Half precision under a power-of-two scale: relative 2^-11, or the scale's smallest half step near zero.
        const scale = new DataView(encodeTopk(a, f).buffer).getFloat32(4, true);
        for (const i of pos) expect(Math.abs((d[i] as number) - (a[i] as number))).toBeLessThanOrEqual(2 ** -11 * Math.abs(a[i] as number) + 2 ** -25 * scale);
        expect(kept.length).toBeLessThanOrEqual(k);
      }),
    );
  });
  it('reports exactly what the receiver decodes, and scales by a power of two that keeps the largest value in [2^14, 2^15)', () => {
    fc.assert(
      fc.property(arrays(3e38), fc.double({ min: 0.001, max: 1, noNaN: true }), (a, f) => {
        const pos = topkPositions(a, topkCount(a.length, f));
        const sent = new Float32Array(pos.length);
        const bytes = encodeTopkAt(a, pos, sent);
        const got = decodeTopkSparse(bytes, a.length, 't');
        expect([...got.values]).toEqual([...sent]);
        const max = Math.max(0, ...[...pos].map((p) => Math.abs(a[p] as number)));
        const scale = topkScale(max);
        expect(Number.isInteger(Math.log2(scale))).toBe(true);
        if (max > 2 ** -130) {
          expect(max / scale).toBeGreaterThanOrEqual(2 ** 14);
          expect(max / scale).toBeLessThan(2 ** 15);
        }
      }),
    );
    expect(topkScale(0)).toBe(1);
    expect(topkScale(2 ** 14)).toBe(1);
    expect(topkScale(2 ** 15 - 1)).toBe(1);
    expect(topkScale(2 ** 15)).toBe(2);
    expect(topkScale(Number.POSITIVE_INFINITY)).toBeNaN();
  });
  it('sends 1% of a gradient in under 1% of its float32 bytes (half values, varint gaps)', () => {
    const a = Float32Array.from({ length: 266_200 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
    expect(encodeTopk(a, 0.01).length / a.byteLength).toBeLessThan(0.009);
  });
  it('a NaN or infinite value makes a NaN scale, which the receiver refuses', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const bytes = encodeTopk(new Float32Array([1, bad, -3, 0.5]), 0.5);
      expect(invalid(() => decodeTopk(bytes, 4, 't')).message).toMatch(/scale NaN/);
    }
    // A half that is not finite (exponent all ones) is refused too.
    const ok = encodeTopk(new Float32Array([1, 2, 3, 4]), 0.5);
    const inf = ok.slice();
    new DataView(inf.buffer).setUint16(8, 0x7c00, true);
    expect(invalid(() => decodeTopk(inf, 4, 't')).message).toMatch(/not a finite half/);
    const negative = ok.slice();
    new DataView(negative.buffer).setFloat32(4, -1, true);
    invalid(() => decodeTopk(negative, 4, 't'));
  });
  it('refuses positions out of range, count mismatches, truncation and trailing bytes', () => {
    const a = new Float32Array([0, 5, 0, -7, 0]);
    const ok = encodeTopk(a, 0.4);
    expect([...decodeTopkSparse(ok, 5, 't').positions]).toEqual([1, 3]);
    invalid(() => decodeTopk(ok, 3, 't')); // position 3 outside a 3-element tensor
    const more = ok.slice();
    new DataView(more.buffer).setUint32(0, 3, true);
    invalid(() => decodeTopk(more, 5, 't'));
    invalid(() => decodeTopk(ok.subarray(0, ok.length - 1), 5, 't'));
    invalid(() => decodeTopk(Uint8Array.from([...ok, 0]), 5, 't'));
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, 0xffffffff, true);
    invalid(() => decodeTopk(huge, 1 << 30, 't')); // refused before allocating 4 billion values
  });
  it('sends a whole tensor as its values alone (2 bytes each, no positions), and refuses one with a byte too many or too few', () => {
    const a = new Float32Array([0.5, -2, 0, 3, 1.25]);
    const whole = encodeTopk(a, 1);
    expect(whole.length).toBe(8 + 2 * a.length);
    expect([...decodeTopkSparse(whole, 5, 't').positions]).toEqual([0, 1, 2, 3, 4]);
    expect([...decodeTopk(whole, 5, 't')]).toEqual([...a]);
    invalid(() => decodeTopk(Uint8Array.from([...whole, 0]), 5, 't'));
    invalid(() => decodeTopk(whole.subarray(0, whole.length - 1), 5, 't'));
    // The same count for a larger tensor is a sparse payload, which needs positions.
    invalid(() => decodeTopk(whole, 6, 't'));
  });
});

describe('error feedback', () => {
  it('int8 and int4 fold error feedback into their pass: the bytes of g + owed, and what the receiver will not see is owed next', () => {
    for (const [encode, decode] of [
      [encodeInt8, decodeInt8],
      [encodeInt4, decodeInt4],
    ] as const) {
      fc.assert(
        fc.property(fc.array(fc.tuple(floats(100), floats(1)), { maxLength: 300 }), (pairs) => {
          const g = Float32Array.from(pairs.map((p) => p[0]));
          const owed = Float32Array.from(pairs.map((p) => p[1]));
          const compensated = g.map((x, i) => x + (owed[i] as number));
          const next = new Float32Array(g.length);
          const bytes = encode(g, 16, { owed, next });
          expect(bytes).toEqual(encode(compensated, 16));
          const sent = decode(bytes, g.length, 'g');
          expect(next).toEqual(compensated.map((x, i) => x - (sent[i] as number)));
        }),
      );
      // Nothing owed yet: g itself.
      const g = Float32Array.from([0.5, -2, 3]);
      const next = new Float32Array(3);
      expect(encode(g, 16, { next })).toEqual(encode(g, 16));
      // A non-finite gradient is refused before anything is sent, and `next` is the caller's to drop.
      expect(invalid(() => encode(Float32Array.from([1, Number.NaN]), 16, { next: new Float32Array(2) })).message).toMatch(/NaN or ±Infinity/);
    }
  });
  it.each([
    ['int8', encodeInt8, decodeInt8],
    ['int4', encodeInt4, decodeInt4],
  ] as const)('%s: accumulates exactly what the codec dropped, so sums over steps are preserved', (_, encode, decode) => {
    fc.assert(
      fc.property(fc.array(arrays(10).filter((a) => a.length === 0 || a.length > 0), { minLength: 1, maxLength: 6 }), (steps) => {
        const n = 37;
        const grads = steps.map((s) => Float32Array.from({ length: n }, (_, i) => s[i % Math.max(1, s.length)] ?? 0));
        const fb = new ErrorFeedback();
        const received = new Float64Array(n);
        for (const g of grads) {
          const owed = fb.residual('w');
          const c = owed === undefined ? g.slice() : g.map((x, i) => x + (owed[i] as number));
          // The spent residual from two steps back, its stale values overwritten by junk: the codec must write every element.
          const next = fb.scratch('w', n).fill(12_345);
          const sent = decode(encode(g, 16, { ...(owed !== undefined ? { owed } : {}), next }), n, 'w');
          fb.keep('w', next);
          for (let i = 0; i < n; i++) received[i] = (received[i] as number) + (sent[i] as number);
          // What was compensated = what was sent + what is now owed, element by element.
          const r = fb.residual('w') as Float32Array;
          for (let i = 0; i < n; i++) expect(r[i]).toBe(Math.fround((c[i] as number) - (sent[i] as number)));
        }
        const r = fb.residual('w') as Float32Array;
        for (let i = 0; i < n; i++) {
          const total = grads.reduce((s, g) => s + (g[i] as number), 0);
          expect(Math.abs((received[i] as number) + (r[i] as number) - total)).toBeLessThanOrEqual(1e-3 * (1 + Math.abs(total)));
        }
      }),
    );
  });
});

describe('ErrorFeedback', () => {
  it('hands back the residual a keep replaced as the next scratch array, once, and only of the asked length', () => {
    const fb = new ErrorFeedback();
    const a = fb.scratch('w', 4);
    fb.keep('w', a);
    const b = fb.scratch('w', 4);
    expect(b).not.toBe(a); // a is what is owed now
    fb.keep('w', b);
    expect(fb.residual('w')).toBe(b);
    expect(fb.scratch('w', 4)).toBe(a);
    expect(fb.scratch('w', 4)).not.toBe(a); // handed out once
    fb.keep('w', fb.scratch('w', 4));
    expect(fb.scratch('w', 5)).toHaveLength(5);
    fb.keep('w', fb.scratch('w', 4));
    fb.reset();
    expect(fb.residual('w')).toBeUndefined();
    expect(fb.scratch('w', 4)).not.toBe(b);
  });
});

describe('deep gradient compression', () => {
  it('warms up from dense to the target density in quarter steps', () => {
    const o = { fraction: 0.01, momentum: 0.9, warmupSteps: 100 };
    expect(dgcDensity(0, o)).toBe(1);
    const seen = new Set(Array.from({ length: 100 }, (_, s) => dgcDensity(s, o)));
    expect([...seen]).toEqual([1, 0.25, 0.0625, 0.015625, 0.01]);
    expect(dgcDensity(100, o)).toBe(0.01);
    expect(dgcDensity(5, { ...o, warmupSteps: 0 })).toBe(0.01);
  });
  it('with momentum 0 is top-k with error feedback: nothing is lost, only delayed', () => {
    const sender = new DgcSender({ fraction: 0.25, momentum: 0, warmupSteps: 0 });
    const g = new Float32Array([1, -2, 3, -4, 0.5, 0.25, 8, 0.125]);
    const got = new Float64Array(8);
    for (let step = 0; step < 3; step++) {
      const d = decodeTopk(sender.encode('w', g, step), 8, 'w');
      for (let i = 0; i < 8; i++) got[i] = (got[i] as number) + (d[i] as number);
    }
    const pending = sender.pending('w') as Float32Array;
    for (let i = 0; i < 8; i++) expect((got[i] as number) + (pending[i] as number)).toBeCloseTo(3 * (g[i] as number), 5);
  });
  it('keeps what half precision rounded off: sent plus pending is the sum of the gradients, whatever their values', () => {
    fc.assert(
      fc.property(fc.array(fc.array(floats(1e3), { minLength: 16, maxLength: 16 }), { minLength: 1, maxLength: 8 }), (steps) => {
        const sender = new DgcSender({ fraction: 0.25, momentum: 0, warmupSteps: 0 });
        const got = new Float64Array(16);
        const total = new Float64Array(16);
        steps.forEach((s, step) => {
          const g = Float32Array.from(s);
          const d = decodeTopk(sender.encode('w', g, step), 16, 'w');
          for (let i = 0; i < 16; i++) {
            got[i] = (got[i] as number) + (d[i] as number);
            total[i] = (total[i] as number) + (g[i] as number);
          }
        });
        const pending = sender.pending('w') as Float32Array;
        // Float32 accumulation over at most 8 steps of values up to 1e3: within a few float32 ulps of the largest partial sum.
        for (let i = 0; i < 16; i++) expect(Math.abs((got[i] as number) + (pending[i] as number) - (total[i] as number))).toBeLessThanOrEqual(1e-3);
      }),
    );
  });
  it('drops a non-finite accumulation it could not send instead of owing it forever', () => {
    const sender = new DgcSender({ fraction: 0.5, momentum: 0, warmupSteps: 0 });
    expect(() => decodeTopk(sender.encode('w', new Float32Array([Number.NaN, 1, 0.5, 0.25]), 0), 4, 'w')).toThrow(/scale NaN/);
    expect([...(sender.pending('w') as Float32Array)]).toEqual([0, 0, 0.5, 0.25]);
    expect([...decodeTopk(sender.encode('w', new Float32Array([0, 0, 1, 0]), 1), 4, 'w')]).toEqual([0, 0, 1.5, 0.25]);
  });
  it('masks momentum where it sent, and clipping scales to the bound', () => {
    const sender = new DgcSender({ fraction: 0.5, momentum: 0.9, warmupSteps: 0 });
    sender.encode('w', new Float32Array([10, 0.1]), 0);
    // Position 0 was sent: its velocity and accumulation are zero; position 1 kept both.
    expect([...(sender.pending('w') as Float32Array)]).toEqual([0, Math.fround(0.1)]);
    expect(clipScale([new Float32Array([3, 4])], 1)).toBeCloseTo(0.2);
    expect(clipScale([new Float32Array([0.3, 0.4])], 1)).toBe(1);
  });
  it('a tensor sent whole keeps its momentum: what goes is momentum SGD\'s velocity, step by step', () => {
    const sender = new DgcSender({ fraction: 0.01, momentum: 0.5, warmupSteps: 0 });
    const sent = (g: number[], step: number) => [...decodeTopk(sender.encode('b', new Float32Array(g), step, true), 3, 'b')];
    // u ← 0.5·u + g, all of it sent each step (every value exact in half precision).
    expect(sent([1, -2, 0.5], 0)).toEqual([1, -2, 0.5]);
    expect(sent([1, 0, 0.5], 1)).toEqual([1.5, -1, 0.75]);
    expect(sent([0, 0, 0], 2)).toEqual([0.75, -0.5, 0.375]);
    expect([...(sender.pending('b') as Float32Array)]).toEqual([0, 0, 0]);
  });
  it('the dense start of the warm-up keeps the momentum too: all of a tensor sent is momentum SGD\'s velocity', () => {
    // top 25% after warm-up; its first stage (here steps 0-4 of 10) sends every value.
    const sender = new DgcSender({ fraction: 0.25, momentum: 0.5, warmupSteps: 10 });
    expect(dgcDensity(1, sender.options)).toBe(1);
    const sent = (g: number[], step: number) => [...decodeTopk(sender.encode('w', new Float32Array(g), step), 4, 'w')];
    expect(sent([1, -2, 0.5, 0.25], 0)).toEqual([1, -2, 0.5, 0.25]);
    // u ← 0.5·u + g: masked, the velocity would have been lost and this step would send g alone.
    expect(sent([1, 0, 0.5, 0], 1)).toEqual([1.5, -1, 0.75, 0.125]);
    expect([...(sender.pending('w') as Float32Array)]).toEqual([0, 0, 0, 0]);
  });
  it('momentum correction and factor masking, step by step against a hand-computed example', () => {
    // m = 0.5, top 2 of 4: u ← m·u + g; v ← v + u; send the top 2 of v; zero u and v where sent (every value here is exact in half precision).
    const sender = new DgcSender({ fraction: 0.5, momentum: 0.5, warmupSteps: 0 });
    const sent = (g: number[], step: number) => [...decodeTopk(sender.encode('w', new Float32Array(g), step), 4, 'w')];
    const pending = () => [...(sender.pending('w') as Float32Array)];
    // Step 0: u = v = g = [1, -2, 0.5, 0.25]; positions 1 and 0 go; u = v = [0, 0, 0.5, 0.25].
    expect(sent([1, -2, 0.5, 0.25], 0)).toEqual([1, -2, 0, 0]);
    expect(pending()).toEqual([0, 0, 0.5, 0.25]);
    // Step 1: u = 0.5·[0, 0, 0.5, 0.25] + [0.25, 1, 0.5, -1] = [0.25, 1, 0.75, -0.875]; v = [0.25, 1, 1.25, -0.625]:
    // positions 2 and 1 go; masked, u = [0.25, 0, 0, -0.875], v = [0.25, 0, 0, -0.625].
    expect(sent([0.25, 1, 0.5, -1], 1)).toEqual([0, 1, 1.25, 0]);
    expect(pending()).toEqual([0.25, 0, 0, -0.625]);
    // Step 2, no gradient: the kept velocity still moves v: u = [0.125, 0, 0, -0.4375], v = [0.375, 0, 0, -1.0625].
    // Had position 1's velocity not been masked at step 1, u[1] = 0.5 would have made v[1] = 0.5 and sent it instead of 0.375.
    expect(sent([0, 0, 0, 0], 2)).toEqual([0.375, 0, 0, -1.0625]);
    expect(pending()).toEqual([0, 0, 0, 0]);
    // Step 3: everything was masked, so u = g and v = g.
    expect(sent([0, 0.5, 0, 0.25], 3)).toEqual([0, 0.5, 0, 0.25]);
  });
  it('is on for top-k or auto with momentum SGD only, and says why otherwise', () => {
    const momentum = { name: 'momentum', momentum: 0.9 };
    const on = dgcMomentumCorrection(momentum, { kind: 'topk' }, false);
    expect(on.on).toBe(true);
    expect(on.why).toMatch(/plain SGD/);
    expect(dgcMomentumCorrection(momentum, 'auto', false).on).toBe(true);
    const off = dgcMomentumCorrection(momentum, { kind: 'topk' }, true);
    expect(off.on).toBe(false);
    expect(off.why).toMatch(/--wire-no-momentum-correction/);
    expect(dgcMomentumCorrection(momentum, { kind: 'int8' }, false).on).toBe(false);
    const adam = dgcMomentumCorrection({ name: 'adam', momentum: 0.9 }, { kind: 'topk' }, false);
    expect(adam.on).toBe(false);
    expect(adam.why).toMatch(/momentum SGD only.*adam/);
    const sgd = dgcMomentumCorrection({ name: 'sgd', momentum: 0.9 }, { kind: 'topk' }, false);
    expect(sgd.on).toBe(false);
    expect(sgd.why).toMatch(/no momentum/);
  });
});

describe("top-k's Adam correction", () => {
  it("returns Adam's direction m̂ / (√v̂ + ε) per key, both moments bias-corrected: the servers' Adam step per unit of learning rate", () => {
    const [b1, b2, eps] = [0.9, 0.999, 1e-7];
    const adam = new AdamDirection(b1, b2, eps);
    // Large gradients first, then small ones: v̂ falls, and the direction with it (no running maximum).
    const steps = [
      [2, -4, 0, 1e-3],
      [0.5, -1, 0, 1e-3],
      [0.1, 3, 1, 0],
      [0.1, 0.1, 1, 1e-3],
    ];
    let m = [0, 0, 0, 0];
    let v = [0, 0, 0, 0];
    steps.forEach((g, t) => {
      const got = adam.direction('w', Float32Array.from(g));
      m = m.map((mi, i) => b1 * mi + (1 - b1) * (g[i] as number));
      v = v.map((vi, i) => b2 * vi + (1 - b2) * (g[i] as number) ** 2);
      const want = m.map((mi, i) => mi / (1 - b1 ** (t + 1)) / (Math.sqrt((v[i] as number) / (1 - b2 ** (t + 1))) + eps));
      for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(want[i] as number, 4);
    });
    // The first step is Adam's first step: every non-zero coordinate moves by ±1 (times the learning rate).
    const fresh = new AdamDirection(b1, b2, eps).direction('x', Float32Array.from([3, -0.002, 0]));
    expect([...fresh].map((x) => Math.round(x * 1e3) / 1e3)).toEqual([1, -1, 0]);
    // Keys are separate, and the input is not changed.
    const g = Float32Array.from([5]);
    adam.direction('other', g);
    expect(adam.steps('other')).toBe(1);
    expect(adam.steps('w')).toBe(4);
    expect(g[0]).toBe(5);
  });

  it('moves a coordinate that top-k sends once in many steps as far as dense Adam steps would, the servers applying plain SGD to what arrives', () => {
    const lr = 0.01;
    const n = 64;
    // Adam's direction is about ±1 a step for every coordinate, whatever its gradient's scale, so top-k:1/64 sends each about once in 64 steps.
    const grad = (t: number) => Float32Array.from({ length: n }, (_, i) => (i === 0 ? 0.001 : (i % 2 === 0 ? 1 : -1) * (1 + ((t * 7 + i) % 5))));
    const steps = 400;
    const adam = new AdamDirection(0.9, 0.999, 1e-7);
    const sender = new DgcSender({ fraction: 1 / n, momentum: 0, warmupSteps: 0 });
    const denseAdam = new AdamDirection(0.9, 0.999, 1e-7);
    let corrected = 0;
    let dense = 0;
    let sends = 0;
    for (let t = 0; t < steps; t++) {
      const g = grad(t);
      const sent = decodeTopk(sender.encode('w', adam.direction('w', g), t), n, 'w');
      if (sent[0] !== 0) sends += 1;
      corrected -= lr * (sent[0] as number);
      dense -= lr * (denseAdam.direction('w', g)[0] as number);
    }
    expect(sends).toBeGreaterThan(0);
    expect(sends).toBeLessThan(steps / 4);
    // What is still owed is what has not moved yet: sent plus owed is the dense path, exactly up to rounding.
    const owed = (sender.pending('w') as Float32Array)[0] as number;
    expect(corrected - lr * owed).toBeCloseTo(dense, 3);
    expect(Math.abs(dense)).toBeGreaterThan(0.5 * steps * lr);
  });

  it('is on for adam with top-k or --wire auto only, and says why otherwise', () => {
    const adam = { name: 'adam' };
    const on = dgcAdamCorrection(adam, { kind: 'topk' }, false);
    expect(on.on).toBe(true);
    expect(on.why).toMatch(/keeps Adam's moments.*plain SGD/);
    // Under auto only a worker whose link picks top-k keeps the moments; dense pushes get Adam on the servers.
    const auto = dgcAdamCorrection(adam, 'auto', false);
    expect(auto.on).toBe(true);
    expect(auto.why).toMatch(/--wire auto pick top-k.*dense pushes get Adam on the parameter servers as usual/);
    const cases: Array<[AdamCorrection, RegExp]> = [
      [dgcAdamCorrection(adam, { kind: 'topk' }, true), /--wire-no-adam-correction/],
      [dgcAdamCorrection(adam, 'auto', true), /--wire-no-adam-correction/],
      [dgcAdamCorrection({ name: 'sgd' }, 'auto', false), /sgd, not adam/],
      [dgcAdamCorrection(adam, { kind: 'int8' }, false), /dense/],
      [dgcAdamCorrection({ name: 'momentum' }, { kind: 'topk' }, false), /momentum, not adam/],
    ];
    for (const [off, why] of cases) {
      expect(off.on).toBe(false);
      expect(off.why).toMatch(why);
    }
  });
});

describe('parseWireCodec', () => {
  it('reads every codec and refuses the rest with the valid list', () => {
    expect(parseWireCodec('topk:0.01', 'push')).toEqual({ kind: 'topk', fraction: 0.01 });
    expect(parseWireCodec('int8', 'pull')).toEqual({ kind: 'int8' });
    expect(parseWireCodec('int4', 'push')).toEqual({ kind: 'int4' });
    expect(parseWireCodec('int4', 'pull')).toEqual({ kind: 'int4' });
    expect(() => parseWireCodec('topk:0.01', 'pull')).toThrow(/--wire-pull .* fp32, fp16, int8/);
    expect(() => parseWireCodec('topk:2', 'push')).toThrow(/\(0, 1\]/);
    expect(() => parseWireCodec('gzip', 'push')).toThrow(/fp32, fp16, int8, int4, topk:F/);
  });
  it('encodes and decodes by name, each codec within its bound', () => {
    const x = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i) * (i % 7));
    const bound = { fp16: 7 * 2 ** -11, int8: 6 / 127 / 2, int4: 6 / 7 / 2 + 1e-6 } as const;
    for (const kind of ['fp16', 'int8', 'int4'] as const) {
      const back = decodeWire(kind, encodeWire({ kind }, x), x.length, 'x');
      for (let i = 0; i < x.length; i++) expect(Math.abs((back[i] as number) - (x[i] as number)), kind).toBeLessThanOrEqual(bound[kind] + 1e-6);
    }
    expect(decodeWire('topk', encodeWire({ kind: 'topk', fraction: 1 }, x), x.length, 'x')).toHaveLength(300);
  });
});
