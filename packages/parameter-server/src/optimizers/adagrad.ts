import type { OptimizerSettings } from '@tamp/core';
import type { ServerOptimizer } from './optimizer.js';

const f = Math.fround;
/** tfjs's float32 backend epsilon, which tf.train.adagrad adds inside the square root. */
const BACKEND_EPSILON = f(1e-7);

/** tf.train.adagrad: a += g²; value += (−lr) · g / sqrt(a + ε), a starting at initialAccumulatorValue. */
export function adagrad(settings: OptimizerSettings): ServerOptimizer {
  const c = f(-settings.learningRate);
  const init = f(settings.initialAccumulatorValue);
  return {
    name: 'adagrad',
    settings,
    slotNames: ['accumulator'],
    initSlot: (_slot, size) => new Float32Array(size).fill(init),
    apply(value, grad, [accSlot]) {
      const a = accSlot as Float32Array;
      for (let i = 0; i < value.length; i++) {
        const g = grad[i] as number;
        const next = f((a[i] as number) + f(g * g));
        a[i] = next;
        value[i] = f(f(f(g / f(Math.sqrt(f(next + BACKEND_EPSILON)))) * c) + (value[i] as number));
      }
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
