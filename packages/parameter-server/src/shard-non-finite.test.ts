/**
 * A finite but huge gradient (1e20) whose update would overflow a variable or
 * an optimizer slot is refused with nothing changed and counted (async and
 * ssp: the push; sync: the step is skipped, the version advances and nothing
 * else changes), on the WebAssembly and the JavaScript update loops alike.
 */
import { describe, expect, it } from 'vitest';
import { type ConsistencyMode, type OptimizerName, type WireTensor, optimizerSettings } from '@tamp/core';
import { setServerKernels } from './optimizers/index.js';
import { Shard } from './shard.js';

const w = (name: string, data: number[]): WireTensor => ({ name, shape: [data.length], dtype: 'float32', data: Float32Array.from(data), sliceStart: 0 });

function shard(optimizer: OptimizerName, mode: ConsistencyMode = 'async', learningRate = 0.01): Shard {
  const s = new Shard(0);
  s.assign({ shardIndex: 0, optimizer: optimizerSettings(optimizer, learningRate), version: 0n, mode, syncReplicas: 1, staleness: 2, workerIds: ['worker-0'] }, [
    w('a', [0.5, -0.25, 1, 2, 3]),
    w('b', Array.from({ length: 1031 }, (_, i) => i / 1031)),
  ]);
  return s;
}

/** Everything a refused push must leave as it was: version, counters but the refusal ones, values, slots, optimizer state. */
function state(s: Shard) {
  const { applied, duplicate, dropped } = s.counters;
  return { version: s.version, applied, duplicate, dropped, parts: s.partList.map((p) => [Array.from(p.value), ...p.slots.map((x) => Array.from(x))]), opt: s.optimizerState() };
}

function push(s: Shard, step: number, a: number[], b: number[]) {
  const meta = { workerId: 'worker-0', step: BigInt(step), basedOnVersion: s.version, batchSize: 1, tensorCount: 2 };
  return s.acceptPush(meta, s.validatePush(meta, [w('a', a), w('b', b)]));
}

const small = Array.from({ length: 1031 }, (_, i) => Math.sin(i));

describe('a push whose update would be non-finite', () => {
  for (const kernels of ['wasm-simd', 'js'] as const) {
    for (const optimizer of ['adam', 'adagrad', 'momentum', 'sgd'] as const) {
      it(`is refused with nothing changed (${optimizer}, ${kernels} loops)`, async () => {
        setServerKernels(kernels);
        try {
          const plain = optimizer === 'sgd' || optimizer === 'momentum';
          const s = shard(optimizer, 'async', plain ? 2 : 0.01);
          expect(s.kernels).toBe(kernels);
          await push(s, 0, [0.1, 0.2, 0.3, 0.4, 0.5], small);
          const before = state(s);
          // 1e20 is finite in float32, its square is not: Adam's v and Adagrad's accumulator overflow.
          // sgd and momentum (learning rate 2) overflow the variable with a gradient near float32's largest value.
          const bad = small.slice();
          // Adam's JavaScript loop squares in double precision and rounds v once (1e37 stays finite), so there it takes 3e38.
          bad[700] = plain ? -3e38 : optimizer === 'adam' && kernels === 'js' ? 3e38 : 1e20;
          // Part "a" comes first and is fine: the refusal must also undo nothing there.
          const refused = push(s, 1, [0.1, 0.1, 0.1, 0.1, 0.1], bad);
          await expect(refused).rejects.toMatchObject({ code: 'NON_FINITE_UPDATE' });
          await expect(refused).rejects.toThrow(/"b(:\w+)?" (-?Infinity|NaN) at element 700/);
          expect(state(s)).toEqual(before);
          expect(s.counters.nonFinite).toBe(1n);
          expect(s.counters.refused).toBe(1n);
          // Not marked seen: the same (worker, step) with a sound gradient is applied.
          expect(s.isDuplicate('worker-0', 1n)).toBe(false);
          await push(s, 1, [0.1, 0.1, 0.1, 0.1, 0.1], small);
          expect(s.version).toBe(2n);
          for (const p of s.partList) for (const x of [p.value, ...p.slots]) expect(x.every(Number.isFinite)).toBe(true);
        } finally {
          setServerKernels('wasm-simd');
        }
      });
    }
  }

  it('ssp: refused the same way, and the staleness gate is not moved by it', async () => {
    const s = shard('adam', 'ssp');
    const bad = small.slice();
    bad[3] = 1e20;
    await expect(push(s, 0, [0, 0, 0, 0, 0], bad)).rejects.toMatchObject({ code: 'NON_FINITE_UPDATE' });
    expect(s.version).toBe(0n);
    expect(s.counters.nonFinite).toBe(1n);
  });

  it('sync: the step is skipped (version advances, variables and slots unchanged) and counted', async () => {
    const s = shard('adam', 'sync');
    await push(s, 0, [0.1, 0.2, 0.3, 0.4, 0.5], small);
    const before = state(s);
    const bad = small.slice();
    bad[0] = 1e20;
    const outcome = await push(s, 1, [0, 0, 0, 0, 0], bad);
    expect(outcome.version).toBe(2n);
    const after = state(s);
    expect(after.parts).toEqual(before.parts);
    expect(after.opt).toEqual(before.opt);
    expect(after.applied).toBe(before.applied);
    expect(s.counters.nonFinite).toBe(1n);
    // Training goes on at the next step.
    await push(s, 2, [0.1, 0.2, 0.3, 0.4, 0.5], small);
    expect(s.version).toBe(3n);
  });
});
