import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageClassificationSplit } from '../data/dataset.js';
import { Random } from '../random.js';
import { evaluateClassifier } from './classification.js';
import { evaluateModel } from './evaluate.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** 120 random 4×4 grey images in 3 classes, and a seeded dense classifier over them. */
function fixture(): { model: tfl.LayersModel; split: ImageClassificationSplit } {
  const r = new Random(7);
  const size = 120;
  const split: ImageClassificationSplit = {
    name: 'validation',
    size,
    imageShape: [4, 4, 1],
    images: Uint8Array.from({ length: size * 16 }, () => Math.floor(r.next() * 256)),
    labels: Uint8Array.from({ length: size }, () => Math.floor(r.next() * 3)),
  };
  const model = tfl.sequential({
    layers: [tfl.layers.flatten({ inputShape: [4, 4, 1] }), tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) })],
  });
  return { model, split };
}

describe('evaluateClassifier in batches', () => {
  it('awaits between() after every batch but the last, and scores exactly as one batch does', async () => {
    const { model, split } = fixture();
    const whole = await evaluateClassifier(model, split, { batchSize: 1000 });
    let calls = 0;
    const batched = await evaluateClassifier(model, split, {
      batchSize: 50,
      between: async () => {
        calls++;
      },
    });
    // 120 samples in batches of 50: 3 batches, so 2 pauses.
    expect(calls).toBe(2);
    expect(batched.count).toBe(120);
    expect(batched.accuracy).toBe(whole.accuracy);
    expect(batched.loss).toBeCloseTo(whole.loss, 5);
    model.dispose();
  });

  it("evaluateModel passes the batch size and the pause on, and an event loop's timers run in the pauses", async () => {
    const { model, split } = fixture();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    let pauses = 0;
    try {
      await evaluateModel(model, split, {
        batchSize: 10,
        between: () =>
          new Promise((resolve) => {
            pauses++;
            setTimeout(resolve, 1);
          }),
      });
    } finally {
      clearInterval(timer);
    }
    expect(pauses).toBe(11);
    expect(ticks).toBeGreaterThan(0);
    model.dispose();
  });
});
