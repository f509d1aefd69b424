/**
 * The WebAssembly module of the wire codecs' SIMD loops, hand-encoded with
 * core's `wasm` encoder: what each function computes, and why it matches
 * the JavaScript loops bit for bit, is in quantize-wasm.ts (which runs them)
 * and in the comment above each function here.
 */
import * as wasm from '../../wasm/encoder.js';

const { F32, I32, V128, add, anyTrue, encodeModule, endOf, get, i32, i32Add, i32Eqz, i32LtU, i32Shl, i32Sub, load, loop, mul, ne, set, simd, splat, store, sub, tee, whileBelow } = wasm;

// Instructions this module needs beyond the shared ones.
const f32Const = (x: number): number[] => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)];
const f64Const = (x: number): number[] => [0x44, ...new Uint8Array(new Float64Array([x]).buffer)];
const f32Max = [0x97];
const f32Le = [0x5f];
const f32Gt = [0x5e];
const f32Div = [0x95];
const f32ConvertI32 = [0xb2];
const f64ConvertI32 = [0xb7];
const f64PromoteF32 = [0xbb];
const f64Add = [0xa0];
const f64Div = [0xa3];
const f32Store = [0x38, 2, 0];
const i32Store = [0x36, 0, 0];
const i32LtS = [0x48];
const select = [0x1b];
const ifVoid = [0x04, 0x40];
const ifF32 = [0x04, F32];
const orElse = [0x05];
const end = [0x0b];
const shuffle = (lanes: readonly number[]): number[] => [...simd(0x0d), ...lanes];
const i32x4Splat = simd(0x11);
const f64x2Splat = simd(0x14);
const f32x4Lane = (lane: number): number[] => [...simd(0x1f), lane];
const store32Lane0 = [...simd(0x5a), 0, 0, 0];
const f64x2PromoteLow = simd(0x5f);
const i8x16NarrowS = simd(0x65);
const i16x8NarrowS = simd(0x85);
const i32x4Sub = simd(0xb1);
const i32x4MinS = simd(0xb6);
const i32x4MaxS = simd(0xb8);
const f32x4Abs = simd(0xe0);
const i8x16Splat = simd(0x0f);
const i8x16Eq = simd(0x23);
const load32Zero = [...simd(0x5c), 0, 0];
const i16x8ExtendLowI8x16S = simd(0x87);
const i32x4ExtendLowI16x8S = simd(0xa7);
const f32Load = [0x2a, 2, 0];
const f32x4Pmax = simd(0xeb); // b < a ? a : b (a NaN in b is passed over)
const v128Or = simd(0x50);
const i32And = [0x71];
const f64x2Add = simd(0xf0);
const f64x2Mul = simd(0xf2);
const i32x4TruncSatF64x2Zero = simd(0xfc);
const f32x4ConvertI32x4 = simd(0xfa);

const i32x4Shl = simd(0xab);
const i32x4ShrU = simd(0xad);
const i32x4Add = simd(0xae);
const i32x4MinU = simd(0xb7);
const i32x4MaxU = simd(0xb9);
const i32x4GtU = simd(0x3c);
const i32x4LtU = simd(0x3a);
const v128And = simd(0x4e);
const bitselect = simd(0x52); // (a, b, mask): a where mask is set, else b
const i16x8NarrowI32x4U = simd(0x86);
const i32x4ExtendLowI16x8U = simd(0xa9);
const i32x4ExtendHighI16x8U = simd(0xaa);
const loadAt = (offset: number): number[] => [...simd(0x00), 4, ...wasm.uleb(offset)];
const storeAt = (offset: number): number[] => [...simd(0x0b), 4, ...wasm.uleb(offset)];
const splatI32 = (c: number): number[] => [...i32(c | 0), ...i32x4Splat];
const splatF32 = (x: number): number[] => [...f32Const(x), ...splat];
const i8x16Shl = simd(0x6b);
const i8x16ShrS = simd(0x6c);
const i32x4ExtendHighI16x8S = simd(0xa8);
const store64Lane0 = [...simd(0x5b), 0, 0, 0];

const MAX_F32 = 3.4028234663852886e38;

/** `$bEnd = min($p + $bs * 4, $end)`: where the block starting at byte address `p` ends. */
const blockEnd = (p: number, bs: number, end: number, bEnd: number): number[] => [
  ...get(p), ...get(bs), ...i32(2), ...i32Shl, ...i32Add, ...tee(bEnd), ...get(end), ...get(bEnd), ...get(end), ...i32LtU, ...select, ...set(bEnd),
];

