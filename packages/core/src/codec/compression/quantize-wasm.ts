/**
 * The wire codecs' loops in WebAssembly SIMD: the block quantizer
 * (blocks.ts) that int8 and int4 share, their decoding, fp16's coding both
 * ways (fp16.ts) and the float32 add a worker applies each change-coded pull
 * with. The same arithmetic, bit for bit, several elements an instruction
 * where V8 runs the JavaScript loops one double at a time. A worker's push
 * with error feedback and the parameter server's change-coded pull run the
 * quantizer over every element of every step's 1 MB tensors (`pnpm
 * bench:codecs`).
 *
 * Exactness: a float32 sum or difference rounds as JavaScript's double
 * operation then `Math.fround` does (double has more than twice float32's
 * precision), and so does the scale's division and each `k × scale` (an
 * integer of at most 8 bits times a float32 is exact in a double). The
 * rounding step `(v × inv + (limit + 1.5)) | 0` stays in double precision:
 * two lanes of f64x2 at a time, truncated as `| 0` truncates (its values are
 * small and positive). So the code, the scales, the held values and what
 * error feedback owes are the JavaScript loop's exactly; the property tests
 * compare the two on the same inputs. fp16 uses the float unit's own
 * rounding to nearest even (fp16's block comment below); its decoding gives
 * the table's floats, a NaN keeping its payload bits.
 *
 * The module itself (its functions, hand-encoded) is in codec-kernels.ts;
 * this file runs it.
 *
 * WebAssembly code reads only its own memory: each call copies its inputs
 * into one memory per thread (grown to the largest tensor seen, at most
 * MAX_BYTES) and its outputs back. Block sizes that are not a multiple of 4,
 * larger tensors and runtimes without SIMD use the JavaScript loop.
 */
import { type QuantizeExports, encodeQuantizeModule } from './codec-kernels.js';

const PAGE = 65536;
/** The largest memory the quantizer grows to; a larger tensor uses the JavaScript loop. */
export const MAX_BYTES = 2 ** 30;
const lanes = (n: number): number => (n + 3) & ~3;
const align16 = (n: number): number => (n + 15) & ~15;
const lanes8 = (n: number): number => (n + 7) & ~7;

let instance: { memory: WebAssembly.Memory; fns: QuantizeExports } | null | undefined;
let enabled = true;

/** Use the WebAssembly quantizer where it can run (the default) or always the JavaScript loop (tests and `pnpm bench:codecs` compare the two). */
export function setQuantizeKernels(kind: 'wasm-simd' | 'js'): void {
  enabled = kind === 'wasm-simd';
}

/** The quantizer blocks.ts uses now: WebAssembly SIMD, or JavaScript where the runtime has no SIMD or it was switched off. */
export function quantizeKernels(): 'wasm-simd' | 'js' {
  return enabled && instantiate() !== null ? 'wasm-simd' : 'js';
}

function instantiate(): { memory: WebAssembly.Memory; fns: QuantizeExports } | null {
  if (instance === undefined) {
    instance = null;
    try {
      const bytes = encodeQuantizeModule();
      if (typeof WebAssembly !== 'undefined' && WebAssembly.validate(bytes)) {
        const memory = new WebAssembly.Memory({ initial: 1 });
        instance = { memory, fns: new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as unknown as QuantizeExports };
      }
    } catch {
      instance = null; // no WebAssembly here: the JavaScript loop still works
    }
  }
  return instance;
}

/** Grow `memory` to at least `bytes` (at most MAX_BYTES); false when it cannot. */
function reserve(memory: WebAssembly.Memory, bytes: number): boolean {
  if (bytes > MAX_BYTES) return false;
  if (memory.buffer.byteLength >= bytes) return true;
  try {
    memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
    return true;
  } catch {
    return false; // the memory could not grow: the JavaScript loop still works
  }
}

/**
 * blocks.ts's quantizeBlocks in WebAssembly, with the same arguments and
 * results (the block loop's first non-finite block, or -1), or undefined
 * when it cannot run here (the caller then runs the JavaScript loop). With
 * `nibbles`, the codes go there two a byte as int4.ts lays them out, and
 * not to `q`.
 * Nothing is written to `q`, `scales`, `held` or `next` before the
 * computation has finished.
 */
export function quantizeWasm(
  src: Float32Array,
  blockSize: number,
  limit: number,
  q: Int8Array,
  scales: Float32Array,
  held: Float32Array | undefined,
  owed: Float32Array | undefined,
  next: Float32Array | undefined,
  nibbles?: Uint8Array,
): number | undefined {
  if (!enabled || blockSize % 4 !== 0 || (held !== undefined && next !== undefined)) return undefined;
  const inst = instantiate();
  if (inst === null) return undefined;
  const n = src.length;
  const len = lanes(n);
  const aux = held ?? owed ?? next;
  // Layout: 16 bytes unused (address 0 means "absent"), d, aux, q, scales.
  const dAt = 16;
  const auxAt = dAt + len * 4;
  const qAt = auxAt + (aux !== undefined ? len * 4 : 0);
  const scalesAt = qAt + align16(len);
  const packAt = align16(scalesAt + scales.length * 4);
  const bytes = packAt + (nibbles !== undefined ? align16(len) / 2 : 0);
  const { memory, fns } = inst;
  if (!reserve(memory, bytes)) return undefined;
  const buffer = memory.buffer;
  const d = new Float32Array(buffer, dAt, len);
  d.set(src);
  d.fill(0, n);
  if (aux !== undefined) {
    const a = new Float32Array(buffer, auxAt, len);
    if (held !== undefined || owed !== undefined) {
      a.set(held ?? (owed as Float32Array));
      a.fill(0, n);
      if (held !== undefined) fns.sub_into(dAt, auxAt, len);
      else fns.add_into(dAt, auxAt, len);
    }
  }
  // With error feedback, next's region is aux's (owed is spent once added to d); held is moved in place.
  const quantize = held !== undefined ? fns.quantize_held : next !== undefined ? fns.quantize_next : fns.quantize_plain;
  const bad = quantize(dAt, qAt, scalesAt, len, blockSize, limit, held !== undefined ? auxAt : 0, next !== undefined ? auxAt : 0);
  if (bad >= 0 && next !== undefined) return bad; // the caller refuses the gradient; nothing written
  if (nibbles !== undefined) {
    fns.pack_i4(qAt, packAt, len);
    nibbles.set(new Uint8Array(buffer, packAt, Math.ceil(n / 2)));
  } else q.set(new Int8Array(buffer, qAt, n));
  scales.set(new Float32Array(buffer, scalesAt, scales.length));
  if (held !== undefined) held.set(new Float32Array(buffer, auxAt, n));
  if (next !== undefined) next.set(new Float32Array(buffer, auxAt, n));
  return bad;
}

