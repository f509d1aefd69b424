/**
 * ParameterClient over three real ParameterServer gRPC servers: a variable
 * the placement splits is pushed to each shard as exactly its slice and
 * pulled back whole.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterError, InvalidArgumentError, type Placement, Random, placeVariables, optimizerSettings, sizeOfShape } from '@tamp/core';
import { CHIEF_SECRET_KEY, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { ParameterClient } from './parameter-client.js';
import { type RunningParameterServer, startParameterServer } from './server.js';
import { reassembleVariables } from './split.js';

const JOB = 'split-job';
const WORKERS = ['worker-0', 'worker-1'];
// "big" is far larger than a third of the total, so the placement splits it over the three shards.
const VARIABLES = [
  { name: 'big', shape: [300, 10] },
  { name: 'small', shape: [7] },
  { name: 'mid', shape: [40, 5] },
];

let servers: RunningParameterServer[];
let placement: Placement;
let params: ParameterClient;
let workerParams: Map<string, ParameterClient>;
const SECRET = newSecret();
const CHIEF = { rpc: { metadata: { [CHIEF_SECRET_KEY]: SECRET } } };
/** Worker `id`'s clients, with the slot token the chief would have given it. */
const as = (id: string) => workerParams.get(id) as ParameterClient;
const addresses = () => servers.map((s) => `127.0.0.1:${s.port}`);

const r = new Random(3);
const initial = new Map(VARIABLES.map((v) => [v.name, Float32Array.from({ length: sizeOfShape(v.shape) }, () => Math.round(r.normal() * 100))]));

beforeAll(async () => {
  servers = await Promise.all([0, 1, 2].map((index) => startParameterServer({ jobId: JOB, index, chiefSecret: SECRET })));
  placement = placeVariables(VARIABLES, 3);
  params = new ParameterClient(addresses(), placement, JOB, CHIEF);
  workerParams = new Map(WORKERS.map((id) => [id, new ParameterClient(addresses(), placement, JOB, { rpc: { metadata: { [WORKER_TOKEN_KEY]: slotToken(SECRET, id, 1) } } })]));
  await Promise.all(
    params.shards.map((shard, i) =>
      shard.assign({ shardIndex: i, optimizer: optimizerSettings('sgd', 1), version: 0n, mode: 'async', syncReplicas: 2, staleness: 0, workerIds: WORKERS }, params.partsFor(i, initial)),
    ),
  );
});

afterAll(async () => {
  params.close();
  for (const c of workerParams.values()) c.close();
  await Promise.all(servers.map((s) => s.close()));
});

/** What shard `index`'s server holds of variable `name`, as [sliceStart, values] pairs. */
const held = (index: number, name: string) => (servers[index] as RunningParameterServer).shard.partList.filter((p) => p.name === name).map((p) => [p.sliceStart, Array.from(p.value)] as const);

describe('ParameterClient over three parameter servers', () => {
  it('places a slice of the big variable on every shard and pulls the variables back whole', async () => {
    const bigParts = placement.shards.map((parts) => parts.filter((p) => p.name === 'big'));
    expect(bigParts.map((p) => p.length)).toEqual([1, 1, 1]);
    const big = initial.get('big') as Float32Array;
    for (let i = 0; i < 3; i++) {
      const part = bigParts[i]?.[0];
      if (part === undefined) throw new Error('the placement put no slice of "big" on a shard (checked above)');
      expect(held(i, 'big')).toEqual([[part.sliceStart, Array.from(big.subarray(part.sliceStart, part.sliceStart + part.sliceLength))]]);
    }
    const { values, versions } = await params.pullAll('chief');
    expect(versions).toEqual([0n, 0n, 0n]);
    expect([...values.keys()].sort()).toEqual(['big', 'mid', 'small']);
    for (const [name, data] of initial) expect(Array.from(values.get(name) ?? []), name).toEqual(Array.from(data));
  });

  it('pushes each shard exactly its slices of a whole gradient, applied once per shard', async () => {
    const grads = new Map([...initial].map(([name, data]) => [name, Float32Array.from(data, (_, i) => (i % 13) - 6)]));
    const before = (await as('worker-0').pullAll('worker-0')).values;
    const responses = await as('worker-0').pushAll({ workerId: 'worker-0', step: 0n, batchSize: 4, basedOnVersions: [0n, 0n, 0n] }, grads);
    expect(responses.map((x) => [x.version, x.duplicate])).toEqual([
      [1n, false],
      [1n, false],
      [1n, false],
    ]);
    // Every shard applied exactly the elements it holds (SGD at lr 1: value − gradient, exact on these integers).
    for (let i = 0; i < 3; i++) {
      for (const p of placement.shards[i] ?? []) {
        const g = (grads.get(p.name) as Float32Array).subarray(p.sliceStart, p.sliceStart + p.sliceLength);
        const v = (before.get(p.name) as Float32Array).subarray(p.sliceStart, p.sliceStart + p.sliceLength);
        expect(held(i, p.name).find(([start]) => start === p.sliceStart)?.[1], `${p.name}@${p.sliceStart} on shard ${i}`).toEqual(Array.from(v, (x, k) => x - (g[k] as number)));
      }
    }
    const after = await as('worker-1').pullAll('worker-1');
    for (const [name, g] of grads) expect(Array.from(after.values.get(name) ?? []), name).toEqual(Array.from(before.get(name) as Float32Array, (x, k) => x - (g[k] as number)));
    // A retried push (same worker, same step) is not applied again on any shard.
    const again = await as('worker-0').pushAll({ workerId: 'worker-0', step: 0n, batchSize: 4, basedOnVersions: [0n, 0n, 0n] }, grads);
    expect(again.map((x) => [x.version, x.duplicate])).toEqual([
      [1n, true],
      [1n, true],
      [1n, true],
    ]);
  });

  it('refuses addresses in the wrong order, a wrong number of addresses and a gradient missing a variable, with typed errors', async () => {
    expect(() => new ParameterClient(addresses().slice(1), placement, JOB)).toThrow(ClusterError);
    const swapped = new ParameterClient([...addresses()].reverse(), placement, JOB, CHIEF);
    try {
      await expect(swapped.pullAll('chief')).rejects.toMatchObject({ code: 'UNKNOWN_VARIABLE', message: expect.stringMatching(/check the order of the ps addresses/) as unknown });
    } finally {
      swapped.close();
    }
    const partial = new Map([...initial].filter(([name]) => name !== 'small'));
    const needsSmall = placement.shards.findIndex((parts) => parts.some((p) => p.name === 'small'));
    expect(() => params.partsFor(needsSmall, partial)).toThrow(InvalidArgumentError);
  });
});

describe('reassembleVariables', () => {
  it('refuses a shard that leaves out one of its parts', () => {
    const p = placeVariables(VARIABLES, 2);
    const pulled = p.shards.map((parts) => parts.map((part) => ({ name: part.name, shape: part.shape, dtype: 'float32' as const, data: new Float32Array(part.sliceLength), sliceStart: part.sliceStart })));
    expect(reassembleVariables(p, pulled).size).toBe(3);
    pulled[1]?.pop();
    expect(() => reassembleVariables(p, pulled)).toThrow(/shard 1 did not send/);
  });
});
