/**
 * A parameter server's metrics: a real server and client, pushes applied,
 * retried, refused by validation and ahead of a pull, read back from the
 * process registry by series.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WireTensor, optimizerSettings } from '@tamp/core';
import { CHIEF_SECRET_KEY, WORKER_TOKEN_KEY, newSecret, rpcMetrics, slotToken } from '@tamp/rpc';
import { ShardClient } from './client.js';
import { type RunningParameterServer, startParameterServer } from './server.js';

const JOB = 'metrics-job';
const SHARD = 3;
let ps: RunningParameterServer;
let client: ShardClient;
/** Calls as each worker carry that worker's slot token (authority.ts); the chief's its secret. */
const workers = new Map<string, ShardClient>();
const SECRET = newSecret();

function grads(w: number[]): WireTensor[] {
  return [{ name: 'w', shape: [4], dtype: 'float32', data: Float32Array.from(w), sliceStart: 0 }];
}

/** `name{labels}` → value, from the registry's text format. */
async function series(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await rpcMetrics.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

beforeAll(async () => {
  ps = await startParameterServer({ jobId: JOB, index: SHARD, chiefSecret: SECRET });
  client = new ShardClient(`127.0.0.1:${ps.port}`, JOB, { rpc: { metadata: { [CHIEF_SECRET_KEY]: SECRET } } });
  for (const id of ['worker-0', 'worker-1']) workers.set(id, new ShardClient(`127.0.0.1:${ps.port}`, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: slotToken(SECRET, id, 1) } } }));
  await client.assign(
    { shardIndex: SHARD, optimizer: optimizerSettings('sgd', 1), version: 0n, mode: 'async', syncReplicas: 1, staleness: 0, workerIds: ['worker-0', 'worker-1'] },
    grads([0, 0, 0, 0]),
  );
});

afterAll(async () => {
  client.close();
  for (const w of workers.values()) w.close();
  await ps.close();
});

describe('parameter server metrics', () => {
  it('count pushes by outcome, their staleness and bytes, pulls, and the shard state by shard', async () => {
    const push = (worker: string, step: bigint, basedOn: bigint, w = [1, 1, 1, 1]) => (workers.get(worker) as ShardClient).push({ workerId: worker, step, basedOnVersion: basedOn, batchSize: 1 }, grads(w));
    await push('worker-0', 0n, 0n); // version 1, staleness 0
    await push('worker-1', 0n, 0n); // version 2, computed on 0: staleness 1
    await push('worker-0', 1n, 0n); // version 3: staleness 2
    await push('worker-0', 1n, 0n); // a retry: duplicate
    await expect(push('worker-1', 1n, 2n, [1, Number.NaN, 1, 1])).rejects.toThrow(/NaN|non-finite/i);
    await (workers.get('worker-1') as ShardClient).pull('worker-1');
    await client.pull('chief');

    const s = await series();
    const shard = `shard="${SHARD}"`;
    expect(s.get(`tamp_ps_pushes_total{${shard},outcome="applied"}`)).toBe(3);
    expect(s.get(`tamp_ps_pushes_total{${shard},outcome="duplicate"}`)).toBe(1);
    expect(s.get(`tamp_ps_pushes_total{${shard},outcome="refused"}`)).toBe(1);
    expect(s.get(`tamp_ps_push_duration_seconds_count{${shard}}`)).toBe(5);
    expect(s.get(`tamp_ps_push_wait_seconds_count{${shard}}`)).toBe(5);
    // Staleness 0, 1 and 2: one in each of the first three buckets.
    expect(s.get(`tamp_ps_gradient_staleness_bucket{le="0",${shard}}`)).toBe(1);
    expect(s.get(`tamp_ps_gradient_staleness_bucket{le="1",${shard}}`)).toBe(2);
    expect(s.get(`tamp_ps_gradient_staleness_bucket{le="2",${shard}}`)).toBe(3);
    expect(s.get(`tamp_ps_gradient_staleness_sum{${shard}}`)).toBe(3);
    // Every push message carries the 16 bytes of its gradient and a header.
    const pushBytes = s.get(`tamp_ps_push_bytes_total{${shard}}`) as number;
    expect(pushBytes).toBeGreaterThan(5 * 16);
    expect(pushBytes).toBeLessThan(5 * 1024);
    expect(s.get(`tamp_ps_pulls_total{${shard},outcome="served"}`)).toBe(2);
    expect(s.get(`tamp_ps_pull_bytes_total{${shard}}`) as number).toBeGreaterThan(2 * 16);
    expect(s.get(`tamp_ps_version{${shard}}`)).toBe(3);
    expect(s.get(`tamp_ps_applied_steps_total{${shard}}`)).toBe(3);
    expect(s.get(`tamp_ps_refused_pushes_total{${shard}}`)).toBe(1);
    expect(s.get(`tamp_ps_live_workers{${shard}}`)).toBe(2);
    expect(s.get(`tamp_ps_variable_bytes{${shard}}`)).toBe(16);
    expect(s.get(`tamp_ps_assigned{${shard}}`)).toBe(1);
    // The validation refusal, by status and by Tamp's error code.
    expect(s.get('tamp_rpc_server_refused_total{reason="INVALID_ARGUMENT",error="NON_FINITE"}')).toBe(1);
  });
});
