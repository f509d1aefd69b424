/** The TAMP_TEST_LOAD helper (test/helpers/load.ts): it starts busy processes and ends every one. */
import { describe, expect, it } from 'vitest';
import { startLoad, testLoadFromEnv } from './helpers/load.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('TAMP_TEST_LOAD', () => {
  it('reads the number of busy processes, refusing anything but a small whole number', () => {
    expect(testLoadFromEnv({})).toBe(0);
    expect(testLoadFromEnv({ TAMP_TEST_LOAD: '2' })).toBe(2);
    expect(() => testLoadFromEnv({ TAMP_TEST_LOAD: 'two' })).toThrow(/TAMP_TEST_LOAD must be a whole number/);
    expect(() => testLoadFromEnv({ TAMP_TEST_LOAD: '-1' })).toThrow(/TAMP_TEST_LOAD/);
  });

  it('starts N busy processes and ends them all by pid', async () => {
    const load = startLoad(2);
    expect(load.pids).toHaveLength(2);
    expect(load.pids.every(alive)).toBe(true);
    await load.stop();
    expect(load.pids.filter(alive)).toEqual([]);
  });
});
