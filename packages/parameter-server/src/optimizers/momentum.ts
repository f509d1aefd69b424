import type { OptimizerSettings } from '@tamp/core';
import type { ServerOptimizer } from './optimizer.js';

const f = Math.fround;

/** tf.train.momentum (no Nesterov): a = m·a + g; value += (−lr) · a */
export function momentum(settings: OptimizerSettings): ServerOptimizer {
  const m = f(settings.momentum);
  const c = f(-settings.learningRate);
  return {
    name: 'momentum',
    settings,
    slotNames: ['accumulation'],
    initSlot: (_slot, size) => new Float32Array(size),
    apply(value, grad, [acc]) {
      const a = acc as Float32Array;
      for (let i = 0; i < value.length; i++) {
        const next = f(f(m * (a[i] as number)) + (grad[i] as number));
        a[i] = next;
        value[i] = f(f(c * next) + (value[i] as number));
      }
    },
    endStep() {},
    globalState: () => ({}),
    restoreGlobalState() {},
  };
}
