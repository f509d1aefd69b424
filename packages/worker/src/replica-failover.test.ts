/**
 * The chief's side of --ps-replicas 1 step by step against real servers:
 * backups placed on the next parameter server, a closed server's shards
 * failed over to their backups with nothing rolled back, the survivors'
 * backups on it detached, a server started again on its port caught up as
 * the new backup, and a second failover onto it. Workers push through gRPC
 * with the slot tokens the chief would have given them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterError } from '@tamp/core';
import { type RunningParameterServer, ShardClient, startParameterServer } from '@tamp/parameter-server';
import { CHIEF_SECRET_KEY, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { Chief } from './chief.js';
import { type ShardFixture, closeShardFixture, openShardFixture, tinyTraining } from './chief-shards.fixture.js';
import { checkPsReplicas } from './replica-chain.js';

const JOB = 'replica-test';
const SECRET = newSecret();
const WORKERS = ['worker-0', 'worker-1'];
const training = tinyTraining;

let fixture: ShardFixture;
let servers: RunningParameterServer[];
let out: string;
let chief: Chief | undefined;
let clients: ShardClient[];

beforeEach(async () => {
  fixture = await openShardFixture(JOB, SECRET, 'tamp-replica-');
  ({ servers, out, clients } = fixture);
});

afterEach(async () => {
  await closeShardFixture(fixture, chief);
  chief = undefined;
});

async function makeChief(): Promise<Chief> {
  chief = await createChief();
  await chief.startShards();
  await chief.startCoordinator();
  return chief;
}

function createChief(): Promise<Chief> {
  return Chief.create({
    jobId: JOB,
    psAddresses: servers.map((s) => `127.0.0.1:${s.port}`),
    numWorkers: 2,
    training: training('sync'),
    out,
    backend: 'cpu',
    heartbeatIntervalMs: 50,
    peerTimeoutMs: 5_000,
    chiefSecret: SECRET,
    psReplicas: 1,
  });
}

function client(address: string, metadata: Record<string, string>): ShardClient {
  const c = new ShardClient(address, JOB, { rpc: { metadata } });
  clients.push(c);
  return c;
}

/** Every shard's variables and slots as the chief reads them at `address`. */
async function read(address: string): Promise<{ version: bigint; data: number[][] }> {
  const { version, tensors } = await client(address, { [CHIEF_SECRET_KEY]: SECRET }).pull('chief');
  return { version, data: tensors.map((t) => Array.from(t.data)) };
}

/** `steps` sync steps: both workers push a gradient to every shard at its current address. */
async function train(c: Chief, steps: number): Promise<void> {
  for (let k = 0; k < steps; k++) {
    await Promise.all(
      (c.chain?.addresses() ?? []).map(async (address, i) => {
        const step = (await read(address)).version;
        const parts = c.params.partsFor(i, new Map(c.job.specs.map((v) => [v.name, new Float32Array(v.shape.reduce((a, b) => a * b, 1)).fill(0.01 * (Number(step) + 1))])));
        await Promise.all(WORKERS.map((id) => client(address, { [WORKER_TOKEN_KEY]: slotToken(SECRET, id, 1) }).push({ workerId: id, step, basedOnVersion: step, batchSize: 1 }, parts)));
      }),
    );
  }
}

/** Each shard's primary and backup hold the same variables, slots and version. */
async function expectReplicated(c: Chief): Promise<void> {
  for (const link of c.chain?.links ?? []) {
    expect(link.backup).toBeDefined();
    expect(await read(link.backup?.address ?? '')).toEqual(await read(link.primary));
  }
}