// add_into / sub_into(d, a, len): d[i] = d[i] + a[i] or d[i] - a[i], len a multiple of 4.
//   locals: end 3
const COMBINE = (op: number[], name: string): wasm.WasmFunction => ({
  name,
  params: [I32, I32, I32],
  results: [],
  locals: [I32],
  code: [...endOf(0, 2, 3), ...loop([0, 1], 3, [...get(0), ...get(0), ...load, ...get(1), ...load, ...op, ...store])],
});

// quantize(d, q, scales, len, bs, limit, held, next) -> first non-finite block or -1
//   d: len float32 values (len a multiple of 4, zero past the tensor's end); q: len int8 codes;
//   scales: a float32 per block of bs elements (bs a multiple of 4); held, next: 0 when absent, else
//   len float32 values: held[i] += k × scale (a change-coded pull), next[i] = d[i] − k × scale (error feedback).
// Parameters 0-7; locals: p 8, dEnd 9, start 10, blockEnd 11, qp 12, hp 13, np 14, sp 15, blk 16, bad 17,
//   max 18 (f32), scale 19 (f32), vmax 20, v 21, k 22, sent 23, INV 24, BIAS 25, SCALE 26, L1 27, LIM 28, NLIM 29, NANS 30.
const [D, Q, SCALES, LEN, BS, LIMIT, HELD, NEXT] = [0, 1, 2, 3, 4, 5, 6, 7];
const [P, DEND, START, BEND, QP, HP, NP, SP, BLK, BAD, MAX, SCALE, VMAX, V, K, SENT, INV, BIAS, VSCALE, L1, LIM, NLIM, NANS] = Array.from({ length: 23 }, (_, i) => i + 8) as [
  number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number,
];
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const LOW_LANES_OF_BOTH = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
/** Two lanes in double precision: trunc(lanes × INV + BIAS), as i32x4 [a, b, 0, 0]. */
const roundHalf = (half: number[]): number[] => [...half, ...f64x2PromoteLow, ...get(INV), ...f64x2Mul, ...get(BIAS), ...f64x2Add, ...i32x4TruncSatF64x2Zero];
const advance = [16, 4, 16, 16];
type Mode = 'plain' | 'held' | 'next';
const quantizeFn = (mode: Mode): wasm.WasmFunction => ({
  name: `quantize_${mode}`,
  params: [I32, I32, I32, I32, I32, I32, I32, I32],
  results: [I32],
  locals: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, F32, F32, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128],
  code: [
    ...endOf(D, LEN, DEND),
    ...get(D), ...set(P), ...get(Q), ...set(QP), ...get(HELD), ...set(HP), ...get(NEXT), ...set(NP), ...get(SCALES), ...set(SP),
    ...i32(0), ...set(BLK), ...i32(-1), ...set(BAD),
    ...get(LIMIT), ...f64ConvertI32, ...f64Const(1.5), ...f64Add, ...f64x2Splat, ...set(BIAS),
    ...get(LIMIT), ...i32(1), ...i32Add, ...i32x4Splat, ...set(L1),
    ...get(LIMIT), ...i32x4Splat, ...set(LIM),
    ...i32(0), ...get(LIMIT), ...i32Sub, ...i32x4Splat, ...set(NLIM),
    // Each block.
    ...whileBelow(P, DEND, [
      ...get(P), ...set(START),
      ...blockEnd(P, BS, DEND, BEND),
      // max |d| over the block (pmax: one instruction, where f32x4.max's NaN rule takes several), and in NANS
      // every lane that held a NaN (x ≠ x); ±Infinity shows in the maximum.
      ...f32Const(0), ...splat, ...tee(VMAX), ...set(NANS),
      ...loop([P], BEND, [
        ...get(P), ...load, ...tee(V), ...f32x4Abs, ...get(VMAX), ...f32x4Pmax, ...set(VMAX),
        ...get(NANS), ...get(V), ...get(V), ...ne, ...v128Or, ...set(NANS),
      ]),
      ...get(VMAX), ...f32x4Lane(0), ...get(VMAX), ...f32x4Lane(1), ...f32Max, ...get(VMAX), ...f32x4Lane(2), ...get(VMAX), ...f32x4Lane(3), ...f32Max, ...f32Max, ...set(MAX),
      ...get(MAX), ...f32Const(MAX_F32), ...f32Le, ...get(NANS), ...anyTrue, ...i32Eqz, ...i32And,
      ...ifF32, ...get(MAX), ...get(LIMIT), ...f32ConvertI32, ...f32Div,
      ...orElse, ...get(BLK), ...get(BAD), ...get(BAD), ...i32(0), ...i32LtS, ...select, ...set(BAD), ...f32Const(NaN),
      ...end, ...set(SCALE),
      ...get(SP), ...get(SCALE), ...f32Store, ...get(SP), ...i32(4), ...i32Add, ...set(SP),
      ...get(START), ...set(P),
      ...get(SCALE), ...f32Const(0), ...f32Gt,
      ...ifVoid,
      ...f64Const(1), ...get(SCALE), ...f64PromoteF32, ...f64Div, ...f64x2Splat, ...set(INV),
      ...get(SCALE), ...splat, ...set(VSCALE),
      ...loop([P, QP, HP, NP], BEND, [
        ...get(P), ...load, ...set(V),
        ...roundHalf(get(V)), ...roundHalf([...get(V), ...get(V), ...shuffle(HIGH_HALF)]), ...shuffle(LOW_LANES_OF_BOTH),
        ...get(L1), ...i32x4Sub, ...get(LIM), ...i32x4MinS, ...get(NLIM), ...i32x4MaxS, ...set(K),
        ...get(QP), ...get(K), ...get(K), ...i16x8NarrowS, ...get(K), ...i8x16NarrowS, ...store32Lane0,
        ...get(K), ...f32x4ConvertI32x4, ...get(VSCALE), ...mul, ...set(SENT),
        ...(mode === 'held' ? [...get(HP), ...get(HP), ...load, ...get(SENT), ...add, ...store] : []),
        ...(mode === 'next' ? [...get(NP), ...get(V), ...get(SENT), ...sub, ...store] : []),
      ], advance),
      ...orElse,
      // Nothing sent from this block (all zero, too small for a scale, or not finite): codes 0, all of it still owed.
      ...loop([P, QP, HP, NP], BEND, [
        ...get(QP), ...i32(0), ...i32Store,
        ...(mode === 'next' ? [...get(NP), ...get(P), ...load, ...store] : []),
        // held + 0, as the receiver adds its decoded zeros (a held -0 becomes +0).
        ...(mode === 'held' ? [...get(HP), ...get(HP), ...load, ...f32Const(0), ...splat, ...add, ...store] : []),
      ], advance),
      ...end,
      ...get(BLK), ...i32(1), ...i32Add, ...set(BLK),
    ]),
    ...get(BAD),
  ],
});

