/**
 * Chain replication (--ps-replicas 1) against real gRPC servers: a primary
 * forwards every applied update to a backup hosted by another server, answers
 * a push only once the backup holds it, and the promoted backup carries on
 * bit-identically to a shard that was never replicated.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ShardConfig, type WireTensor, optimizerSettings } from '@tamp/core';
import { CHIEF_SECRET_KEY, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { ShardClient } from './client.js';
import { ReplicaClient } from './replica-client.js';
import { type RunningParameterServer, startParameterServer } from './server.js';

const JOB = 'replica-job';
const WORKERS = ['worker-0', 'worker-1'];
const SECRET = newSecret();
const CHIEF = { rpc: { metadata: { [CHIEF_SECRET_KEY]: SECRET } } };
const CONFIG: ShardConfig = { shardIndex: 0, optimizer: optimizerSettings('adam', 0.01), version: 0n, mode: 'sync', syncReplicas: 2, staleness: 0, workerIds: WORKERS };
const INITIAL: WireTensor[] = [
  { name: 'w', shape: [2, 3], dtype: 'float32', data: Float32Array.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6]), sliceStart: 0 },
  { name: 'b', shape: [3], dtype: 'float32', data: Float32Array.from([0.01, 0.02, -0.03]), sliceStart: 0 },
];

const started: RunningParameterServer[] = [];
const clients: Array<{ close(): void }> = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(started.splice(0).map((s) => s.close()));
});

async function server(index: number, log?: (m: string) => void): Promise<{ ps: RunningParameterServer; address: string }> {
  const ps = await startParameterServer({ jobId: JOB, index, chiefSecret: SECRET, ...(log !== undefined ? { log } : {}) });
  started.push(ps);
  return { ps, address: `127.0.0.1:${ps.port}` };
}

function track<T extends { close(): void }>(c: T): T {
  clients.push(c);
  return c;
}
const chief = (address: string) => track(new ShardClient(address, JOB, CHIEF));
const replica = (address: string) => track(new ReplicaClient(address, JOB, CHIEF.rpc));
const worker = (address: string, id: string) => track(new ShardClient(address, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: slotToken(SECRET, id, 1) } } }));

/** A gradient that differs per worker and step (irrational-ish values, so rounding shows). */
function gradient(id: string, step: number): WireTensor[] {
  const k = WORKERS.indexOf(id) + 1;
  return INITIAL.map((t) => ({ ...t, data: t.data.map((_, i) => Math.sin(step * 1.7 + i * 0.31 + k) * (k + 0.123)) }));
}

/** One sync step: both workers push to the shard at `address`. */
async function step(address: string, s: number): Promise<void> {
  await Promise.all(WORKERS.map((id) => worker(address, id).push({ workerId: id, step: BigInt(s), basedOnVersion: BigInt(s), batchSize: 1 + WORKERS.indexOf(id) }, gradient(id, s))));
}

async function values(address: string): Promise<{ version: bigint; data: number[][] }> {
  const { version, tensors } = await chief(address).pull('chief');
  return { version, data: tensors.map((t) => Array.from(t.data)) };
}

