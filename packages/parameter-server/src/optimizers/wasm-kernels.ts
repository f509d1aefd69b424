/**
 * The optimizers' update loops in WebAssembly SIMD (four float32 lanes per
 * instruction), for the parameter server's hot path. V8 compiles the
 * JavaScript loops to one scalar double operation at a time (Adam applied
 * about 0.5 GB/s of gradients in `pnpm bench:train`); these run 4-7 times
 * faster on the same core.
 *
 * Every lane does tfjs's float32 operations in tfjs's order, each rounded to
 * float32 as IEEE single precision rounds it, so the results are bit-for-bit
 * what tf.train computes with float32 tensors.
 *
 * WebAssembly code reads only its own memory: a shard keeps its variables,
 * their slots and one staging area for a gradient in a `KernelArena` (one
 * WebAssembly.Memory, sized once at assign, never grown, so the
 * Float32Array views the rest of the shard holds stay valid). A shard too big
 * for one arena, or a runtime without WebAssembly SIMD, uses the JavaScript
 * loops (see each optimizer).
 *
 * The module is small enough to write by hand (with @tamp/core's `wasm`
 * encoder); the text format of each function is in the comment above it.
 */

import { UsageError, wasm } from '@tamp/core/base';

const { F32, I32, V128, add, anyTrue, div, drop, encodeModule, endOf, get, i32Eqz, load, loop, mul, ne, set, splat, sqrt, store, sub } = wasm;

interface Func {
  readonly name: string;
  readonly params: readonly number[];
  /** Extra locals, in order after the parameters. */
  readonly locals: readonly number[];
  /**
   * The loop, given the instructions that take (address, value) off the
   * stack: `store` in the update; in its `_finite` twin (finiteTwin), a
   * check that stores nothing. No body reads back what it stored.
   */
  readonly body: (st: readonly number[]) => number[];
}

// sgd(value, grad, n, c): value[i] = value[i] + c * grad[i]       (tf.train.sgd: add(mul(c, g), value))
//   locals: end 4, C 5
const SGD: Func = {
  name: 'sgd',
  params: [I32, I32, I32, F32],
  locals: [I32, V128],
  body: (st) => [
    ...get(3), ...splat, ...set(5),
    ...endOf(0, 2, 4),
    ...loop([0, 1], 4, [
      ...get(0),
      ...get(5), ...get(1), ...load, ...mul,
      ...get(0), ...load, ...add,
      ...st,
    ]),
  ],
};

// momentum(value, grad, acc, n, m, c): a = m * a + g; value = c * a + value
//   (tf.train.momentum without Nesterov: add(mul(accumulation, m), g); add(mul(a, c), value))
//   locals: end 6, M 7, C 8, a 9
const MOMENTUM: Func = {
  name: 'momentum',
  params: [I32, I32, I32, I32, F32, F32],
  locals: [I32, V128, V128, V128],
  body: (st) => [
    ...get(4), ...splat, ...set(7),
    ...get(5), ...splat, ...set(8),
    ...endOf(0, 3, 6),
    ...loop([0, 1, 2], 6, [
      ...get(2), ...load, ...get(7), ...mul, ...get(1), ...load, ...add, ...set(9),
      ...get(2), ...get(9), ...st,
      ...get(0),
      ...get(9), ...get(8), ...mul,
      ...get(0), ...load, ...add,
      ...st,
    ]),
  ],
};

// adam(value, grad, m, v, n, b1, 1-b1, b2, 1-b2, 1-b1^t, 1-b2^t, eps, -lr):
//   m = m*b1 + g*(1-b1); v = v*b2 + (g*g)*(1-b2);
//   value = ((m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)) * -lr + value     (tf.train.adam's order)
//   locals: end 13, g 14, m' 15, v' 16, B1 17, OB1 18, B2 19, OB2 20, C1 21, C2 22, E 23, L 24
const ADAM: Func = {
  name: 'adam',
  params: [I32, I32, I32, I32, I32, F32, F32, F32, F32, F32, F32, F32, F32],
  locals: [I32, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128],
  body: (st) => [
    ...[5, 6, 7, 8, 9, 10, 11, 12].flatMap((p) => [...get(p), ...splat, ...set(p + 12)]),
    ...endOf(0, 4, 13),
    ...loop([0, 1, 2, 3], 13, [
      ...get(1), ...load, ...set(14),
      ...get(2), ...load, ...get(17), ...mul, ...get(14), ...get(18), ...mul, ...add, ...set(15),
      ...get(3), ...load, ...get(19), ...mul, ...get(14), ...get(14), ...mul, ...get(20), ...mul, ...add, ...set(16),
      ...get(2), ...get(15), ...st,
      ...get(3), ...get(16), ...st,
      ...get(0),
      ...get(15), ...get(21), ...div,
      ...get(16), ...get(22), ...div, ...sqrt, ...get(23), ...add,
      ...div, ...get(24), ...mul,
      ...get(0), ...load, ...add,
      ...st,
    ]),
  ],
};

