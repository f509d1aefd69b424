import type { OptimizerSettings } from '@tamp/core';
import type { ServerOptimizer } from './optimizer.js';

const f = Math.fround;

/** tf.train.sgd: value += (−lr) · g */
export function sgd(settings: OptimizerSettings): ServerOptimizer {
  const c = f(-settings.learningRate);
  return {
    name: 'sgd',
    settings,
    slotNames: [],
    initSlot: (_slot, size) => new Float32Array(size),
    apply(value, grad) {
      for (let i = 0; i < value.length; i++) value[i] = f(f(c * (grad[i] as number)) + (value[i] as number));
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
