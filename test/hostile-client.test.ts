/**
 * A hostile client against a parameter server and the chief's Coordinator
 * (ARCHITECTURE.md, "Security"): built at test time from the `.proto` files
 * (test/helpers/hostile.ts), it knows the job id, as an attacker on the same
 * network does, and tries each attack the security review found; then a
 * seeded fuzzer sends random and malformed messages to every method of both
 * services, with and without credentials. The servers run in their own
 * process (test/helpers/hostile-target.ts), so its memory is theirs.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { type Client } from '@grpc/grpc-js';
import { PROTOCOL_VERSION, type WireTensor, encodeTensor, optimizerSettings } from '@tamp/core';
import { ShardClient } from '@tamp/parameter-server';
import { CHIEF_SECRET_KEY, WORKER_KEY_KEY, WORKER_TOKEN_KEY, newSecret } from '@tamp/rpc';
import { CoordinatorClient } from '@tamp/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorProto, ParameterServerProto, type Target, clientStream, metadata, protoClient, serverStream, startTarget, unary } from './helpers/hostile.js';
import { fuzz } from './helpers/hostile-fuzz.js';

const JOB = 'hostile-job';
const SECRET = newSecret();
const WORKERS = ['worker-0', 'worker-1'];
const header = (jobId = JOB) => ({ jobId, protocolVersion: PROTOCOL_VERSION });
const MiB = 1024 * 1024;

let target: Target;
let base: string;
let root: string;
let chief: ShardClient;
let worker: CoordinatorClient;
let workerToken: string;
let ps: Client;
let coordinator: Client;

const vars = (w: number[], b: number[]): WireTensor[] => [
  { name: 'w', shape: [2, 3], dtype: 'float32', data: Float32Array.from(w), sliceStart: 0 },
  { name: 'b', shape: [3], dtype: 'float32', data: Float32Array.from(b), sliceStart: 0 },
];
const INITIAL = vars([1, 2, 3, 4, 5, 6], [7, 8, 9]);

/** A TensorChunk as the .proto spells it (uint64 as strings). */
function protoChunks(t: WireTensor, chunkBytes = MiB) {
  return encodeTensor(t, { chunkBytes }).map((c) => ({ ...c, offset: String(c.offset), totalBytes: String(c.totalBytes), sliceStart: String(c.sliceStart), sliceLength: String(c.sliceLength) }));
}

