import { describe, expect, it } from 'vitest';
import { ClusterError, Random, type WireTensor, optimizerSettings } from '@tamp/core';
import { setServerKernels } from './optimizers/index.js';
import { OPTIMIZER_STATE_TENSOR, Shard, firstNonFinite, weightedSum } from './shard.js';

describe('firstNonFinite', () => {
  it('finds NaN (any payload) and ±Infinity, and nothing in finite extremes', () => {
    const finite = [0, -0, 1, -1, 3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45, -1.17549435e-38, 1e-40];
    const data = Float32Array.from(finite);
    expect(firstNonFinite(data)).toBe(-1);
    const nanWithPayload = new Float32Array(new Uint32Array([0xffc01234]).buffer)[0] as number;
    for (const bad of [NaN, Infinity, -Infinity, nanWithPayload]) {
      const d = Float32Array.from([...finite, 2, bad, bad]);
      expect(firstNonFinite(d)).toBe(finite.length + 1);
    }
  });

  it('reads a view at its own offset and length', () => {
    const whole = Float32Array.from([NaN, 1, 2, 3, Infinity]);
    expect(firstNonFinite(whole.subarray(1, 4))).toBe(-1);
    expect(firstNonFinite(whole.subarray(1))).toBe(3);
  });
});

describe('shard update loops', () => {
  const r = new Random(11);
  const sizes = [5, 1031];
  const initial = sizes.map((n) => Float32Array.from({ length: n }, () => r.normal()));
  const grads = Array.from({ length: 5 }, () => sizes.map((n) => Float32Array.from({ length: n }, () => r.normal())));
  const config = { shardIndex: 0, optimizer: optimizerSettings('adam', 0.01), version: 0n, mode: 'async' as const, syncReplicas: 1, staleness: 0, workerIds: ['worker-0'] };
  const tensors = (data: Float32Array[], suffix = ''): WireTensor[] => data.map((d, i) => ({ name: `v${i}${suffix}`, shape: [d.length], dtype: 'float32', data: d, sliceStart: 0 }));
  const push = (s: Shard, step: number, g: Float32Array[]) => {
    const meta = { workerId: 'worker-0', step: BigInt(step), basedOnVersion: s.version, batchSize: 1, tensorCount: g.length };
    return s.acceptPush(meta, s.validatePush(meta, tensors(g)));
  };
  const values = (s: Shard) => s.partList.map((p) => Array.from(p.value));

  it('keep variables and slots in the WebAssembly arena by default, and agree with the JavaScript loops', async () => {
    const simd = new Shard(0);
    simd.assign(config, tensors(initial));
    setServerKernels('js');
    const js = new Shard(1);
    try {
      js.assign({ ...config, shardIndex: 1 }, tensors(initial));
    } finally {
      setServerKernels('wasm-simd');
    }
    expect([simd.kernels, js.kernels]).toEqual(['wasm-simd', 'js']);
    for (let step = 0; step < grads.length; step++) {
      await push(simd, step, grads[step] as Float32Array[]);
      await push(js, step, grads[step] as Float32Array[]);
    }
    const a = values(simd).flat();
    const b = values(js).flat();
    expect(a.length).toBe(1036);
    for (let i = 0; i < a.length; i++) expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(b[i] as number)));
    // A shard restored from this state (variables, both slots, β powers) continues exactly as the original.
    const restored = new Shard(2);
    const parts = simd.partList;
    restored.assign({ ...config, shardIndex: 2 }, [
      ...tensors(parts.map((p) => p.value.slice())),
      ...tensors(parts.map((p) => (p.slots[0] as Float32Array).slice()), ':m'),
      ...tensors(parts.map((p) => (p.slots[1] as Float32Array).slice()), ':v'),
      { name: OPTIMIZER_STATE_TENSOR, shape: [2], dtype: 'float32', data: Float32Array.from(Object.values(simd.optimizerState())), sliceStart: 0 },
    ]);
    expect(restored.kernels).toBe('wasm-simd');
    const last = grads[0] as Float32Array[];
    await push(simd, grads.length, last);
    await push(restored, 0, last);
    expect(values(restored)).toEqual(values(simd));
  });
});

describe('weightedSum', () => {
  it('sums in double precision in order and rounds once, for 1, 2 and 3 contributions', () => {
    const r = new Random(5);
    for (const k of [1, 2, 3]) {
      const grads = Array.from({ length: k }, () => Float32Array.from({ length: 37 }, () => r.normal() * 1e3));
      const weights = Array.from({ length: k }, (_, j) => (j + 1) / ((k * (k + 1)) / 2));
      const out = new Float32Array(37);
      weightedSum(out, grads, weights);
      const expected = new Float32Array(37);
      for (let i = 0; i < 37; i++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += (weights[j] as number) * ((grads[j] as Float32Array)[i] as number);
        expected[i] = s;
      }
      expect(Array.from(out), `${k} contributions`).toEqual(Array.from(expected));
    }
  });
});

describe('shard state', () => {
  const config = { shardIndex: 0, optimizer: optimizerSettings('sgd', 1), version: 0n, mode: 'async' as const, syncReplicas: 1, staleness: 0, workerIds: ['worker-0'] };
  const w = (data: number[]): WireTensor => ({ name: 'w', shape: [data.length], dtype: 'float32', data: Float32Array.from(data), sliceStart: 0 });

  it('keeps its whole state when an assign is refused', async () => {
    const s = new Shard(0);
    s.assign(config, [w([1, 2])]);
    const meta = { workerId: 'worker-0', step: 0n, basedOnVersion: 0n, batchSize: 1, tensorCount: 1 };
    await s.acceptPush(meta, s.validatePush(meta, [w([1, 1])]));
    const before = { version: s.version, values: s.partList.map((p) => Array.from(p.value)), mode: s.mode, counters: s.counters };
    expect(() => s.assign({ ...config, shardIndex: 1 }, [w([5, 5])])).toThrow(ClusterError);
    expect(() => s.assign({ ...config, mode: 'sync', syncReplicas: 2 }, [w([5, 5])])).toThrow(/sync needs 1..1 replicas/);
    expect(() => s.assign(config, [w([5, 5]), { ...w([1, 1]), name: 'w:m' }])).toThrow(/not used by sgd: w:m/);
    expect({ version: s.version, values: s.partList.map((p) => Array.from(p.value)), mode: s.mode, counters: s.counters }).toEqual(before);
    expect(s.isDuplicate('worker-0', 0n)).toBe(true);
  });

  it('counts refusals itself and hands out read-only snapshots of its counters', async () => {
    const s = new Shard(0);
    s.assign({ ...config, mode: 'sync' }, [w([1, 2])]);
    const snapshot = s.counters;
    await expect(s.acceptPush({ workerId: 'worker-0', step: 3n, basedOnVersion: 0n, batchSize: 1, tensorCount: 1 }, new Map([['w@0', Float32Array.from([1, 1])]]))).rejects.toThrow(/ahead of shard 0/);
    s.recordRefused();
    expect(s.counters.refused).toBe(2n);
    expect(snapshot.refused).toBe(0n);
    expect(Object.isFrozen(snapshot)).toBe(true);
  });
});
