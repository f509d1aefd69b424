/**
 * The standard health service on a real parameter server: Check and Watch
 * follow it from unassigned (NOT_SERVING) through the chief's Assign
 * (SERVING) to shutdown (NOT_SERVING).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { optimizerSettings } from '@tamp/core';
import { CHIEF_SECRET_KEY, HealthClient, newSecret } from '@tamp/rpc';
import { ShardClient } from './client.js';
import { PARAMETER_SERVER_SERVICE, startParameterServer } from './server.js';

const JOB = 'health-job';
const clients: Array<{ close(): void }> = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
}

describe('parameter server health', () => {
  it('unassigned → serving → shutdown, by Check and by Watch', async () => {
    const ps = await startParameterServer({ jobId: JOB, index: 0 });
    const address = `127.0.0.1:${ps.port}`;
    const health = new HealthClient(address);
    const shard = new ShardClient(address, JOB, { rpc: { metadata: { [CHIEF_SECRET_KEY]: newSecret() } } });
    clients.push(health, shard);
    const seen: string[] = [];
    const stop = health.watch(PARAMETER_SERVER_SERVICE, (s) => seen.push(s));

    expect(await health.check(PARAMETER_SERVER_SERVICE)).toBe('NOT_SERVING');
    expect(await health.check('')).toBe('SERVING');
    await until(() => seen.length >= 1);
    expect(seen).toEqual(['NOT_SERVING']);

    await shard.assign(
      { shardIndex: 0, optimizer: optimizerSettings('sgd', 1), version: 0n, mode: 'async', syncReplicas: 1, staleness: 0, workerIds: ['worker-0'] },
      [{ name: 'w', shape: [2], dtype: 'float32', data: Float32Array.from([1, 2]), sliceStart: 0 }],
    );
    expect(await health.check(PARAMETER_SERVER_SERVICE)).toBe('SERVING');
    await until(() => seen.length >= 2);
    expect(seen).toEqual(['NOT_SERVING', 'SERVING']);

    const closing = ps.close();
    await until(() => seen.length >= 3);
    await closing;
    stop();
    expect(seen).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
  });
});
