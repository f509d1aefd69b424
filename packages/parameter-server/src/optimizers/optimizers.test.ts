import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { OPTIMIZER_NAMES, Random, TampError, createTfOptimizer, optimizerSettings } from '@tamp/core';
import { createServerOptimizer } from './index.js';
import { KERNELS_ENV, KernelArena, MAX_ARENA_BYTES, encodeKernelModule, kernelsFromEnv, lanes, serverKernels, setServerKernels } from './wasm-kernels.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const sizes = [1, 7, 300, 4096];
const STEPS = 6;

/** tf.train.<name> on the cpu backend: the variables after STEPS steps. */
function tfReference(name: (typeof OPTIMIZER_NAMES)[number], lr: number, initial: Float32Array[], grads: Float32Array[][]): Float32Array[] {
  const vars = initial.map((v, i) => tf.variable(tf.tensor1d(v), true, `v${name}${i}${Math.random()}`));
  const reference = createTfOptimizer(optimizerSettings(name, lr));
  for (const step of grads) {
    const map: Record<string, tf.Tensor> = {};
    step.forEach((g, i) => (map[(vars[i] as tf.Variable).name] = tf.tensor1d(g)));
    reference.applyGradients(map);
    tf.dispose(Object.values(map));
  }
  const out = vars.map((v) => v.dataSync() as Float32Array);
  tf.dispose(vars);
  reference.dispose();
  return out;
}

function problem(name: string) {
  const r = new Random(3);
  const lr = name === 'sgd' ? 0.1 : 0.01;
  const initial = sizes.map((n) => Float32Array.from({ length: n }, () => r.normal()));
  const grads = Array.from({ length: STEPS }, () => sizes.map((n) => Float32Array.from({ length: n }, () => r.normal() * 0.5)));
  return { lr, initial, grads };
}

describe('server-side optimizers match tf.train on the same gradients', () => {
  for (const name of OPTIMIZER_NAMES) {
    it(`${name}: JavaScript loops, within 1e-6`, () => {
      const { lr, initial, grads } = problem(name);
      const expected = tfReference(name, lr, initial, grads);
      const opt = createServerOptimizer(optimizerSettings(name, lr));
      expect(opt.kernels).toBe('js');
      const values = initial.map((v) => v.slice());
      const slots = values.map((v) => opt.slotNames.map((s) => opt.initSlot(s, v.length)));
      for (const step of grads) {
        step.forEach((g, i) => opt.apply(values[i] as Float32Array, g, slots[i] as Float32Array[]));
        opt.endStep();
      }
      for (let i = 0; i < sizes.length; i++) {
        const a = values[i] as Float32Array;
        const b = expected[i] as Float32Array;
        let worst = 0;
        for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs((a[j] as number) - (b[j] as number)) / Math.max(1, Math.abs(b[j] as number)));
        expect(worst, `${name}, variable of ${sizes[i]} elements`).toBeLessThanOrEqual(1e-6);
      }
    });

    it(`${name}: WebAssembly SIMD loops, bit for bit, padding lanes stay zero`, () => {
      const { lr, initial, grads } = problem(name);
      const expected = tfReference(name, lr, initial, grads);
      const probe = createServerOptimizer(optimizerSettings(name, lr));
      const arena = KernelArena.create(sizes.flatMap((n) => new Array<number>(1 + probe.slotNames.length).fill(n)));
      expect(arena, 'this Node has WebAssembly SIMD').not.toBeNull();
      const opt = createServerOptimizer(optimizerSettings(name, lr), arena);
      expect(opt.kernels).toBe('wasm-simd');
      const values = initial.map((v) => {
        const a = (arena as KernelArena).alloc(v.length);
        a.set(v);
        return a;
      });
      const slots = values.map((v) => opt.slotNames.map((s) => opt.initSlot(s, v.length)));
      // Largest gradient first, then the small ones: the staging area's tail must be cleared each time.
      for (const step of grads) {
        for (let i = sizes.length - 1; i >= 0; i--) opt.apply(values[i] as Float32Array, step[i] as Float32Array, slots[i] as Float32Array[]);
        opt.endStep();
      }
      for (let i = 0; i < sizes.length; i++) {
        const a = values[i] as Float32Array;
        expect(Array.from(a), `${name}, variable of ${sizes[i]} elements`).toEqual(Array.from(expected[i] as Float32Array));
        for (const arr of [a, ...(slots[i] as Float32Array[])]) {
          const padded = new Float32Array(arr.buffer, arr.byteOffset, lanes(arr.length));
          expect(Array.from(padded.subarray(arr.length)), 'padding lanes').toEqual(new Array<number>(lanes(arr.length) - arr.length).fill(0));
        }
      }
    });
  }
});

