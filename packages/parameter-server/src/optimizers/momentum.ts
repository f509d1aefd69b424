import type { OptimizerSettings } from '@tamp/core/base';
import { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
import { type KernelArena, type KernelExports, allocFloats, lanes } from './wasm-kernels.js';

const f = Math.fround;

/** tf.train.momentum (no Nesterov): a = m·a + g; value += (−lr) · a */
export function momentum(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  const m = f(settings.momentum);
  const c = f(-settings.learningRate);
  /** The WebAssembly loops' arguments, the update's and its `_finite` twin's alike; undefined unless the arena holds every array. */
  const wasmArgs = (value: Float32Array, grad: Float32Array, a: Float32Array): Parameters<KernelExports['momentum']> | undefined =>
    arena?.holds(value) && arena.holds(a) ? [value.byteOffset, arena.stage(grad), a.byteOffset, lanes(value.length), m, c] : undefined;
  return {
    name: 'momentum',
    settings,
    slotNames: OPTIMIZER_SLOTS.momentum,
    kernels: arena !== null ? 'wasm-simd' : 'js',
    initSlot: (_slot, size) => allocFloats(arena, size),
    apply(value, grad, [acc]) {
      const a = acc as Float32Array;
      const args = wasmArgs(value, grad, a);
      if (args !== undefined && arena !== null) {
        arena.kernels.momentum(...args);
        return;
      }
      for (let i = 0; i < value.length; i++) {
        const next = f(f(m * (a[i] as number)) + (grad[i] as number));
        a[i] = next;
        value[i] = f(f(c * next) + (value[i] as number));
      }
    },
    staysFinite(value, grad, [acc]) {
      const args = wasmArgs(value, grad, acc as Float32Array);
      return args !== undefined && arena !== null ? arena.kernels.momentum_finite(...args) === 1 : undefined;
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