// adagrad(value, grad, acc, n, c, eps): a = a + g*g; value = (g / sqrt(a + eps)) * c + value
//   (tf.train.adagrad: add(accumulated, square(g)); add(mul(div(g, sqrt(add(a, backend epsilon))), -lr), value))
//   locals: end 6, C 7, E 8, g 9, a 10
const ADAGRAD: Func = {
  name: 'adagrad',
  params: [I32, I32, I32, I32, F32, F32],
  locals: [I32, V128, V128, V128, V128],
  body: (st) => [
    ...get(4), ...splat, ...set(7),
    ...get(5), ...splat, ...set(8),
    ...endOf(0, 3, 6),
    ...loop([0, 1, 2], 6, [
      ...get(1), ...load, ...set(9),
      ...get(2), ...load, ...get(9), ...get(9), ...mul, ...add, ...set(10),
      ...get(2), ...get(10), ...st,
      ...get(0),
      ...get(9), ...get(10), ...get(8), ...add, ...sqrt, ...div, ...get(7), ...mul,
      ...get(0), ...load, ...add,
      ...st,
    ]),
  ],
};

type Compiled = wasm.WasmFunction;

const update = (f: Func): Compiled => ({ name: f.name, params: f.params, results: [], locals: f.locals, code: f.body(store) });

/**
 * `<name>_finite(same arguments) -> i32`: 1 when the update would leave
 * every value it stores finite, 0 when one would be NaN or ±Infinity; it
 * stores nothing. The same loop with each store replaced by acc += x − x
 * (0 for finite x, NaN otherwise), so the verdict is exactly the update's:
 * one pass that reads what the update reads, where computing the update on
 * copies of the value and its slots took a copy and a scan of each besides
 * the update. It covers the padding lanes too: where the update itself
 * would leave a NaN there (Adam with ε = 0 computes 0/0 on zeros), it
 * answers 0 and the caller's copy, which scans only the real elements,
 * decides.
 */
function finiteTwin(f: Func): Compiled {
  const x = f.params.length + f.locals.length;
  const acc = x + 1;
  const check = [...set(x), ...drop, ...get(acc), ...get(x), ...get(x), ...sub, ...add, ...set(acc)];
  return {
    name: `${f.name}_finite`,
    params: f.params,
    results: [I32],
    locals: [...f.locals, V128, V128],
    code: [...f.body(check), ...get(acc), ...get(acc), ...ne, ...anyTrue, ...i32Eqz],
  };
}

const FUNCS: readonly Compiled[] = [SGD, MOMENTUM, ADAM, ADAGRAD].flatMap((f) => [update(f), finiteTwin(f)]);

/** The module: imports its memory as env.memory, exports each optimizer's update and its `_finite` check. */
export function encodeKernelModule(): Uint8Array<ArrayBuffer> {
  return encodeModule(FUNCS);
}

// ---------------------------------------------------------------------------

export interface KernelExports {
  sgd(value: number, grad: number, n: number, c: number): void;
  momentum(value: number, grad: number, acc: number, n: number, m: number, c: number): void;
  adam(value: number, grad: number, m: number, v: number, n: number, b1: number, oneMinusB1: number, b2: number, oneMinusB2: number, corr1: number, corr2: number, eps: number, negLr: number): void;
  adagrad(value: number, grad: number, acc: number, n: number, c: number, eps: number): void;
  /** The `_finite` twins (finiteTwin): 1 when the update with these arguments would leave everything it stores finite. */
  sgd_finite(value: number, grad: number, n: number, c: number): number;
  momentum_finite(value: number, grad: number, acc: number, n: number, m: number, c: number): number;
  adam_finite(value: number, grad: number, m: number, v: number, n: number, b1: number, oneMinusB1: number, b2: number, oneMinusB2: number, corr1: number, corr2: number, eps: number, negLr: number): number;
  adagrad_finite(value: number, grad: number, acc: number, n: number, c: number, eps: number): number;
}

let compiled: WebAssembly.Module | null | undefined;

/** The compiled module, or null where this runtime has no WebAssembly SIMD. */
function kernelModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    const bytes = encodeKernelModule();
    compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiled;
}

export type KernelKind = 'wasm-simd' | 'js';
export const KERNEL_KINDS: readonly KernelKind[] = ['wasm-simd', 'js'];

/** Environment variable the `tamp ps` role reads: `js` selects the JavaScript loops. */
export const KERNELS_ENV = 'TAMP_PS_KERNELS';