describe('--ps-replicas 1: the chief\'s failover', () => {
  it('promotes the backups of a closed server with nothing lost, catches its restart up as the new backup, and fails over again onto it', async () => {
    const c = await makeChief();
    const chain = c.chain;
    if (chain === undefined) throw new Error('the chief made no chain with psReplicas 1');
    expect(chain.links.map((l) => [l.primaryPs, l.backup?.ps])).toEqual([
      [0, 1],
      [1, 0],
    ]);
    await train(c, 3);
    await expectReplicated(c);
    const before = await read(chain.addresses()[1] as string);

    // Parameter server 1 dies: shard 1's backup on server 0 is promoted; shard 0's backup (on server 1) is dropped.
    const port1 = servers[1]?.port as number;
    await servers[1]?.close();
    await c.refreshGlobalStep();
    expect(c.recoveries).toEqual([expect.objectContaining({ role: 'ps', index: 1, cause: 'failover', stepsLost: 0, restoredStep: 3 })]);
    expect(chain.generation).toBe(1n);
    expect(chain.links.map((l) => [l.primaryPs, l.backup?.ps])).toEqual([
      [0, undefined],
      [0, undefined],
    ]);
    expect(await read(chain.addresses()[1] as string)).toEqual(before);
    // The chief reads the moved shard at its new address too.
    expect(c.params.shards[1]?.address).toBe(chain.addresses()[1]);
    await train(c, 1);
    expect((await read(chain.addresses()[1] as string)).version).toBe(4n);

    // It comes back on its port, empty: the next pass makes it both shards' backup, copied from their primaries.
    servers[1] = await startParameterServer({ jobId: JOB, index: 1, port: port1, chiefSecret: SECRET });
    await c.refreshGlobalStep();
    expect(c.recoveries).toHaveLength(1);
    expect(chain.links.map((l) => [l.primaryPs, l.backup?.ps])).toEqual([
      [0, 1],
      [0, 1],
    ]);
    await train(c, 1);
    await expectReplicated(c);
    const beforeSecond = await Promise.all(chain.addresses().map((a) => read(a)));

    // Now server 0 dies, holding both primaries: both fail over onto the restarted server, again with nothing lost.
    await servers[0]?.close();
    await c.refreshGlobalStep();
    expect(c.recoveries.map((r) => [r.index, r.cause, r.stepsLost, r.restoredStep])).toEqual([
      [1, 'failover', 0, 3],
      [0, 'failover', 0, 5],
      [1, 'failover', 0, 5],
    ]);
    expect(chain.links.map((l) => l.primaryPs)).toEqual([1, 1]);
    expect(await Promise.all(chain.addresses().map((a) => read(a)))).toEqual(beforeSecond);
    await train(c, 1);
    expect((await read(chain.addresses()[0] as string)).version).toBe(6n);
  });
});

describe('--ps-replicas 1: a restarted chief', () => {
  it('reads the chain back from the servers (a moved shard at its promoted backup, each backup where its primary forwards) and fails over with it', async () => {
    const first = await makeChief();
    await train(first, 2);
    // Server 1 dies and comes back: shard 1 now lives on server 0 (promoted), both backups on the restarted server 1.
    const port1 = servers[1]?.port as number;
    await servers[1]?.close();
    await first.refreshGlobalStep();
    servers[1] = await startParameterServer({ jobId: JOB, index: 1, port: port1, chiefSecret: SECRET });
    await first.refreshGlobalStep();
    await train(first, 1);
    const links = first.chain?.links.map((l) => ({ ...l, backup: l.backup === undefined ? undefined : { ...l.backup } }));
    expect(links?.map((l) => [l.primaryPs, l.backup?.ps])).toEqual([
      [0, 1],
      [0, 1],
    ]);
    expect(links?.[1]?.primary).not.toBe(`127.0.0.1:${port1}`);

    // The chief dies; a new one finds the job running and takes it over with the chain as the servers hold it.
    await first.close();
    chief = undefined;
    const second = await createChief();
    chief = second;
    expect(second.rejoining).toBe(true);
    expect(second.chain?.links).toEqual(links);
    expect(second.params.shards.map((s) => s.address)).toEqual(links?.map((l) => l.primary));
    // Above the first chief's: the workers follow only a higher placement generation.
    expect(second.chain?.generation).toBeGreaterThan(first.chain?.generation ?? 0n);
    await second.startOrAdoptShards();
    await second.startCoordinator();
    await second.refreshGlobalStep();
    expect(second.recoveries).toEqual([]); // the moved shard was not taken for a server that lost its state
    const before = await Promise.all((second.chain?.addresses() ?? []).map((a) => read(a)));
    expect(before.map((b) => b.version)).toEqual([3n, 3n]);

    // Server 0, holding both primaries, dies: the adopted chain fails both over to server 1 with nothing lost.
    await servers[0]?.close();
    await second.refreshGlobalStep();
    expect(second.recoveries.map((r) => [r.index, r.cause, r.stepsLost, r.restoredStep])).toEqual([
      [0, 'failover', 0, 3],
      [1, 'failover', 0, 3],
    ]);
    expect(await Promise.all((second.chain?.addresses() ?? []).map((a) => read(a)))).toEqual(before);
    await train(second, 1);
    expect((await read(second.chain?.addresses()[1] as string)).version).toBe(4n);
  });
});

describe('checkPsReplicas', () => {
  it('takes 0 or 1, and 1 only with two or more parameter servers', () => {
    expect(() => checkPsReplicas(0, 1)).not.toThrow();
    expect(() => checkPsReplicas(1, 2)).not.toThrow();
    for (const [r, p] of [
      [2, 3],
      [-1, 2],
      [1, 1],
      [0.5, 2],
    ] as const) {
      expect(() => checkPsReplicas(r, p)).toThrow(ClusterError);
      try {
        checkPsReplicas(r, p);
      } catch (error) {
        expect((error as ClusterError).code).toBe('REPLICA_CONFIG');
      }
    }
  });
});
