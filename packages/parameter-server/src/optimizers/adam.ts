import type { OptimizerSettings } from '@tamp/core/base';
import { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
import { type KernelArena, type KernelExports, allocFloats, lanes } from './wasm-kernels.js';

const f = Math.fround;

/**
 * tf.train.adam: m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
 * value += (−lr) · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + ε), with β1ᵗ and
 * β2ᵗ kept as float32 running products, as tfjs keeps them.
 *
 * Over a kernel arena the WebAssembly SIMD loop does tfjs's float32
 * operations in tfjs's order: bit for bit what tfjs computes. The JavaScript
 * loop (a shard without an arena) computes intermediates in double precision
 * and rounds each stored value to float32 once (tfjs rounds after every
 * operation): within about one float32 ulp of tfjs, several times faster in
 * JavaScript than emulating every rounding.
 */
export function adam(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  const b1 = f(settings.beta1);
  const b2 = f(settings.beta2);
  const oneMinusB1 = f(1 - settings.beta1);
  const oneMinusB2 = f(1 - settings.beta2);
  const eps = f(settings.epsilon);
  const c = f(-settings.learningRate);
  let accBeta1 = b1;
  let accBeta2 = b2;
  /** The WebAssembly loops' arguments, the update's and its `_finite` twin's alike; undefined unless the arena holds every array. */
  const wasmArgs = (value: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array): Parameters<KernelExports['adam']> | undefined =>
    arena?.holds(value) && arena.holds(m) && arena.holds(v)
      ? [value.byteOffset, arena.stage(grad), m.byteOffset, v.byteOffset, lanes(value.length), b1, oneMinusB1, b2, oneMinusB2, f(1 - accBeta1), f(1 - accBeta2), eps, c]
      : undefined;
  return {
    name: 'adam',
    settings,
    slotNames: OPTIMIZER_SLOTS.adam,
    kernels: arena !== null ? 'wasm-simd' : 'js',
    initSlot: (_slot, size) => allocFloats(arena, size),
    apply(value, grad, [mSlot, vSlot]) {
      const m = mSlot as Float32Array;
      const v = vSlot as Float32Array;
      const args = wasmArgs(value, grad, m, v);
      if (args !== undefined && arena !== null) {
        // tf.train.adam's order, every operation in float32 (see wasm-kernels.ts).
        arena.kernels.adam(...args);
        return;
      }
      const step = c / f(1 - accBeta1);
      const invCorr2 = 1 / f(1 - accBeta2);
      for (let i = 0; i < value.length; i++) {
        const g = grad[i] as number;
        const mi = (m[i] = (m[i] as number) * b1 + g * oneMinusB1);
        const vi = (v[i] = (v[i] as number) * b2 + g * g * oneMinusB2);
        value[i] = (value[i] as number) + (step * mi) / (Math.sqrt(vi * invCorr2) + eps);
      }
    },
    staysFinite(value, grad, [mSlot, vSlot]) {
      const args = wasmArgs(value, grad, mSlot as Float32Array, vSlot as Float32Array);
      return args !== undefined && arena !== null ? arena.kernels.adam_finite(...args) === 1 : undefined;
    },
    endStep() {
      accBeta1 = f(accBeta1 * b1);
      accBeta2 = f(accBeta2 * b2);
    },
    globalState: () => ({ accBeta1, accBeta2 }),
    restoreGlobalState(state) {
      accBeta1 = f(state.accBeta1 ?? b1);
      accBeta2 = f(state.accBeta2 ?? b2);
    },
  };
}
