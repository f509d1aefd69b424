import type { OptimizerSettings } from '@tamp/core/base';
import { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
import { type KernelArena, allocFloats, lanes } from './wasm-kernels.js';

const f = Math.fround;
/** tfjs's float32 backend epsilon, which tf.train.adagrad adds inside the square root. */
const BACKEND_EPSILON = f(1e-7);

/** tf.train.adagrad: a += g²; value += (−lr) · g / sqrt(a + ε), a starting at initialAccumulatorValue. */
export function adagrad(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  const c = f(-settings.learningRate);
  const init = f(settings.initialAccumulatorValue);
  return {
    name: 'adagrad',
    settings,
    slotNames: OPTIMIZER_SLOTS.adagrad,
    kernels: arena !== null ? 'wasm-simd' : 'js',
    initSlot: (_slot, size) => allocFloats(arena, size).fill(init),
    apply(value, grad, [accSlot]) {
      const a = accSlot as Float32Array;
      if (arena?.holds(value) && arena.holds(a)) {
        arena.kernels.adagrad(value.byteOffset, arena.stage(grad), a.byteOffset, lanes(value.length), c, BACKEND_EPSILON);
        return;
      }
      for (let i = 0; i < value.length; i++) {
        const g = grad[i] as number;
        const next = f((a[i] as number) + f(g * g));
        a[i] = next;
        value[i] = f(f(f(g / f(Math.sqrt(f(next + BACKEND_EPSILON)))) * c) + (value[i] as number));
      }
    },
    staysFinite(value, grad, [accSlot]) {
      const a = accSlot as Float32Array;
      if (!(arena?.holds(value) && arena.holds(a))) return undefined;
      return arena.kernels.adagrad_finite(value.byteOffset, arena.stage(grad), a.byteOffset, lanes(value.length), c, BACKEND_EPSILON) === 1;
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
