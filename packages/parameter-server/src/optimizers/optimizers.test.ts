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

describe("the servers' half of top-k's Adam correction (Adam's first moment alone)", () => {
  const lr = 0.01;
  /** Move one coordinate: `warm` zero steps (so β1ᵗ is about 0), then `grads`, then zero steps until the first moment has drained. */
  function moved(correction: boolean, grads: number[], warm = 100): { moved: number; v: number } {
    const opt = createServerOptimizer(optimizerSettings('adam', lr), null, { adamCorrection: correction });
    const value = Float32Array.of(0);
    const [m, v] = [new Float32Array(1), new Float32Array(1)];
    const sequence = [...new Array<number>(warm).fill(0), ...grads, ...new Array<number>(300).fill(0)];
    for (const g of sequence) {
      opt.apply(value, Float32Array.of(g), [m, v]);
      opt.endStep();
    }
    return { moved: -(value[0] as number), v: v[0] as number };
  }

  it('is linear in what arrives: one burst moves a coordinate as far as the steps it stands for; plain Adam shrinks it', () => {
    const steps = moved(true, new Array<number>(10).fill(1));
    const burst = moved(true, [10]);
    expect(steps.moved).toBeCloseTo(10 * lr, 5);
    expect(burst.moved).toBeCloseTo(10 * lr, 5);
    // Its second-moment slot is never fed (the workers keep it).
    expect(burst.v).toBe(0);
    // Plain Adam on the same burst: the burst feeds v, and the coordinate moves about a third as far as 10 dense steps.
    const plainSteps = moved(false, new Array<number>(10).fill(1));
    const plainBurst = moved(false, [10]);
    expect(plainSteps.moved).toBeGreaterThan(9 * lr);
    expect(plainBurst.moved / plainSteps.moved).toBeLessThan(0.5);
  });

  it("applies m̂ = m / (1−β1ᵗ) step by step, and only when the job's codec is top-k with adam", () => {
    const opt = createServerOptimizer(optimizerSettings('adam', lr), null, { adamCorrection: true });
    expect(opt).toMatchObject({ name: 'adam', kernels: 'js', slotNames: ['m', 'v'] });
    const value = Float32Array.of(1, -1);
    const [m, v] = [new Float32Array(2), new Float32Array(2)];
    let want = [1, -1];
    let mm = [0, 0];
    const grads = [
      [1, -2],
      [0, 0.5],
      [3, 0],
    ];
    grads.forEach((g, t) => {
      opt.apply(value, Float32Array.from(g), [m, v]);
      opt.endStep();
      mm = mm.map((mi, i) => 0.9 * mi + 0.1 * (g[i] as number));
      want = want.map((w, i) => w - (lr * (mm[i] as number)) / (1 - 0.9 ** (t + 1)));
      expect(value[0]).toBeCloseTo(want[0] as number, 6);
      expect(value[1]).toBeCloseTo(want[1] as number, 6);
    });
    // Without the option Adam feeds its second moment as always; another optimizer ignores the option.
    expect(moved(false, [1]).v).toBeGreaterThan(0);
    expect(createServerOptimizer(optimizerSettings('momentum', lr), null, { adamCorrection: true }).name).toBe('momentum');
  });
});
