import type { OptimizerSettings } from '@tamp/core/base';
import { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
import { type KernelArena, type KernelExports, allocFloats, lanes } from './wasm-kernels.js';

const f = Math.fround;

/** tf.train.sgd: value += (−lr) · g */
export function sgd(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  const c = f(-settings.learningRate);
  /** The WebAssembly loops' arguments, the update's and its `_finite` twin's alike; undefined unless the arena holds the value. */
  const wasmArgs = (value: Float32Array, grad: Float32Array): Parameters<KernelExports['sgd']> | undefined =>
    arena?.holds(value) ? [value.byteOffset, arena.stage(grad), lanes(value.length), c] : undefined;
  return {
    name: 'sgd',
    settings,
    slotNames: OPTIMIZER_SLOTS.sgd,
    kernels: arena !== null ? 'wasm-simd' : 'js',
    initSlot: (_slot, size) => allocFloats(arena, size),
    apply(value, grad) {
      const args = wasmArgs(value, grad);
      if (args !== undefined && arena !== null) {
        arena.kernels.sgd(...args);
        return;
      }
      for (let i = 0; i < value.length; i++) value[i] = f(f(c * (grad[i] as number)) + (value[i] as number));
    },
    staysFinite(value, grad) {
      const args = wasmArgs(value, grad);
      return args !== undefined && arena !== null ? arena.kernels.sgd_finite(...args) === 1 : undefined;
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