/**
 * dequantize_<name>(codes, scales, out, len, bs) -> 1 when a code is `refused` (-128 for int8, -8 for int4), else 0:
 * out[i] = code i × its block's scale (the float32 product, as JavaScript's rounded double is). `codes` is the
 * loop body: it reads the codes at qp (local 6), leaves them as i8x16 in local 13 for the refusal check, and
 * stores their floats at op (local 5) times VSCALE (local 10); `steps` advances op and qp.
 * Parameters 0-4; locals: op 5, qp 6, sp 7, oEnd 8, bEnd 9, VSCALE 10, BADS 11, REFUSED 12, codes 13.
 */
const dequantizeFn = (name: string, refused: number, codes: { read: number[]; write: number[] }, steps: readonly number[]): wasm.WasmFunction => ({
  name: `dequantize_${name}`,
  params: [I32, I32, I32, I32, I32],
  results: [I32],
  locals: [I32, I32, I32, I32, I32, V128, V128, V128, V128],
  code: [
    ...get(2), ...set(5), ...get(0), ...set(6), ...get(1), ...set(7),
    ...endOf(2, 3, 8),
    ...i32(refused), ...i8x16Splat, ...set(12),
    ...i32(0), ...i8x16Splat, ...set(11),
    // Each block: its scale, then its codes.
    ...whileBelow(5, 8, [
      ...blockEnd(5, 4, 8, 9),
      ...get(7), ...f32Load, ...splat, ...set(10),
      ...get(7), ...i32(4), ...i32Add, ...set(7),
      ...loop([5, 6], 9, [...codes.read, ...get(13), ...get(12), ...i8x16Eq, ...get(11), ...v128Or, ...set(11), ...codes.write], steps),
    ]),
    ...get(11), ...anyTrue,
  ],
});

// dequantize_i8: four codes an iteration.
const DEQUANTIZE_I8 = dequantizeFn(
  'i8',
  -128,
  {
    read: [...get(6), ...load32Zero, ...set(13)],
    write: [...get(5), ...get(13), ...i16x8ExtendLowI8x16S, ...i32x4ExtendLowI16x8S, ...f32x4ConvertI32x4, ...get(10), ...mul, ...store],
  },
  [16, 4],
);

type QuantizeFn = (d: number, q: number, scales: number, len: number, bs: number, limit: number, held: number, next: number) => number;


