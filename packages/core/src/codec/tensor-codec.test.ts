import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../errors.js';
import { MAX_CHUNK_BYTES } from '../protocol.js';
import { Codec, DType, type TensorChunk } from '@tamp/proto/tamp/v1/tensor';
import { crc32, crc32Portable } from './crc32.js';
import { TensorAssembler, type WireTensor, decodeTensors, encodeTensor, groupChunks } from './tensor-codec.js';

function floats(n: number, seed = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}

function tensor(name: string, data: Float32Array | Int32Array, shape: number[] = [data.length]): WireTensor {
  return { name, shape, dtype: data instanceof Float32Array ? 'float32' : 'int32', data, sliceStart: 0 };
}

function expectCodecError(fn: () => unknown, code: string, tensorName?: string): CodecError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CodecError);
    const e = error as CodecError;
    expect(e.code).toBe(code);
    if (tensorName !== undefined) {
      expect(e.tensor).toBe(tensorName);
      expect(e.message).toContain(`"${tensorName}"`);
    }
    return e;
  }
  throw new Error(`expected a ${code} CodecError, nothing was thrown`);
}

describe('crc32', () => {
  it('matches the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32Portable(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it("agrees with zlib's native CRC-32", async () => {
    const { crc32: native } = await import('node:zlib');
    const bytes = new Uint8Array(floats(10_001).buffer);
    expect(crc32Portable(bytes)).toBe(native(bytes));
    expect(crc32Portable(bytes.subarray(7), crc32Portable(bytes.subarray(0, 7)))).toBe(native(bytes));
  });

  it('can be continued across pieces', () => {
    const bytes = new Uint8Array(floats(1000).buffer);
    expect(crc32(bytes.subarray(300), crc32(bytes.subarray(0, 300)))).toBe(crc32(bytes));
  });
});

