/**
 * The short load test (ARCHITECTURE.md, "Faults"): 8 synthetic workers push
 * and pull as fast as they can for a few seconds against 2 real parameter
 * servers (SGD, learning rate 1, gradients of known values). No update is
 * lost or doubled: the final values equal the predicted sum exactly, each
 * shard applied exactly the pushes it acknowledged, and nothing failed.
 * `pnpm bench:load` runs the full size (32 workers, 30 s) and records it.
 */
import { describe, expect, it } from 'vitest';
import { runSyntheticLoad } from './helpers/synthetic-load.js';

describe('parameter servers under synthetic load', () => {
  it('8 workers against 2 servers for a few seconds: no lost or doubled update, no error', async () => {
    const r = await runSyntheticLoad({ servers: 2, workers: 8, elements: 10_000, seconds: 4, warmupSeconds: 1 });
    expect(r.errors).toEqual([]);
    // Each worker pushed at least once to each shard: the sums below are not vacuous.
    expect(r.pushes).toBeGreaterThanOrEqual(16);
    for (const s of r.shards) {
      expect(s.applied).toBe(s.acknowledged);
      expect(s.version).toBe(s.acknowledged);
    }
    expect(r.firstMismatch).toBeUndefined();
    expect(r.mismatches).toBe(0);
  }, 120_000);
});
