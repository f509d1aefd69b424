import type { OptimizerSettings } from '@tamp/core/base';
import { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
import { type KernelArena, allocFloats, lanes } from './wasm-kernels.js';

const f = Math.fround;

/** tf.train.momentum (no Nesterov): a = m·a + g; value += (−lr) · a */
export function momentum(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  const m = f(settings.momentum);
  const c = f(-settings.learningRate);
  return {
    name: 'momentum',
    settings,
    slotNames: OPTIMIZER_SLOTS.momentum,
    kernels: arena !== null ? 'wasm-simd' : 'js',
    initSlot: (_slot, size) => allocFloats(arena, size),
    apply(value, grad, [acc]) {
      const a = acc as Float32Array;
      if (arena?.holds(value) && arena.holds(a)) {
        arena.kernels.momentum(value.byteOffset, arena.stage(grad), a.byteOffset, lanes(value.length), m, c);
        return;
      }
      for (let i = 0; i < value.length; i++) {
        const next = f(f(m * (a[i] as number)) + (grad[i] as number));
        a[i] = next;
        value[i] = f(f(c * next) + (value[i] as number));
      }
    },
    staysFinite(value, grad, [acc]) {
      const a = acc as Float32Array;
      if (!(arena?.holds(value) && arena.holds(a))) return undefined;
      return arena.kernels.momentum_finite(value.byteOffset, arena.stage(grad), a.byteOffset, lanes(value.length), m, c) === 1;
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
