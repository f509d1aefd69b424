/**
 * A minimal WebAssembly binary encoder: just what Tamp's hand-written SIMD
 * loops need (the parameter server's optimizer updates, the wire codecs'
 * quantizer). Each module imports its memory as `env.memory` and exports its
 * functions by name; a function's body is a flat list of instruction bytes,
 * built from the helpers below. Browser-safe (no Node APIs).
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => [...uleb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

// Instructions.
export const get = (i: number): number[] => [0x20, ...uleb(i)];
export const set = (i: number): number[] => [0x21, ...uleb(i)];
export const tee = (i: number): number[] => [0x22, ...uleb(i)];
export const i32 = (n: number): number[] => [0x41, ...sleb(n)];
export const i32Add = [0x6a];
export const i32Sub = [0x6b];
export const i32Mul = [0x6c];
export const i32Shl = [0x74];
export const i32GeU = [0x4f];
export const i32LtU = [0x49];
export const i32Eqz = [0x45];
export const drop = [0x1a];
export const simd = (op: number): number[] => [0xfd, ...uleb(op)];
/** v128.load / v128.store with 16-byte alignment (log2 4) and offset 0. */
export const load = [...simd(0x00), 4, 0];
export const store = [...simd(0x0b), 4, 0];
export const splat = simd(0x13); // f32x4.splat
export const sqrt = simd(0xe3);
export const add = simd(0xe4);
export const sub = simd(0xe5);
export const mul = simd(0xe6);
export const div = simd(0xe7);
export const ne = simd(0x42); // f32x4.ne
export const anyTrue = simd(0x53); // v128.any_true

/** `(block (loop (br_if 1 (i32.ge_u $p $end)) body... (br 0)))`: repeat `body` while local `p` is below local `end`. */
export function whileBelow(p: number, end: number, body: number[]): number[] {
  return [0x02, 0x40, 0x03, 0x40, ...get(p), ...get(end), ...i32GeU, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];
}

/**
 * A loop over whole vectors: whileBelow(pointers[0], end) with each pointer
 * advanced by its step (16 unless given) after the body. `pointers` are the
 * local indices of the byte addresses walked together.
 */
export function loop(pointers: readonly number[], end: number, body: number[], steps: readonly number[] = []): number[] {
  const advance = pointers.flatMap((p, k) => [...get(p), ...i32(steps[k] ?? 16), ...i32Add, ...set(p)]);
  return whileBelow(pointers[0] as number, end, [...body, ...advance]);
}

/** `$end = $p + $n * 4` ($n counts float32 elements). */
export const endOf = (p: number, n: number, end: number): number[] => [...get(p), ...get(n), ...i32(2), ...i32Shl, ...i32Add, ...set(end)];

/** One function: its parameter and result types, its extra locals (in order after the parameters), and its body's instructions. */
export interface WasmFunction {
  readonly name: string;
  readonly params: readonly number[];
  readonly results: readonly number[];
  readonly locals: readonly number[];
  readonly code: readonly number[];
}

/** A module that imports its memory as env.memory and exports each function by name. */
export function encodeModule(funcs: readonly WasmFunction[]): Uint8Array<ArrayBuffer> {
  const types = funcs.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec(f.results.map((r) => [r]))]);
  const imports = vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]]);
  const functions = vec(funcs.map((_, i) => uleb(i)));
  const exports = vec(funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]));
  const bodies = vec(
    funcs.map((f) => {
      const locals = vec(f.locals.map((t) => [1, t]));
      const code = [...locals, ...f.code, 0x0b];
      return [...uleb(code.length), ...code];
    }),
  );
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, functions),
    ...section(7, exports),
    ...section(10, bodies),
  ]);
}