describe('chain replication', () => {
  it('forwards every update, promotes the backup on the primary\'s death with nothing lost, and catches a new backup up', async () => {
    const primary = await server(0);
    const host = await server(1);
    const reference = await server(0);
    await chief(primary.address).assign(CONFIG, INITIAL);
    await chief(reference.address).assign(CONFIG, INITIAL);
    const backupPort = await replica(host.address).host(0);
    // The same shard again: the same backup service.
    expect(await replica(host.address).host(0)).toBe(backupPort);
    const backup = `127.0.0.1:${backupPort}`;
    expect(await replica(primary.address).attach(backup)).toBe(0n);

    for (let s = 0; s < 5; s++) await Promise.all([step(primary.address, s), step(reference.address, s)]);
    // Every acknowledged update is on the backup, bit for bit (Adam's slots included: the next steps would differ otherwise).
    expect(await values(backup)).toEqual(await values(primary.address));
    expect(await values(backup)).toEqual(await values(reference.address));
    // A backup serves no worker until promoted.
    await expect(worker(backup, 'worker-0').pull('worker-0')).rejects.toMatchObject({ code: 'NOT_READY' });

    // The primary dies; the chief promotes the backup.
    await primary.ps.close();
    expect(await replica(backup).promote(WORKERS)).toBe(5n);
    // A retry of a push the dead primary acknowledged is a duplicate on the new primary, not applied twice.
    const retry = await worker(backup, 'worker-0').push({ workerId: 'worker-0', step: 4n, basedOnVersion: 4n, batchSize: 1 }, gradient('worker-0', 4));
    expect(retry).toMatchObject({ version: 5n, duplicate: true });
    for (let s = 5; s < 8; s++) await Promise.all([step(backup, s), step(reference.address, s)]);
    expect(await values(backup)).toEqual(await values(reference.address));

    // The restarted server hosts the new backup and is caught up from the new primary.
    const restarted = await server(0);
    const next = `127.0.0.1:${await replica(restarted.address).host(0)}`;
    expect(await replica(backup).attach(next)).toBe(8n);
    await Promise.all([step(backup, 8), step(reference.address, 8)]);
    expect(await values(next)).toEqual(await values(reference.address));
    // Fencing: the promoted primary takes no more forwarded updates.
    await expect(replica(backup).apply(10n, true, [], [])).rejects.toMatchObject({ code: 'REPLICA_CONFIG' });
  });

  it('answers a push only once the backup holds it, and at once when the chief detaches a dead backup', async () => {
    const logs: string[] = [];
    let forwardFailed: () => void = () => {};
    const failed = new Promise<void>((resolve) => (forwardFailed = resolve));
    const primary = await server(0, (m) => {
      logs.push(m);
      if (m.includes('did not take an update')) forwardFailed();
    });
    const host = await server(1);
    await chief(primary.address).assign(CONFIG, INITIAL);
    const backup = `127.0.0.1:${await replica(host.address).host(0)}`;
    await replica(primary.address).attach(backup);
    await step(primary.address, 0);
    await host.ps.close();

    let answered = false;
    const pushes = step(primary.address, 1).then(() => (answered = true));
    await failed;
    // Applied on the primary, but not acknowledged: the backup does not hold it.
    expect((await chief(primary.address).status()).version).toBe(2n);
    expect(answered).toBe(false);
    // The chief reconfigures the chain: the primary is its tail now, and answers.
    expect(await replica(primary.address).attach('')).toBe(0n);
    await pushes;
    expect(answered).toBe(true);
  });

  it('a primary failed over while alive (a false suspicion) acknowledges nothing more: its pushes are refused and land on the promoted backup', async () => {
    const primary = await server(0);
    const host = await server(1);
    const reference = await server(0);
    await chief(primary.address).assign(CONFIG, INITIAL);
    await chief(reference.address).assign(CONFIG, INITIAL);
    const backup = `127.0.0.1:${await replica(host.address).host(0)}`;
    await replica(primary.address).attach(backup);
    await Promise.all([step(primary.address, 0), step(reference.address, 0)]);
    // The chief promotes the backup; the primary does not know yet.
    await replica(backup).promote(WORKERS);
    // Its next step is applied there but cannot reach the backup (fenced): refused, not acknowledged.
    const refused = await Promise.allSettled(WORKERS.map((id) => worker(primary.address, id).push({ workerId: id, step: 1n, basedOnVersion: 1n, batchSize: 1 + WORKERS.indexOf(id) }, gradient(id, 1))));
    expect(refused.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'answered'))).toEqual(['NOT_READY', 'NOT_READY']);
    // It serves no worker any more; the workers retry at the promoted backup, which never saw step 1.
    await expect(worker(primary.address, 'worker-0').pull('worker-0')).rejects.toMatchObject({ code: 'NOT_READY' });
    await Promise.all([step(backup, 1), step(reference.address, 1)]);
    expect(await values(backup)).toEqual(await values(reference.address));
  });

  it('ssp: a promoted backup knows every worker\'s progress, so its staleness gate lets pulls through as the primary would', async () => {
    const primary = await server(0);
    const host = await server(1);
    await chief(primary.address).assign({ ...CONFIG, mode: 'ssp', staleness: 0 }, INITIAL);
    const backup = `127.0.0.1:${await replica(host.address).host(0)}`;
    await replica(primary.address).attach(backup);
    const push = (id: string, s: number) => worker(primary.address, id).push({ workerId: id, step: BigInt(s), basedOnVersion: 0n, batchSize: 1 }, gradient(id, s));
    await push('worker-0', 0);
    await push('worker-1', 0);
    await push('worker-0', 1);
    await primary.ps.close();
    await replica(backup).promote(WORKERS);
    // worker-1 about to compute step 1: worker-0 is at its step 2, so no wait (a gate started from step 0 would hold it for ever).
    const pulled = await worker(backup, 'worker-1').pull('worker-1', { step: 1n, timeoutMs: 30_000 });
    expect(pulled.version).toBe(3n);
    expect((await chief(backup).status()).pullsWaited).toBe(0n);
  });

  it('refuses to host a backup of the server\'s own shard, and replica calls without the chief\'s secret', async () => {
    const primary = await server(0);
    await chief(primary.address).assign(CONFIG, INITIAL);
    await expect(replica(primary.address).host(0)).rejects.toMatchObject({ code: 'REPLICA_CONFIG' });
    const stranger = track(new ReplicaClient(primary.address, JOB, { metadata: { [CHIEF_SECRET_KEY]: newSecret() } }));
    await expect(stranger.attach('127.0.0.1:1')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});