/**
 * int8.ts's or int4.ts's decoding loop in WebAssembly: `codes` (int8: n
 * bytes; int4: ceil(n / 2), two codes a byte) times their block's scale, as
 * a new array; 'refused' when a code is -128 (int8) or -8 (int4), so the
 * caller finds which and refuses the tensor; undefined when it cannot run
 * here (the block size must be a multiple of 4 for int8, of 8 for int4). For
 * int4 the caller checks an odd tail's unused nibble.
 */
export function dequantizeWasm(kind: 'int8' | 'int4', codes: Uint8Array | Int8Array, n: number, scales: Float32Array, blockSize: number): Float32Array | 'refused' | undefined {
  const perIteration = kind === 'int8' ? 4 : 8;
  if (!enabled || blockSize % perIteration !== 0) return undefined;
  const inst = instantiate();
  if (inst === null) return undefined;
  const len = kind === 'int8' ? lanes(n) : lanes8(n);
  const codeBytes = kind === 'int8' ? len : len / 2;
  const qAt = 16;
  const scalesAt = qAt + align16(codeBytes);
  const outAt = align16(scalesAt + scales.length * 4);
  if (!reserve(inst.memory, outAt + len * 4)) return undefined;
  const buffer = inst.memory.buffer;
  const q = new Uint8Array(buffer, qAt, codeBytes);
  q.set(new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength));
  q.fill(0, codes.byteLength);
  new Float32Array(buffer, scalesAt, scales.length).set(scales);
  const dequantize = kind === 'int8' ? inst.fns.dequantize_i8 : inst.fns.dequantize_i4;
  if (dequantize(qAt, scalesAt, outAt, len, blockSize) !== 0) return 'refused';
  return new Float32Array(buffer, outAt, n).slice();
}

/**
 * `into[i] = a[i] + into[i]` in float32 (as JavaScript's double sum stored
 * to a Float32Array rounds it), in WebAssembly where it can run: a worker
 * adds each int8 or int4 pull's decoded change to the values it holds
 * (wire/pull-reference.ts), 0.5 ms of scalar JavaScript a step for
 * LeNet-300-100's 266,610 values.
 */
export function addFloats(into: Float32Array, a: Float32Array): void {
  const n = into.length;
  // Internal invariant: the caller checks the lengths and says which tensor disagrees.
  if (a.length !== n) throw new RangeError(`addFloats: ${n} values against ${a.length}`);
  const inst = enabled ? instantiate() : null;
  const len = lanes(n);
  const aAt = 16 + len * 4;
  if (inst === null || !reserve(inst.memory, aAt + len * 4)) {
    for (let i = 0; i < n; i++) into[i] = (a[i] as number) + (into[i] as number);
    return;
  }
  const d = new Float32Array(inst.memory.buffer, 16, len);
  const x = new Float32Array(inst.memory.buffer, aAt, len);
  d.set(into);
  x.set(a);
  inst.fns.add_into(16, aAt, len);
  into.set(d.subarray(0, n));
}

/** fp16.ts's encoding in WebAssembly (the same halves, bit for bit), or undefined when it cannot run here. */
export function encodeFp16Wasm(src: Float32Array): Uint8Array | undefined {
  const inst = enabled ? instantiate() : null;
  if (inst === null) return undefined;
  const n = src.length;
  const len = lanes8(n);
  const outAt = 16 + len * 4;
  if (!reserve(inst.memory, outAt + len * 2)) return undefined;
  const x = new Float32Array(inst.memory.buffer, 16, len);
  x.set(src);
  x.fill(0, n);
  inst.fns.f16_encode(16, outAt, len);
  return new Uint8Array(inst.memory.buffer, outAt, 2 * n).slice();
}

/** fp16.ts's decoding in WebAssembly (the same floats; a NaN may keep its payload bits), or undefined when it cannot run here. */
export function decodeFp16Wasm(halves: Uint8Array, n: number): Float32Array | undefined {
  const inst = enabled ? instantiate() : null;
  if (inst === null) return undefined;
  const len = lanes8(n);
  const outAt = 16 + align16(len * 2);
  if (!reserve(inst.memory, outAt + len * 4)) return undefined;
  const h = new Uint8Array(inst.memory.buffer, 16, len * 2);
  h.set(halves.subarray(0, 2 * n));
  h.fill(0, 2 * n);
  inst.fns.f16_decode(16, outAt, len);
  return new Float32Array(inst.memory.buffer, outAt, n).slice();
}
