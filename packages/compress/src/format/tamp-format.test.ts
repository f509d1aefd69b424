import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, ModelError, Random, crc32 } from '@tamp/core';
import { readFileSync } from 'node:fs';
import { quantizeInt8, quantizeInt8Tensor } from '../quantize.js';
import { type TampModel, type TampTensor, decodeTampModel, encodeTampModel, tensorValues } from './tamp-format.js';

/** One tensor in every encoding and storage the format has. */
function sample(): TampModel {
  const r = new Random(1);
  const kernel = Float32Array.from({ length: 40 * 8 }, () => r.normal());
  // 90% zeros, with a run longer than 255 to exercise the gap filler.
  const sparse = Float32Array.from({ length: 600 * 4 }, (_, i) => (i > 20 && i < 1400 ? 0 : r.next() < 0.9 ? 0 : r.normal()));
  const indices = Uint8Array.from({ length: 500 }, () => (r.next() < 0.8 ? 0 : 1 + r.int(15)));
  const codebook = Float32Array.from({ length: 16 }, (_, i) => (i === 0 ? 0 : (i - 8) / 10));
  return {
    meta: { producer: 'test', created: '2026-01-01T00:00:00Z', model: 'tiny', classNames: ['a', 'b'] },
    modelTopology: { class_name: 'Sequential', config: { name: 'tiny', layers: [] } },
    weights: [
      { name: 'fc1/kernel', shape: [40, 8], encoding: { kind: 'int8', ...quantizeInt8(kernel, [40, 8]) } },
      { name: 'fc1/bias', shape: [8], encoding: { kind: 'f32', data: Float32Array.from({ length: 8 }, () => r.normal()) } },
      { name: 'scalar', shape: [], encoding: { kind: 'f32', data: Float32Array.from([3.5]) } },
      { name: 'bias8', shape: [8], encoding: { kind: 'int8-tensor', ...quantizeInt8Tensor(Float32Array.from({ length: 8 }, () => r.normal())) } },
      { name: 'packed', shape: [100, 5], encoding: { kind: 'clustered', codebook: codebook.subarray(0, 11), indices: indices.map((i) => i % 11) } },
      { name: 'sparse-f32', shape: [600, 4], encoding: { kind: 'f32', data: sparse }, storage: 'sparse' },
      { name: 'sparse-int8', shape: [600, 4], encoding: { kind: 'int8', ...quantizeInt8(sparse, [600, 4]) }, storage: 'sparse' },
      { name: 'sparse-clustered', shape: [100, 5], encoding: { kind: 'clustered', codebook, indices }, storage: 'sparse' },
    ] satisfies TampTensor[],
  };
}

function expectModelError(fn: () => unknown, code?: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelError);
    if (code !== undefined) expect((error as ModelError).code).toBe(code);
    return;
  }
  throw new Error('expected a ModelError');
}

interface SectionAt {
  type: string;
  start: number;
  payload: number;
  length: number;
}

/** Where each section of a file starts (header, payload) and how long its payload is. */
function sections(bytes: Uint8Array): SectionAt[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SectionAt[] = [];
  for (let at = 24; at < bytes.length; ) {
    const length = Number(view.getBigUint64(at + 8, true));
    out.push({ type: new TextDecoder().decode(bytes.subarray(at, at + 4)), start: at, payload: at + 16, length });
    at += 16 + length + 4;
  }
  return out;
}

/** Rewrite a section's checksum after editing its payload. */
function fixSection(bytes: Uint8Array, s: SectionAt): void {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(s.payload + s.length, crc32(bytes.subarray(s.payload, s.payload + s.length)), true);
}

/** Rewrite the header's checksum after editing its fields. */
function fixHeader(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(20, crc32(bytes.subarray(0, 20)), true);
  return bytes;
}