describe('kernel arena', () => {
  it('is a valid WebAssembly module and the default kernels', () => {
    expect(WebAssembly.validate(encodeKernelModule())).toBe(true);
    expect(serverKernels()).toBe('wasm-simd');
  });

  it('aligns arrays to 16 bytes, refuses to overflow, and declines what would not fit', () => {
    const arena = KernelArena.create([5, 3]) as KernelArena;
    const a = arena.alloc(5);
    const b = arena.alloc(3);
    expect([a.byteOffset % 16, b.byteOffset % 16, b.byteOffset - a.byteOffset]).toEqual([0, 0, 32]);
    expect(arena.holds(a) && !arena.holds(new Float32Array(5))).toBe(true);
    expect(() => arena.alloc(1)).toThrow(RangeError);
    expect(arena.stage(new Float32Array(8).fill(1))).toBeGreaterThan(b.byteOffset); // the longest array, padded to lanes
    expect(() => arena.stage(new Float32Array(9))).toThrow(RangeError);
    expect(KernelArena.create([MAX_ARENA_BYTES / 4])).toBeNull();
  });

  it('setServerKernels("js") turns the arena off', () => {
    setServerKernels('js');
    try {
      expect(serverKernels()).toBe('js');
      expect(KernelArena.create([4])).toBeNull();
    } finally {
      setServerKernels('wasm-simd');
    }
  });

  it('TAMP_PS_KERNELS chooses the loops; an unknown value is a USAGE error naming the variable', () => {
    expect(kernelsFromEnv({})).toBe('wasm-simd');
    expect(kernelsFromEnv({ [KERNELS_ENV]: '' })).toBe('wasm-simd');
    expect(kernelsFromEnv({ [KERNELS_ENV]: 'js' })).toBe('js');
    expect(kernelsFromEnv({ [KERNELS_ENV]: 'wasm-simd' })).toBe('wasm-simd');
    let error: unknown;
    try {
      kernelsFromEnv({ [KERNELS_ENV]: 'JS ' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TampError);
    expect((error as TampError).code).toBe('USAGE');
    expect((error as Error).message).toContain(KERNELS_ENV);
  });
});

describe('staysFinite: the update\'s WebAssembly twin', () => {
  const n = 301; // not a whole number of lanes: the last lane is part padding
  const finiteAll = (arrays: readonly Float32Array[]) => arrays.every((a) => a.every((x) => Number.isFinite(x)));

  for (const name of OPTIMIZER_NAMES) {
    it(`${name}: says what applying the update says, stores nothing; JavaScript loops answer undefined`, () => {
      const lr = name === 'sgd' ? 0.1 : 0.01;
      const probe = createServerOptimizer(optimizerSettings(name, lr));
      expect(probe.staysFinite(new Float32Array(n), new Float32Array(n), probe.slotNames.map(() => new Float32Array(n)))).toBeUndefined();
      // Room for the variable and its slots, and a copy of each to apply the update to.
      const arena = KernelArena.create(new Array<number>(2 * (1 + probe.slotNames.length)).fill(n)) as KernelArena;
      const opt = createServerOptimizer(optimizerSettings(name, lr), arena);
      const r = new Random(5);
      const value = arena.alloc(n);
      value.set(Float32Array.from({ length: n }, () => r.normal()));
      const slots = opt.slotNames.map((s) => opt.initSlot(s, n));
      for (let step = 0; step < 3; step++) {
        opt.apply(value, Float32Array.from({ length: n }, () => r.normal()), slots);
        opt.endStep();
      }
      const copies = [value, ...slots].map(() => arena.alloc(n));
      const cases: Array<[string, (g: Float32Array) => void]> = [
        ['ordinary', () => undefined],
        ['1e20 at the first element (its square overflows float32)', (g) => (g[0] = 1e20)],
        ['1e20 at the last element, in the lane with padding', (g) => (g[n - 1] = 1e20)],
        ['3e38 in the middle', (g) => (g[150] = 3e38)],
        ['-3.4e38 everywhere', (g) => g.fill(-3.4e38)],
        ['Infinity', (g) => (g[7] = Infinity)],
        ['NaN at the last element', (g) => (g[n - 1] = NaN)],
      ];
      const verdicts: boolean[] = [];
      for (const [label, edit] of cases) {
        const grad = Float32Array.from({ length: n }, () => r.normal());
        edit(grad);
        const before = [value, ...slots].map((a) => a.slice());
        const said = opt.staysFinite(value, grad, slots);
        expect([value, ...slots].map((a) => Array.from(a)), `${label}: nothing stored`).toEqual(before.map((a) => Array.from(a)));
        copies.forEach((c, i) => c.set(before[i] as Float32Array));
        opt.apply(copies[0] as Float32Array, grad, copies.slice(1));
        expect(said, label).toBe(finiteAll(copies));
        verdicts.push(said as boolean);
      }
      // Both answers occur for every optimizer (a test that could only say true would prove nothing).
      expect(verdicts).toContain(true);
      expect(verdicts).toContain(false);
    });
  }
});
