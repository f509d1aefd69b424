import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelError, Random, crc32 } from '@tamp/core';
import { quantizeInt8 } from '../quantize.js';
import { type TampModel, decodeTampModel, encodeTampModel, tensorValues } from './tamp-format.js';

function sample(): TampModel {
  const r = new Random(1);
  const kernel = Float32Array.from({ length: 40 * 8 }, () => r.normal());
  return {
    meta: { producer: 'test', created: '2026-01-01T00:00:00Z', model: 'tiny', classNames: ['a', 'b'] },
    modelTopology: { class_name: 'Sequential', config: { name: 'tiny', layers: [] } },
    weights: [
      { name: 'fc1/kernel', shape: [40, 8], encoding: { kind: 'int8', ...quantizeInt8(kernel, [40, 8]) } },
      { name: 'fc1/bias', shape: [8], encoding: { kind: 'f32', data: Float32Array.from({ length: 8 }, () => r.normal()) } },
      { name: 'scalar', shape: [], encoding: { kind: 'f32', data: Float32Array.from([3.5]) } },
    ],
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
    expect(back.weights.map((w) => [w.name, w.shape, w.encoding.kind])).toEqual([
      ['fc1/kernel', [40, 8], 'int8'],
      ['fc1/bias', [8], 'f32'],
      ['scalar', [], 'f32'],
    ]);
    sample().weights.forEach((w, i) => expect(Array.from(tensorValues(back.weights[i] as never))).toEqual(Array.from(tensorValues(w))));
    expect(Buffer.from(encodeTampModel(back)).equals(Buffer.from(bytes))).toBe(true);
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