describe('.tamp format', () => {
  it('round-trips bit-exact', () => {
    const bytes = encodeTampModel(sample());
    const back = decodeTampModel(bytes);
    expect(back.meta).toEqual(sample().meta);
    expect(back.modelTopology).toEqual(sample().modelTopology);
    expect(back.weights.map((w) => [w.name, w.encoding.kind, w.storage ?? 'dense'])).toEqual([
      ['fc1/kernel', 'int8', 'dense'],
      ['fc1/bias', 'f32', 'dense'],
      ['scalar', 'f32', 'dense'],
      ['bias8', 'int8-tensor', 'dense'],
      ['packed', 'clustered', 'dense'],
      ['sparse-f32', 'f32', 'sparse'],
      ['sparse-int8', 'int8', 'sparse'],
      ['sparse-clustered', 'clustered', 'sparse'],
    ]);
    sample().weights.forEach((w, i) => expect(Array.from(tensorValues(back.weights[i] as never)), w.name).toEqual(Array.from(tensorValues(w))));
    expect(Buffer.from(encodeTampModel(back)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('stores sparse weights in far fewer bytes than dense ones', () => {
    const bytes = encodeTampModel(sample()).length;
    const dense = encodeTampModel({ ...sample(), weights: sample().weights.map((w) => ({ ...w, storage: 'dense' as const })) }).length;
    expect(bytes).toBeLessThan(dense * 0.6);
  });

  it('still reads files of format 1.0', () => {
    const file = new URL('../../test-fixtures/format-1.0.tamp', import.meta.url);
    const expected = JSON.parse(readFileSync(new URL('../../test-fixtures/format-1.0.expected.json', import.meta.url), 'utf8')) as { kernel: number[]; bias: number[] };
    const model = decodeTampModel(readFileSync(file));
    expect(model.meta.producer).toMatch(/format 1.0 fixture/);
    const [kernel, bias] = model.weights;
    expect(kernel?.encoding.kind).toBe('int8');
    const k = tensorValues(kernel as TampTensor);
    const scales = (kernel?.encoding as { scales: Float32Array }).scales;
    expected.kernel.forEach((v, i) => expect(Math.abs((k[i] as number) - v)).toBeLessThanOrEqual((scales[i % 4] as number) / 2 + 1e-7));
    expect(Array.from(tensorValues(bias as TampTensor))).toEqual(expected.bias);
  });

  it('refuses other files, future versions, unknown encodings and unknown required sections', () => {
    const bytes = encodeTampModel(sample());
    expectModelError(() => decodeTampModel(new TextEncoder().encode('{"modelTopology": {}}')), 'MODEL_INVALID');
    const future = Uint8Array.from(bytes);
    future[8] = 2;
    expectModelError(() => decodeTampModel(fixHeader(future)), 'VERSION_UNSUPPORTED');
    // The first TNSR section's encoding byte follows its name.
    const unknown = Uint8Array.from(bytes);
    const tnsr = sections(unknown).find((x) => x.type === 'TNSR') as SectionAt;
    unknown[tnsr.payload + 2 + 'fc1/kernel'.length] = 9;
    fixSection(unknown, tnsr);
    expectModelError(() => decodeTampModel(unknown), 'VERSION_UNSUPPORTED');
    const renamed = Uint8Array.from(bytes);
    renamed.set(new TextEncoder().encode('XTRA'), 24);
    expectModelError(() => decodeTampModel(renamed), 'VERSION_UNSUPPORTED');
    renamed[24 + 4] = 1; // optional: skipped, but then META is missing
    expect(() => decodeTampModel(renamed)).toThrow(/no META section/);
  });

  it('detects damage or finds it harmless, never crashes or over-allocates (property)', () => {
    const bytes = encodeTampModel(sample());
    const original = decodeTampModel(bytes);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), at: fc.nat(bytes.length - 1), xor: fc.integer({ min: 1, max: 255 }) }),
          fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(bytes.length - 1), xor: fc.constant(0) }),
          fc.record({ kind: fc.constant('length' as const), at: fc.constantFrom(24 + 8, 12), xor: fc.integer({ min: 1, max: 0x7fffffff }) }),
        ),
        ({ kind, at, xor }) => {
          let damaged = Uint8Array.from(bytes);
          if (kind === 'flip') damaged[at] = (damaged[at] as number) ^ xor;
          if (kind === 'truncate') damaged = damaged.subarray(0, at);
          if (kind === 'length') {
            new DataView(damaged.buffer).setUint32(at, xor, true);
            if (at === 12) fixHeader(damaged);
          }
          let decoded: ReturnType<typeof decodeTampModel> | undefined;
          try {
            decoded = decodeTampModel(damaged);
          } catch (error) {
            expect(error).toBeInstanceOf(ModelError);
            return;
          }
          // Not refused: then the damage changed nothing the model is made of (e.g. the optional bit of a known section).
          expect(decoded).toEqual(original);
        },
      ),
      { numRuns: 1000, seed: 11 },
    );
  });

  it('decodes damaged tensor bodies with valid checksums into a ModelError or a well-formed model, never a crash (property)', () => {
    // Checksums catch random damage first; here the damage is re-checksummed, so the
    // decoders of every encoding (Huffman tables, gap streams, packed indices) face it.
    const bytes = encodeTampModel(sample());
    const tensors = sections(bytes).filter((s) => s.type === 'TNSR');
    const shapes = sample().weights.map((w) => w.shape);
    fc.assert(
      fc.property(fc.nat(tensors.length - 1), fc.nat(), fc.integer({ min: 1, max: 255 }), (t, offset, xor) => {
        const s = tensors[t] as SectionAt;
        const damaged = Uint8Array.from(bytes);
        const at = s.payload + (offset % s.length);
        damaged[at] = (damaged[at] as number) ^ xor;
        fixSection(damaged, s);
        let decoded: TampModel;
        try {
          decoded = decodeTampModel(damaged);
        } catch (error) {
          expect(error).toBeInstanceOf(ModelError);
          return;
        }
        // Accepted: a value changed, but every tensor still has its shape's number of elements.
        decoded.weights.forEach((w, i) => expect(tensorValues(w).length).toBe((shapes[i] as number[]).reduce((a, b) => a * b, 1)));
      }),
      { numRuns: 2000, seed: 12 },
    );
  });

  it('refuses a sparse tensor that claims more elements than its gap symbols can cover (no decompression bomb)', () => {
    const bytes = encodeTampModel(sample());
    const s = sections(bytes).find((x) => x.type === 'TNSR' && new TextDecoder().decode(bytes.subarray(x.payload + 2, x.payload + 12)) === 'sparse-f32') as SectionAt;
    const dims = s.payload + 2 + 'sparse-f32'.length + 2;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getUint32(dims, true)).toBe(600);
    view.setUint32(dims, 600_000_000, true);
    fixSection(bytes, s);
    expect(() => decodeTampModel(bytes)).toThrow(/gap symbols cannot cover a tensor of 2400000000 elements/);
  });

  it('refuses a tensor body that disagrees with its header, before allocating it', () => {
    const huge: TampModel = { ...sample(), weights: [{ name: 'w', shape: [4], encoding: { kind: 'f32', data: new Float32Array(4) } }] };
    const bytes = Uint8Array.from(encodeTampModel(huge));
    // Claim a dimension of 2^32-1: the body would be ~16 GiB; the reader must refuse, not allocate.
    const tnsr = sections(bytes).find((x) => x.type === 'TNSR') as SectionAt;
    new DataView(bytes.buffer).setUint32(tnsr.payload + 2 + 1 + 1 + 1, 0xffffffff, true); // name length, "w", encoding, rank
    fixSection(bytes, tnsr);
    expect(() => decodeTampModel(bytes)).toThrow(/needs 17179869180 bytes of float32, the section has 16/);
  });
});