/** The kernels the environment asks for (unset or empty: WebAssembly SIMD); anything else is a UsageError. */
export function kernelsFromEnv(env: NodeJS.ProcessEnv = process.env): KernelKind {
  const raw = env[KERNELS_ENV];
  if (raw === undefined || raw === '') return 'wasm-simd';
  if ((KERNEL_KINDS as readonly string[]).includes(raw)) return raw as KernelKind;
  throw new UsageError(`${KERNELS_ENV}="${raw}": give wasm-simd (the default) or js`);
}

let preferred: KernelKind = 'wasm-simd';

/**
 * Which update loops shards assigned from now on use: WebAssembly SIMD (the
 * default where the runtime has it) or JavaScript. `tamp ps` sets it from
 * TAMP_PS_KERNELS; tests and benchmarks compare the two.
 */
export function setServerKernels(kind: KernelKind): void {
  preferred = kind;
}

/** The kernels a shard assigned now would use. */
export function serverKernels(): KernelKind {
  return preferred === 'wasm-simd' && kernelModule() !== null ? 'wasm-simd' : 'js';
}

const PAGE = 65536;
/** Largest arena: a 32-bit WebAssembly memory addresses 4 GiB; stay well inside it. */
export const MAX_ARENA_BYTES = 2 ** 31;

/** A zeroed array of `n` floats: in the arena when there is one (so the kernels can reach it), else on the JavaScript heap. */
export function allocFloats(arena: KernelArena | null, n: number): Float32Array {
  return arena?.alloc(n) ?? new Float32Array(n);
}

/** Elements rounded up to whole lanes of four (16 bytes). */
export const lanes = (n: number): number => (n + 3) & ~3;

/**
 * One WebAssembly memory holding a shard's arrays and a gradient staging
 * area, with the kernels bound to it. Arrays are 16-byte aligned and padded
 * to whole lanes (padding stays zero, so the lanes past an array's end
 * compute on zeros).
 */
export class KernelArena {
  readonly memory: WebAssembly.Memory;
  readonly kernels: KernelExports;
  private next = 0;
  private readonly stagingOffset: number;
  /** The staging area, made once: the memory never grows, so the view stays valid. */
  private readonly staging: Float32Array;

  /** Room for arrays of `arrayFloats` elements in all (each padded to lanes) and a staging area of `stagingFloats`. */
  private constructor(module: WebAssembly.Module, arrayFloats: number, stagingFloats: number) {
    const bytes = (arrayFloats + lanes(stagingFloats)) * 4;
    this.memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE)) });
    this.kernels = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as KernelExports;
    this.stagingOffset = arrayFloats * 4;
    this.staging = new Float32Array(this.memory.buffer, this.stagingOffset, lanes(stagingFloats));
  }

  /**
   * An arena for arrays of the given lengths (each padded to lanes) and a
   * staging area as long as the longest, or null when the kernels are off,
   * unavailable, or the arrays would not fit.
   */
  static create(lengths: readonly number[]): KernelArena | null {
    const module = serverKernels() === 'wasm-simd' ? kernelModule() : null;
    if (module === null || lengths.length === 0) return null;
    const arrayFloats = lengths.reduce((a, n) => a + lanes(n), 0);
    const staging = Math.max(...lengths);
    if ((arrayFloats + lanes(staging)) * 4 > MAX_ARENA_BYTES) return null;
    try {
      return new KernelArena(module, arrayFloats, staging);
    } catch {
      return null; // the memory could not be reserved: the JavaScript loops still work
    }
  }

  /** A zeroed array of `n` elements inside the arena. */
  alloc(n: number): Float32Array {
    const offset = this.next;
    // Internal invariant: ShardStorage.build sizes the arena for exactly the arrays it then allocates.
    if (offset + lanes(n) * 4 > this.stagingOffset) throw new RangeError(`kernel arena: no room for ${n} more elements (planned for fewer)`);
    this.next += lanes(n) * 4;
    return new Float32Array(this.memory.buffer, offset, n);
  }

  /** True when `a` lives in this arena (so the kernels can address it). */
  holds(a: Float32Array): boolean {
    return a.buffer === this.memory.buffer;
  }

  /** Copy a gradient into the staging area (zero-padded to lanes); returns its byte address. */
  stage(grad: Float32Array): number {
    // Internal invariant: the staging area is as long as the longest part, and validation refuses a gradient of another length.
    if (grad.length > this.staging.length) throw new RangeError(`kernel arena: a gradient of ${grad.length} elements is longer than the staging area (${this.staging.length})`);
    this.staging.set(grad);
    this.staging.fill(0, grad.length, lanes(grad.length));
    return this.stagingOffset;
  }
}
