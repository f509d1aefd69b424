import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TampError } from '../errors.js';
import { CLUSTER_HEAP_GROWING_PERCENT, HEAP_GROWING_ENV, heapGrowingPercent } from './heap-tuning.js';

describe('cluster heap tuning', () => {
  it('uses CLUSTER_HEAP_GROWING_PERCENT unless the environment overrides it (0: V8 defaults)', () => {
    expect(heapGrowingPercent({})).toBe(CLUSTER_HEAP_GROWING_PERCENT);
    expect(heapGrowingPercent({ [HEAP_GROWING_ENV]: '' })).toBe(CLUSTER_HEAP_GROWING_PERCENT);
    expect(heapGrowingPercent({ [HEAP_GROWING_ENV]: '150' })).toBe(150);
    expect(heapGrowingPercent({ [HEAP_GROWING_ENV]: '0' })).toBe(0);
  });

  it('refuses a value that is not a whole percent, with a typed error naming the variable', () => {
    for (const bad of ['abc', '-5', '2.5', '99999']) {
      let error: unknown;
      try {
        heapGrowingPercent({ [HEAP_GROWING_ENV]: bad });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TampError);
      expect((error as TampError).code).toBe('USAGE');
      expect((error as Error).message).toContain(HEAP_GROWING_ENV);
    }
  });

  it('is a flag this V8 knows (an unknown one prints "unrecognized flag" without throwing, so check stderr)', () => {
    const r = spawnSync(process.execPath, ['-e', `require('node:v8').setFlagsFromString('--heap-growing-percent=${CLUSTER_HEAP_GROWING_PERCENT}')`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
