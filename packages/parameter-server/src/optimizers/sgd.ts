import type { OptimizerSettings } from '@tamp/core/base';
import { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
import { type KernelArena, allocFloats, lanes } from './wasm-kernels.js';

const f = Math.fround;

/** tf.train.sgd: value += (−lr) · g */
export function sgd(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  const c = f(-settings.learningRate);
  return {
    name: 'sgd',
    settings,
    slotNames: OPTIMIZER_SLOTS.sgd,
    kernels: arena !== null ? 'wasm-simd' : 'js',
    initSlot: (_slot, size) => allocFloats(arena, size),
    apply(value, grad) {
      if (arena?.holds(value)) {
        arena.kernels.sgd(value.byteOffset, arena.stage(grad), lanes(value.length), c);
        return;
      }
      for (let i = 0; i < value.length; i++) value[i] = f(f(c * (grad[i] as number)) + (value[i] as number));
    },
    staysFinite(value, grad) {
      if (!arena?.holds(value)) return undefined;
      return arena.kernels.sgd_finite(value.byteOffset, arena.stage(grad), lanes(value.length), c) === 1;
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