// dequantize_i4 (see dequantizeFn): eight codes an iteration from four bytes.
//   int4.ts's layout: element 2k in byte k's low nibble, 2k + 1 in its high nibble; len and bs multiples of 8,
//   so every block starts on a byte and an iteration takes 4 bytes to 8 floats.
const INTERLEAVE_NIBBLES = [0, 16, 1, 17, 2, 18, 3, 19, 4, 4, 4, 4, 4, 4, 4, 4]; // lanes 8-15: a zero lane of the low nibbles
const DEQUANTIZE_I4 = dequantizeFn(
  'i4',
  -8,
  {
    // The eight codes, sign-extended: low nibbles (b << 4) >> 4, high nibbles b >> 4, interleaved.
    read: [
      ...get(6), ...load32Zero, ...tee(13), ...i32(4), ...i8x16Shl, ...i32(4), ...i8x16ShrS,
      ...get(13), ...i32(4), ...i8x16ShrS,
      ...shuffle(INTERLEAVE_NIBBLES), ...set(13),
    ],
    write: [
      ...get(13), ...i16x8ExtendLowI8x16S, ...set(13),
      ...get(5), ...get(13), ...i32x4ExtendLowI16x8S, ...f32x4ConvertI32x4, ...get(10), ...mul, ...store,
      ...get(5), ...get(13), ...i32x4ExtendHighI16x8S, ...f32x4ConvertI32x4, ...get(10), ...mul, ...storeAt(16),
    ],
  },
  [32, 4],
);

// pack_i4(q, out, len): out[k] = (q[2k] & 0xf) | (q[2k + 1] << 4), int4.ts's two codes a byte; 16 codes an
// iteration up to len rounded up to 16 (the codes past len are not the caller's: it copies ceil(n / 2) bytes).
//   locals: end 3, v 4, LOW_NIBBLE 5
const EVEN_BYTES = [0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0];
const ODD_BYTES = [1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0];
const PACK_I4: wasm.WasmFunction = {
  name: 'pack_i4',
  params: [I32, I32, I32],
  results: [],
  locals: [I32, V128, V128],
  code: [
    ...i32(0x0f), ...i8x16Splat, ...set(5),
    ...get(0), ...get(2), ...i32(15), ...i32Add, ...i32(-16), ...i32And, ...i32Add, ...set(3),
    ...loop([0, 1], 3, [
      ...get(0), ...load, ...set(4),
      ...get(1),
      ...get(4), ...get(4), ...shuffle(EVEN_BYTES), ...get(5), ...v128And,
      ...get(4), ...get(4), ...shuffle(ODD_BYTES), ...i32(4), ...i8x16Shl,
      ...v128Or, ...store64Lane0,
    ], [16, 8]),
  ],
};

// fp16 (fp16.ts's toHalfBits and its table, in lanes): the arithmetic of Maratyszcza's FP16 library
// (fp16_ieee_from_fp32_value, fp16_ieee_to_fp32_value), which has the float unit's own round-to-nearest-even
// round the mantissa, with fp16.ts's two departures from IEEE: a result that would be infinite saturates to
// ±65504, and NaN becomes 0x7e00 with its sign. Eight values an iteration; len a multiple of 8.
// f16_encode(src, out, len): out[i] = the half of src[i] (u16, little endian).
//   locals: end 3, x 4, constants 5-14, 2w 15, t 16, first four 17
const [TO_INF, TO_ZERO, SIGN, EXP8, MIN_BIAS, BIAS_ADD, EXP5, MANT12, MAX_HALF, NAN_HALF] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
/** The halves of the four floats at src + offset, as i32x4 lanes of 0..0xffff. */
const halvesAt = (offset: number): number[] => [
  ...get(0), ...loadAt(offset), ...set(4),
  // base = (|x| × 2^112) × 2^-110: out of half's range it overflows to Infinity, below it keeps every bit.
  ...get(4), ...f32x4Abs, ...get(TO_INF), ...mul, ...get(TO_ZERO), ...mul,
  // + the float with bits max(2w & 0xff000000, 0x71000000) / 2 + 0x07800000: the sum rounds base at half's last place.
  ...get(4), ...get(4), ...i32x4Add, ...tee(15), ...get(EXP8), ...v128And, ...get(MIN_BIAS), ...i32x4MaxU, ...i32(1), ...i32x4ShrU, ...get(BIAS_ADD), ...i32x4Add,
  ...add, ...set(16),
  // nonsign = ((bits >> 13) & 0x7c00) + (bits & 0xfff), saturated at 0x7bff (Infinity and overflows: ±65504).
  ...get(16), ...i32(13), ...i32x4ShrU, ...get(EXP5), ...v128And, ...get(16), ...get(MANT12), ...v128And, ...i32x4Add, ...get(MAX_HALF), ...i32x4MinU, ...set(16),
  // NaN (2w > 0xff000000): 0x7e00. Then the sign, moved down to bit 15.
  ...get(NAN_HALF), ...get(16), ...get(15), ...get(EXP8), ...i32x4GtU, ...bitselect,
  ...get(4), ...get(SIGN), ...v128And, ...i32(16), ...i32x4ShrU, ...v128Or,
];
const F16_ENCODE: wasm.WasmFunction = {
  name: 'f16_encode',
  params: [I32, I32, I32],
  results: [],
  locals: [I32, ...Array.from({ length: 14 }, () => V128)],
  code: [
    ...[splatF32(2 ** 112), splatF32(2 ** -110), splatI32(0x80000000), splatI32(0xff000000), splatI32(0x71000000),
      splatI32(0x07800000), splatI32(0x7c00), splatI32(0xfff), splatI32(0x7bff), splatI32(0x7e00)].flatMap((c, k) => [...c, ...set(TO_INF + k)]),
    ...endOf(0, 2, 3),
    ...loop([0, 1], 3, [...halvesAt(0), ...set(17), ...get(1), ...get(17), ...halvesAt(16), ...i16x8NarrowI32x4U, ...store], [32, 16]),
  ],
};

