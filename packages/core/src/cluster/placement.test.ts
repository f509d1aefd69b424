import { describe, expect, it } from 'vitest';
import '@tensorflow/tfjs-backend-cpu';
import { sizeOfShape } from '../codec/tensor-codec.js';
import { ZOO } from '../zoo/zoo.js';
import { placeVariables, shardLoads } from './placement.js';

describe('shard placement', () => {
  for (const entry of ZOO.values()) {
    const model = entry.create(1);
    const variables = model.trainableWeights.map((w) => ({ name: w.originalName, shape: w.shape as number[] }));
    for (const p of [1, 2, 3]) {
      it(`${entry.name} on ${p} server(s): balanced, complete and deterministic`, () => {
        const placement = placeVariables(variables, p);
        const loads = shardLoads(placement);
        const total = variables.reduce((n, v) => n + sizeOfShape(v.shape), 0);
        expect(loads.reduce((a, b) => a + b, 0)).toBe(total);
        expect(Math.max(...loads)).toBeLessThanOrEqual(1.5 * (total / p));
        // Every element of every variable is held exactly once.
        for (const v of variables) {
          const parts = placement.shards.flat().filter((x) => x.name === v.name).sort((a, b) => a.sliceStart - b.sliceStart);
          let next = 0;
          for (const part of parts) {
            expect(part.sliceStart).toBe(next);
            next += part.sliceLength;
          }
          expect(next).toBe(sizeOfShape(v.shape));
        }
        expect(placeVariables(variables, p)).toEqual(placement);
      });
    }
  }

  it('splits a variable larger than a fair share across servers', () => {
    const placement = placeVariables([{ name: 'big', shape: [1000, 100] }, { name: 'small', shape: [10] }], 3);
    const big = placement.shards.map((s) => s.filter((x) => x.name === 'big').length);
    expect(big).toEqual([1, 1, 1]);
  });

  it('refuses duplicate names and zero servers', () => {
    expect(() => placeVariables([{ name: 'a', shape: [1] }, { name: 'a', shape: [2] }], 1)).toThrow(/appears twice/);
    expect(() => placeVariables([{ name: 'a', shape: [1] }], 0)).toThrow(/at least one parameter server/);
  });
});