describe('the .tamp writer refuses inconsistent tensors with typed errors', () => {
  const meta = { producer: 'test', created: '2026-01-01T00:00:00Z' };
  const write = (t: TampTensor) => () => encodeTampModel({ meta, modelTopology: {}, weights: [t] });
  const cases: Array<[string, TampTensor, string]> = [
    ['too few values', { name: 'w', shape: [2, 3], encoding: { kind: 'f32', data: new Float32Array(5) } }, '5 values for shape [2,3], which holds 6'],
    ['scales per channel', { name: 'w', shape: [2, 3], encoding: { kind: 'int8', values: new Int8Array(6), scales: new Float32Array(2) } }, '2 scales for 3 channels: int8 weights need one scale per channel of the last dimension'],
    ['sparse int8-tensor', { name: 'w', shape: [4], encoding: { kind: 'int8-tensor', values: new Int8Array(4), scale: 1 }, storage: 'sparse' }, "int8-tensor weights are stored dense: leave out storage: 'sparse' (or use per-channel int8)"],
    ['empty codebook', { name: 'w', shape: [2], encoding: { kind: 'clustered', codebook: new Float32Array(0), indices: new Uint8Array(2) } }, 'a codebook of 0 values; it must hold 1 to 256'],
    ['index past the codebook', { name: 'w', shape: [2], encoding: { kind: 'clustered', codebook: Float32Array.of(0, 1), indices: Uint8Array.of(0, 2) } }, 'index 2 is outside its codebook of 2'],
    ['sparse codebook without a zero', { name: 'w', shape: [2], encoding: { kind: 'clustered', codebook: Float32Array.of(1, 2), indices: Uint8Array.of(0, 1) }, storage: 'sparse' }, 'sparse clustered storage needs codebook[0] = 0 for the pruned weights'],
  ];
  for (const [what, tensor, message] of cases) {
    it(what, () => {
      expect(write(tensor)).toThrow(InvalidArgumentError);
      expect(write(tensor)).toThrow(`cannot write tensor "w" to a .tamp file: ${message}`);
    });
  }

  it('quantizeInt8 refuses values that do not fill the shape\'s channels', () => {
    expect(() => quantizeInt8(new Float32Array(7), [2, 3])).toThrow(InvalidArgumentError);
    expect(() => quantizeInt8(new Float32Array(7), [2, 3])).toThrow('quantizeInt8: 7 values do not divide into 3 channels (the last dimension of [2, 3]); pass the tensor\'s own shape');
  });
});