// f16_decode(halves, out, len): out[i] = the float32 of half i.
//   locals: end 3, eight halves 4, constants 5-10, w 11, 2w 12
const [D_SIGN, EXP_OFFSET, EXP_SCALE, MAGIC, ONE_HALF, CUTOFF] = [5, 6, 7, 8, 9, 10];
/** The i32x4 of four halves on the stack → their float32s. */
const floatsOf: number[] = [
  ...i32(16), ...i32x4Shl, ...tee(11), ...get(11), ...i32x4Add, ...set(12),
  ...get(11), ...get(D_SIGN), ...v128And,
  // Subnormal (2w < 2^27): float(0x3f000000 | 2w >> 17) − 0.5; else float((2w >> 4) + 0x70000000) × 2^-112.
  ...get(12), ...i32(17), ...i32x4ShrU, ...get(MAGIC), ...v128Or, ...get(ONE_HALF), ...sub,
  ...get(12), ...i32(4), ...i32x4ShrU, ...get(EXP_OFFSET), ...i32x4Add, ...get(EXP_SCALE), ...mul,
  ...get(12), ...get(CUTOFF), ...i32x4LtU, ...bitselect,
  ...v128Or,
];
const F16_DECODE: wasm.WasmFunction = {
  name: 'f16_decode',
  params: [I32, I32, I32],
  results: [],
  locals: [I32, ...Array.from({ length: 9 }, () => V128)],
  code: [
    ...[splatI32(0x80000000), splatI32(0x70000000), splatF32(2 ** -112), splatI32(126 << 23), splatF32(0.5), splatI32(1 << 27)].flatMap((c, k) => [...c, ...set(D_SIGN + k)]),
    ...endOf(1, 2, 3),
    ...loop([1, 0], 3, [
      ...get(0), ...load, ...set(4),
      ...get(1), ...get(4), ...i32x4ExtendLowI16x8U, ...floatsOf, ...store,
      ...get(1), ...get(4), ...i32x4ExtendHighI16x8U, ...floatsOf, ...storeAt(16),
    ], [32, 16]),
  ],
};

type DequantizeFn = (codes: number, scales: number, out: number, len: number, bs: number) => number;

export interface QuantizeExports {
  pack_i4(q: number, out: number, len: number): void;
  dequantize_i4: DequantizeFn;
  f16_encode(src: number, out: number, len: number): void;
  f16_decode(halves: number, out: number, len: number): void;
  dequantize_i8: DequantizeFn;
  add_into(d: number, a: number, len: number): void;
  sub_into(d: number, a: number, len: number): void;
  quantize_plain: QuantizeFn;
  quantize_held: QuantizeFn;
  quantize_next: QuantizeFn;
}

export function encodeQuantizeModule(): Uint8Array<ArrayBuffer> {
  return encodeModule([COMBINE(add, 'add_into'), COMBINE(sub, 'sub_into'), quantizeFn('plain'), quantizeFn('held'), quantizeFn('next'), DEQUANTIZE_I8, DEQUANTIZE_I4, PACK_I4, F16_ENCODE, F16_DECODE]);
}