describe('encodeTensor / decodeTensors', () => {
  // Element counts giving 0 bytes, 4 bytes, exactly 1 MiB, and 1 MiB + 4 bytes.
  const cases: Array<[string, number, number]> = [
    ['empty', 0, 1],
    ['one element', 1, 1],
    ['exactly 1 MiB', MAX_CHUNK_BYTES / 4, 1],
    ['just over 1 MiB', MAX_CHUNK_BYTES / 4 + 1, 2],
  ];
  for (const [label, n, chunks] of cases) {
    it(`round-trips ${label} (${n * 4} bytes in ${chunks} chunk(s))`, () => {
      const t = tensor('w', floats(n), [n]);
      const encoded = encodeTensor(t);
      expect(encoded).toHaveLength(chunks);
      for (const c of encoded) expect(c.payload.length).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
      const [back] = decodeTensors(encoded);
      expect(back?.name).toBe('w');
      expect(back?.shape).toEqual([n]);
      expect(back?.dtype).toBe('float32');
      expect(Buffer.from((back?.data as Float32Array).buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
    });
  }

  it('round-trips int32 tensors, slices and several tensors in one stream', () => {
    const a = tensor('a', Int32Array.from([1, -2, 3, 2 ** 31 - 1]), [2, 2]);
    const b: WireTensor = { name: 'big', shape: [10, 10], dtype: 'float32', data: floats(30), sliceStart: 50 };
    const chunks = [...encodeTensor(a, { chunkBytes: 8 }), ...encodeTensor(b, { chunkBytes: 16 })];
    const [ra, rb] = decodeTensors(chunks);
    expect(Array.from(ra?.data ?? [])).toEqual([1, -2, 3, 2 ** 31 - 1]);
    expect(ra?.dtype).toBe('int32');
    expect(rb?.sliceStart).toBe(50);
    expect(rb?.shape).toEqual([10, 10]);
    expect(Array.from(rb?.data ?? [])).toEqual(Array.from(b.data));
  });

  it('detects a corrupt payload and names the tensor', () => {
    const chunks = encodeTensor(tensor('fc1/kernel', floats(1000)), { chunkBytes: 1024 });
    const damaged = chunks.map((c) => ({ ...c, payload: Uint8Array.from(c.payload) }));
    const hit = (damaged[2] as TensorChunk).payload;
    hit[5] = (hit[5] as number) ^ 0x10;
    const e = expectCodecError(() => decodeTensors(damaged), 'CHUNK_CORRUPT', 'fc1/kernel');
    expect(e.message).toMatch(/checksum/);
  });

  it('detects a missing middle chunk and names the missing bytes', () => {
    const chunks = encodeTensor(tensor('fc2/bias', floats(1000)), { chunkBytes: 1024 });
    chunks.splice(1, 1);
    const e = expectCodecError(() => decodeTensors(chunks), 'CHUNK_MISSING', 'fc2/bias');
    expect(e.message).toContain('bytes [1024, 2048) are missing');
  });

  it('detects a stream cut before the last chunk', () => {
    const chunks = encodeTensor(tensor('fc3/kernel', floats(1000)), { chunkBytes: 1024 });
    chunks.pop();
    const e = expectCodecError(() => decodeTensors(chunks), 'CHUNK_MISSING', 'fc3/kernel');
    expect(e.message).toContain('received 3072 of 4000 bytes');
  });

  it('refuses reserved codecs, unknown dtypes and inconsistent headers', () => {
    const [c] = encodeTensor(tensor('x', floats(4)));
    const base = c as TensorChunk;
    expectCodecError(() => decodeTensors([{ ...base, codec: Codec.CODEC_TOPK }]), 'CODEC_UNSUPPORTED', 'x');
    expectCodecError(() => decodeTensors([{ ...base, dtype: DType.D_TYPE_UNSPECIFIED }]), 'CHUNK_INVALID', 'x');
    expectCodecError(() => decodeTensors([{ ...base, totalBytes: 12n }]), 'CHUNK_INVALID', 'x');
    expectCodecError(() => decodeTensors([{ ...base, sliceStart: 2n }]), 'CHUNK_INVALID', 'x');
    expectCodecError(() => decodeTensors([base, base]), 'CHUNK_INVALID', 'x');
    const two = encodeTensor(tensor('y', floats(8)), { chunkBytes: 16 });
    expectCodecError(() => decodeTensors([two[0] as TensorChunk, { ...(two[1] as TensorChunk), shape: [9] }]), 'CHUNK_INVALID', 'y');
  });

  it('never allocates from a hostile header', () => {
    const [c] = encodeTensor(tensor('h', floats(1)));
    const huge = 2n ** 40n;
    const assembler = new TensorAssembler();
    // A header claiming a terabyte is accepted only as a promise: memory follows received bytes.
    assembler.add({ ...(c as TensorChunk), shape: [2 ** 28, 2 ** 10], sliceLength: huge / 4n, totalBytes: huge });
    expect(assembler.receivedBytes).toBe(4);
    expect(() => assembler.finish()).toThrow(CodecError);
    expectCodecError(() => decodeTensors([{ ...(c as TensorChunk), offset: 2n ** 63n }]), 'CHUNK_INVALID', 'h');
  });

  it('turns any damage to a stream into a CodecError, never a crash (property)', () => {
    const chunks = encodeTensor(tensor('p', floats(64)), { chunkBytes: 40 });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: chunks.length - 1 }),
        fc.constantFrom('payload', 'offset', 'drop', 'totalBytes', 'shape', 'crc'),
        fc.integer({ min: 0, max: 1 << 30 }),
        (index, what, noise) => {
          const copy = chunks.map((c) => ({ ...c, payload: Uint8Array.from(c.payload) }));
          const target = copy[index] as TensorChunk;
          if (what === 'payload') {
            const at = noise % target.payload.length;
            target.payload[at] = (target.payload[at] as number) ^ (1 + (noise % 255));
          }
          if (what === 'offset') target.offset = BigInt(noise);
          if (what === 'drop') copy.splice(index, 1);
          if (what === 'totalBytes') target.totalBytes = BigInt(noise);
          if (what === 'shape') target.shape = [noise];
          if (what === 'crc') target.crc32 = (target.crc32 ^ (noise | 1)) >>> 0;
          let threw: unknown;
          try {
            decodeTensors(copy);
          } catch (error) {
            threw = error;
          }
          // Offsets that happen to equal the original, or same-size shapes, may be harmless:
          // the result must then be exactly the original tensor.
          if (threw === undefined) {
            const [back] = decodeTensors(copy);
            expect(Array.from(back?.data ?? [])).toEqual(Array.from(floats(64)));
          } else {
            expect(threw).toBeInstanceOf(CodecError);
          }
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });
});

describe('groupChunks', () => {
  const tensor = (name: string, n: number): WireTensor => ({ name, shape: [n], dtype: 'float32', data: new Float32Array(n), sliceStart: 0 });

  it('packs small chunks together in order, up to the byte limit, and lets a large one travel alone', () => {
    const chunks = [tensor('a', 10), tensor('b', 10), tensor('c', 300_000), tensor('d', 10)].flatMap((t) => encodeTensor(t));
    // c is 1.2 MB: a 1 MiB chunk and the rest.
    expect(chunks.map((c) => c.name)).toEqual(['a', 'b', 'c', 'c', 'd']);
    expect(groupChunks(chunks).map((g) => g.map((c) => c.name))).toEqual([['a', 'b', 'c', 'c', 'd']]);
    expect(groupChunks(chunks, MAX_CHUNK_BYTES).map((g) => g.map((c) => `${c.name}@${c.offset}`))).toEqual([['a@0', 'b@0'], ['c@0'], ['c@1048576', 'd@0']]);
    expect(groupChunks(chunks, 1).map((g) => g.length)).toEqual([1, 1, 1, 1, 1]);
    expect(groupChunks([])).toEqual([]);
  });

  it('keeps every group within the limit unless a group is a single chunk', () => {
    const chunks = Array.from({ length: 200 }, (_, i) => tensor(`t${i}`, 1 + ((i * 7919) % 5000))).flatMap((t) => encodeTensor(t));
    const groups = groupChunks(chunks, 64 * 1024);
    expect(groups.flat()).toEqual(chunks);
    for (const g of groups) {
      const payload = g.reduce((n, c) => n + c.payload.length, 0);
      if (g.length > 1) expect(payload).toBeLessThanOrEqual(64 * 1024);
    }
  });
});

describe('compressed chunks', () => {
  const data = Float32Array.from({ length: 3000 }, (_, i) => Math.sin(i) * (i % 7));
  const tensor = { name: 'dense/kernel', shape: [30, 100], dtype: 'float32' as const, data, sliceStart: 0 };

  it('round trip each codec through chunks: fp16 and int8 within their bounds, top-k its kept values in half precision', () => {
    for (const codec of [{ kind: 'fp16' as const }, { kind: 'int8' as const }, { kind: 'topk' as const, fraction: 0.01 }]) {
      const chunks = encodeTensor(tensor, { codec, chunkBytes: 1000 });
      expect(chunks.length).toBeGreaterThan(0);
      const assembler = new TensorAssembler({ accept: [codec.kind] });
      for (const c of chunks) assembler.add(c);
      const [out] = assembler.finish();
      expect(out?.data).toBeInstanceOf(Float32Array);
      expect(out?.data.length).toBe(3000);
      const bound = codec.kind === 'fp16' ? 6 * 2 ** -11 : codec.kind === 'int8' ? 6 / 127 : 0;
      let kept = 0;
      for (let i = 0; i < 3000; i++) {
        const got = out?.data[i] as number;
        if (codec.kind === 'topk') {
          if (got !== 0) {
            kept++;
            expect(Math.abs(got - (data[i] as number))).toBeLessThanOrEqual(2 ** -11 * Math.abs(data[i] as number));
          }
        } else expect(Math.abs(got - (data[i] as number))).toBeLessThanOrEqual(bound);
      }
      if (codec.kind === 'topk') expect(kept).toBe(30);
    }
  });

  it('refuses a codec the job did not agree to, and a malformed compressed payload, before anything is returned', () => {
    const chunks = encodeTensor(tensor, { codec: { kind: 'int8' } });
    const strict = new TensorAssembler();
    expect(() => chunks.forEach((c) => strict.add(c))).toThrow(/not one this job agreed to/);
    // A top-k payload whose position runs past the tensor: refused at finish with CHUNK_INVALID.
    const [bad] = encodeTensor({ ...tensor, data: data.subarray(0, 100), shape: [100] }, { codec: { kind: 'topk', fraction: 0.05 } });
    const payload = (bad as (typeof chunks)[number]).payload.slice();
    payload[payload.length - 1] = 0x7f; // the last gap jumps far past the end
    const forged = { ...(bad as (typeof chunks)[number]), payload, crc32: crc32(payload) };
    const a = new TensorAssembler({ accept: ['topk'] });
    a.add(forged);
    expect(() => a.finish()).toThrow(/outside the tensor/);
  });
});
