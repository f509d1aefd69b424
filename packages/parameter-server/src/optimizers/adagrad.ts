import type { OptimizerSettings } from '@tamp/core/base';
import { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
import { type KernelArena, type KernelExports, allocFloats, lanes } from './wasm-kernels.js';

const f = Math.fround;
/** tfjs's float32 backend epsilon, which tf.train.adagrad adds inside the square root. */
const BACKEND_EPSILON = f(1e-7);

/** tf.train.adagrad: a += g²; value += (−lr) · g / sqrt(a + ε), a starting at initialAccumulatorValue. */
export function adagrad(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  const c = f(-settings.learningRate);
  const init = f(settings.initialAccumulatorValue);
  /** The WebAssembly loops' arguments, the update's and its `_finite` twin's alike; undefined unless the arena holds every array. */
  const wasmArgs = (value: Float32Array, grad: Float32Array, a: Float32Array): Parameters<KernelExports['adagrad']> | undefined =>
    arena?.holds(value) && arena.holds(a) ? [value.byteOffset, arena.stage(grad), a.byteOffset, lanes(value.length), c, BACKEND_EPSILON] : undefined;
  return {
    name: 'adagrad',
    settings,
    slotNames: OPTIMIZER_SLOTS.adagrad,
    kernels: arena !== null ? 'wasm-simd' : 'js',
    initSlot: (_slot, size) => allocFloats(arena, size).fill(init),
    apply(value, grad, [accSlot]) {
      const a = accSlot as Float32Array;
      const args = wasmArgs(value, grad, a);
      if (args !== undefined && arena !== null) {
        arena.kernels.adagrad(...args);
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
      const args = wasmArgs(value, grad, accSlot as Float32Array);
      return args !== undefined && arena !== null ? arena.kernels.adagrad_finite(...args) === 1 : undefined;
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