/** Every file under a folder. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile()).sort();
}

async function values(): Promise<number[]> {
  const { tensors } = await chief.pull('chief');
  return tensors.flatMap((t) => Array.from(t.data));
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'tamp-hostile-'));
  root = join(base, 'out', 'checkpoints');
  target = await startTarget(JOB, SECRET);
  chief = new ShardClient(`127.0.0.1:${target.ps}`, JOB, { rpc: { metadata: { [CHIEF_SECRET_KEY]: SECRET } } });
  await chief.assign({ shardIndex: 0, optimizer: optimizerSettings('sgd', 0.5), version: 0n, mode: 'async', syncReplicas: 2, staleness: 0, workerIds: WORKERS }, INITIAL, root);
  worker = new CoordinatorClient(`127.0.0.1:${target.chief}`, JOB, 10_000, { metadata: { [WORKER_KEY_KEY]: 'legit-key' } });
  workerToken = (await worker.join('legit-0', 0, 'cpu')).workerToken;
  worker.setWorkerToken(workerToken);
  ps = protoClient(ParameterServerProto, target.ps);
  coordinator = protoClient(CoordinatorProto, target.chief);
}, 120_000);

afterAll(async () => {
  ps?.close();
  coordinator?.close();
  chief?.close();
  worker?.close();
  await target?.close();
  rmSync(base, { recursive: true, force: true });
});

describe('a hostile client that knows the job id', () => {
  it('SaveShard writes nowhere the caller names: paths are refused, nothing is written, the chief checkpoints under its own root', async () => {
    const attempts = ['../../../evil', join(base, 'abs'), 'step-000000003/../../x', 'a/b', 'step-3', '..'];
    for (const directory of attempts) {
      const outsider = await unary(ps, 'saveShard', { header: header(), directory, step: 3 });
      expect(status[outsider.code], directory).toBe('PERMISSION_DENIED');
      // Even the chief's own secret does not make a path acceptable.
      const asChief = await unary(ps, 'saveShard', { header: header(), directory, step: 3 }, metadata({ [CHIEF_SECRET_KEY]: SECRET }));
      expect(status[asChief.code], directory).toBe('INVALID_ARGUMENT');
    }
    const huge = await unary(ps, 'saveShard', { header: header(), directory: '', step: String(2n ** 40n) }, metadata({ [CHIEF_SECRET_KEY]: SECRET }));
    expect(status[huge.code]).toBe('INVALID_ARGUMENT');
    expect(filesUnder(base)).toEqual([]);
    const saved = await chief.saveShard('step-000000003', 3n);
    expect(saved.file).toBe(join(root, 'step-000000003', 'shard-0.bin'));
    expect(filesUnder(base)).toEqual([join('out', 'checkpoints', 'step-000000003', 'shard-0.bin')]);
  });

  it('Shutdown, Assign, UpdateMembership and SaveShard are the chief\'s alone: refused without its secret, with a wrong one and with a worker\'s token', async () => {
    const before = await values();
    const credentials = [metadata(), metadata({ [CHIEF_SECRET_KEY]: newSecret() }), metadata({ [WORKER_TOKEN_KEY]: workerToken })];
    for (const md of credentials) {
      expect(status[(await unary(ps, 'shutdown', { header: header(), reason: 'the chief says so' }, md)).code]).toBe('PERMISSION_DENIED');
      expect(status[(await unary(ps, 'updateMembership', { header: header(), liveWorkerIds: [] }, md)).code]).toBe('PERMISSION_DENIED');
      expect(status[(await unary(ps, 'saveShard', { header: header(), directory: '', step: 4 }, md)).code]).toBe('PERMISSION_DENIED');
      const first = { header: header(), shardIndex: 0, optimizer: { name: 'sgd', learningRate: 1 }, mode: 'async', workerIds: WORKERS, tensorCount: 2, checkpointRoot: root };
      const chunks = vars([0, 0, 0, 0, 0, 0], [0, 0, 0]).flatMap((t) => protoChunks(t));
      const assign = await clientStream(ps, 'assign', [first, ...chunks.map((chunk) => ({ chunk }))], md);
      expect(status[assign.code]).toBe('PERMISSION_DENIED');
    }
    const state = await target.state();
    expect(state.shutdowns).toEqual([]);
    expect(state.ps.live).toEqual(WORKERS);
    expect(await values()).toEqual(before);
  });

  it('a large streamed Assign is refused before it grows the server, with or without the chief\'s secret', async () => {
    const big: WireTensor = { name: 'w', shape: [48 * MiB], dtype: 'float32', data: new Float32Array(48 * MiB), sliceStart: 0 };
    const chunks = protoChunks(big);
    const first = { header: header(), shardIndex: 0, optimizer: { name: 'sgd', learningRate: 1 }, mode: 'async', workerIds: WORKERS, tensorCount: 1, checkpointRoot: root };
    const rss = (await target.state()).rss;
    const outsider = await clientStream(ps, 'assign', (function* () {
      yield first;
      for (const chunk of chunks) yield { chunk };
    })(), metadata(), { ms: 120_000 });
    expect(status[outsider.code]).toBe('PERMISSION_DENIED');
    const asChief = await clientStream(ps, 'assign', (function* () {
      yield first;
      for (const chunk of chunks) yield { chunk };
    })(), metadata({ [CHIEF_SECRET_KEY]: SECRET }), { ms: 120_000 });
    expect(status[asChief.code]).toBe('INVALID_ARGUMENT');
    expect(asChief.details).toMatch(/exceed the \d+ bytes a shard of this server may hold/);
    const after = await target.state();
    // Two streams of 192 MiB went by; the server kept neither (the old server held all of it).
    expect(after.rss - rss).toBeLessThan(96 * MiB);
    expect(after.ps.bytes).toBe(36);
  }, 180_000);

  it('a foreign client cannot take a live worker\'s slot, act as that worker, or read the weights', async () => {
    for (const taskIndex of [0, -1]) {
      const join = await unary(coordinator, 'join', { header: header(), workerId: 'legit-0', taskIndex, backend: 'cpu' }, metadata({ [WORKER_KEY_KEY]: 'another-key' }));
      expect(status[join.code], `task index ${taskIndex}`).toBe('UNAVAILABLE');
      expect(join.details).toMatch(/held by a live worker/);
    }
    const progress = { header: header(), workerId: 'worker-0', localStep: 1, epoch: 1, loss: 0.5, samples: 32, seconds: 1 };
    const forged = `1.${'A'.repeat(43)}`;
    for (const md of [metadata(), metadata({ [WORKER_TOKEN_KEY]: forged }), metadata({ [CHIEF_SECRET_KEY]: newSecret() })]) {
      expect(status[(await unary(coordinator, 'heartbeat', progress, md)).code]).toBe('PERMISSION_DENIED');
      expect(status[(await unary(coordinator, 'leave', { header: header(), workerId: 'worker-0', finished: true }, md)).code]).toBe('PERMISSION_DENIED');
      // Nor hold a Presence call in its name (whose end would drop the worker).
      expect(status[(await serverStream(coordinator, 'presence', { header: header(), workerId: 'worker-0' }, md)).code]).toBe('PERMISSION_DENIED');
      const push = await clientStream(
        ps,
        'push',
        vars([1, 1, 1, 1, 1, 1], [1, 1, 1]).flatMap((t) => protoChunks(t)).map((chunk, i) => (i === 0 ? { header: header(), workerId: 'worker-0', step: 1, batchSize: 1, tensorCount: 2, chunk } : { chunk })),
        md,
      );
      expect(status[push.code]).toBe('PERMISSION_DENIED');
      for (const workerId of ['worker-0', 'chief']) {
        const pull = await serverStream(ps, 'pull', { header: header(), workerId }, md);
        expect([status[pull.code], pull.messages], workerId).toEqual(['PERMISSION_DENIED', 0]);
      }
    }
    const state = await target.state();
    expect(state.chief.workers).toEqual([expect.objectContaining({ clientId: 'legit-0', workerId: 'worker-0', state: 'joined', joins: 1, epoch: 0 })]);
    expect(state.ps.version).toBe('0');
    // The worker itself, with its token, still trains.
    expect((await worker.heartbeat('worker-0', { localStep: 1n, epoch: 0, loss: 1, samples: 16n, seconds: 1 })).stop).toBe(false);
    // A worker's own token does not make it another worker.
    const own = metadata({ [WORKER_TOKEN_KEY]: workerToken });
    const asOther = await clientStream(
      ps,
      'push',
      vars([1, 1, 1, 1, 1, 1], [1, 1, 1]).flatMap((t) => protoChunks(t)).map((chunk, i) => (i === 0 ? { header: header(), workerId: 'worker-1', step: 1, batchSize: 1, tensorCount: 2, chunk } : { chunk })),
      own,
    );
    expect(status[asOther.code]).toBe('PERMISSION_DENIED');
    expect(status[(await serverStream(ps, 'pull', { header: header(), workerId: 'worker-1' }, own)).code]).toBe('PERMISSION_DENIED');
    // A newer Join of the slot (the worker restarted with its key) supersedes the old token, at the chief and at the shards.
    const rejoined = (await worker.join('legit-0', 0, 'cpu')).workerToken;
    expect(status[(await serverStream(ps, 'pull', { header: header(), workerId: 'worker-0' }, metadata({ [WORKER_TOKEN_KEY]: rejoined }))).code]).toBe('OK');
    expect(status[(await serverStream(ps, 'pull', { header: header(), workerId: 'worker-0' }, own)).code]).toBe('PERMISSION_DENIED');
    expect(status[(await unary(coordinator, 'heartbeat', { ...progress, epoch: 0 }, own)).code]).toBe('PERMISSION_DENIED');
    workerToken = rejoined;
    worker.setWorkerToken(rejoined);
    expect((await worker.heartbeat('worker-0', { localStep: 1n, epoch: 0, loss: 1, samples: 16n, seconds: 1 })).stop).toBe(false);
  });

  it('numbers from the wire are checked against the job: a heartbeat of epoch 4294967295 is refused, even with the worker\'s own token', async () => {
    const md = metadata({ [WORKER_TOKEN_KEY]: workerToken });
    const progress = { header: header(), workerId: 'worker-0', localStep: 2, epoch: 1, loss: 0.5, samples: 32, seconds: 1 };
    for (const bad of [{ epoch: 4294967295 }, { epoch: 3 }, { localStep: String(2n ** 63n) }, { samples: String(2n ** 62n) }, { seconds: -1 }, { loss: -2 }]) {
      const r = await unary(coordinator, 'heartbeat', { ...progress, ...bad }, md);
      expect(status[r.code], JSON.stringify(bad)).toBe('INVALID_ARGUMENT');
    }
    for (const step of ['0', String(2n ** 60n), '41']) {
      const r = await unary(coordinator, 'checkpointBarrier', { header: header(), workerId: 'worker-0', step }, md);
      expect(status[r.code], step).toBe('INVALID_ARGUMENT');
    }
    const state = await target.state();
    expect(state.chief.epoch).toBe(0);
    expect(state.chief.workers[0]).toMatchObject({ epoch: 0, localStep: '1' });
    // Pushes and pulls: declared counts, batch sizes and versions beyond the shard's are refused before they drive anything.
    const pushWith = (meta: Record<string, unknown>) =>
      clientStream(ps, 'push', vars([1, 1, 1, 1, 1, 1], [1, 1, 1]).flatMap((t) => protoChunks(t)).map((chunk, i) => (i === 0 ? { header: header(), workerId: 'worker-0', step: 1, batchSize: 1, tensorCount: 2, ...meta, chunk } : { chunk })), md);
    for (const meta of [{ tensorCount: 4294967295 }, { batchSize: 0 }, { batchSize: 4294967295 }, { basedOnVersion: String(2n ** 63n) }]) {
      expect(status[(await pushWith(meta)).code], JSON.stringify(meta)).toBe('INVALID_ARGUMENT');
    }
    const pull = await serverStream(ps, 'pull', { header: header(), workerId: 'worker-0', minVersion: String(2n ** 63n) }, md);
    expect(status[pull.code]).toBe('INVALID_ARGUMENT');
    expect((await target.state()).ps.version).toBe('0');
  });

  it('errors never name the server\'s job id to a caller of another job, on any method', async () => {
    const other = header('intruder');
    const outcomes = [
      await unary(coordinator, 'join', { header: other, workerId: 'x', taskIndex: -1 }),
      await unary(coordinator, 'heartbeat', { header: other, workerId: 'worker-0' }),
      await unary(coordinator, 'leave', { header: other, workerId: 'worker-0' }),
      await unary(coordinator, 'checkpointBarrier', { header: other, workerId: 'worker-0', step: 1 }),
      await unary(coordinator, 'jobStatus', { header: other }),
      await serverStream(coordinator, 'presence', { header: other, workerId: 'worker-0' }),
      await unary(ps, 'shardStatus', { header: other }),
      await unary(ps, 'saveShard', { header: other, step: 1 }),
      await unary(ps, 'shutdown', { header: other }),
      await unary(ps, 'updateMembership', { header: other }),
      await serverStream(ps, 'pull', { header: other, workerId: 'worker-0' }),
      await clientStream(ps, 'push', [{ header: other, workerId: 'worker-0' }]),
      await clientStream(ps, 'assign', [{ header: other }]),
    ];
    for (const o of outcomes) {
      expect(status[o.code]).toBe('FAILED_PRECONDITION');
      expect(o.details).toMatch(/request for job "intruder" reached a server of another job/);
      expect(o.details).not.toContain(JOB);
    }
  });

  it('survives random and malformed messages to every method of both services, with and without credentials', async () => {
    const rss = (await target.state()).rss;
    const outcomes = await fuzz({ seed: 20, calls: Number(process.env.TAMP_FUZZ_CALLS ?? 2500), psPort: target.ps, chiefPort: target.chief, jobId: JOB, chiefSecret: SECRET, workerToken });
    const codes = new Map<string, number>();
    for (const o of outcomes) codes.set(status[o.code] as string, (codes.get(status[o.code] as string) ?? 0) + 1);
    // Every method was reached, and none answered as a server bug would.
    expect(new Set(outcomes.map((o) => o.method)).size).toBe(19);
    expect(codes.get('UNKNOWN') ?? 0, JSON.stringify([...codes])).toBe(0);
    expect(codes.get('INTERNAL') ?? 0, JSON.stringify(outcomes.filter((o) => o.code === status.INTERNAL).slice(0, 3))).toBe(0);
    // The job id check holds: no request of another job was answered.
    expect(outcomes.filter((o) => o.foreignJob && o.code === status.OK)).toEqual([]);
    expect(outcomes.filter((o) => o.foreignJob).every((o) => !o.details.includes(JOB))).toBe(true);
    const state = await target.state();
    expect(target.process.exitCode).toBeNull();
    expect(state.unknownErrors).toEqual([]);
    expect(state.rss - rss).toBeLessThan(512 * MiB);
    // And the job still works: the chief reads the shard, the worker heartbeats.
    expect((await chief.status()).initialized).toBe(true);
    expect((await worker.jobStatus()).state).toBe('running');
  }, 240_000);
});
