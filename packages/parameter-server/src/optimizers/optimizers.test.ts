import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { OPTIMIZER_NAMES, Random, createTfOptimizer, optimizerSettings } from '@tamp/core';
import { createServerOptimizer } from './index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const sizes = [1, 7, 300, 4096];
const STEPS = 6;

describe('server-side optimizers match tf.train on the same gradients', () => {
  for (const name of OPTIMIZER_NAMES) {
    it(name, () => {
      const r = new Random(3);
      const lr = name === 'sgd' ? 0.1 : 0.01;
      const settings = optimizerSettings(name, lr);
      const initial = sizes.map((n) => Float32Array.from({ length: n }, () => r.normal()));
      const grads = Array.from({ length: STEPS }, () => sizes.map((n) => Float32Array.from({ length: n }, () => r.normal() * 0.5)));

      // tfjs reference
      const vars = initial.map((v, i) => tf.variable(tf.tensor1d(v), true, `v${name}${i}`));
      const reference = createTfOptimizer(settings);
      for (const step of grads) {
        const map: Record<string, tf.Tensor> = {};
        step.forEach((g, i) => (map[(vars[i] as tf.Variable).name] = tf.tensor1d(g)));
        reference.applyGradients(map);
        tf.dispose(Object.values(map));
      }
      const expected = vars.map((v) => v.dataSync() as Float32Array);

      // server
      const opt = createServerOptimizer(settings);
      const values = initial.map((v) => v.slice());
      const slots = values.map((v) => opt.slotNames.map((s) => opt.initSlot(s, v.length)));
      for (const step of grads) {
        step.forEach((g, i) => opt.apply(values[i] as Float32Array, g, slots[i] as Float32Array[]));
        opt.endStep();
      }
      for (let i = 0; i < sizes.length; i++) {
        const a = values[i] as Float32Array;
        const b = expected[i] as Float32Array;
        let worst = 0;
        for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs((a[j] as number) - (b[j] as number)) / Math.max(1, Math.abs(b[j] as number)));
        expect(worst, `${name}, variable of ${sizes[i]} elements`).toBeLessThanOrEqual(1e-6);
      }
      tf.dispose(vars);
    });
  }
});
