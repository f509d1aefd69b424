import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type PullResponse, ParameterServerClient as RawClient, type PushRequest, type PushResponse } from '@tamp/proto/tamp/v1/parameter_server';
import { ClusterError, PROTOCOL_VERSION, TampError, type WireTensor, encodeTensor, optimizerSettings } from '@tamp/core';
import { CHIEF_SECRET_KEY, GrpcStatus as status, RpcError, WORKER_TOKEN_KEY, createClient, newSecret, slotToken } from '@tamp/rpc';
import { ShardClient } from './client.js';
import { type RunningParameterServer, startParameterServer } from './server.js';

const JOB = 'test-job';
const WORKERS = ['worker-0', 'worker-1', 'worker-2', 'worker-3'];
let ps: RunningParameterServer;
let client: ShardClient;
let address: string;
const SECRET = newSecret();
const CHIEF = { rpc: { metadata: { [CHIEF_SECRET_KEY]: SECRET } } };
const workerRpc = (id: string) => ({ metadata: { [WORKER_TOKEN_KEY]: slotToken(SECRET, id, 1) } });
let workers = new Map<string, ShardClient>();
/** A client of worker `id`, with the slot token the chief would have given it. */
function as(id: string): ShardClient {
  let c = workers.get(id);
  if (c === undefined) {
    c = new ShardClient(address, JOB, { rpc: workerRpc(id) });
    workers.set(id, c);
  }
  return c;
}

function vars(values: { w: number[]; b: number[] }): WireTensor[] {
  return [
    { name: 'w', shape: [2, 3], dtype: 'float32', data: Float32Array.from(values.w), sliceStart: 0 },
    { name: 'b', shape: [3], dtype: 'float32', data: Float32Array.from(values.b), sliceStart: 0 },
  ];
}

const INITIAL = { w: [10, 20, 30, 40, 50, 60], b: [1, 2, 3] };

async function assign(lr = 1): Promise<void> {
  await client.assign(
    { shardIndex: 0, optimizer: optimizerSettings('sgd', lr), version: 0n, mode: 'async', syncReplicas: 1, staleness: 0, workerIds: WORKERS },
    vars(INITIAL),
  );
}

async function values(): Promise<{ version: bigint; w: number[]; b: number[] }> {
  const { version, tensors } = await client.pull('chief');
  const get = (n: string) => Array.from(tensors.find((t) => t.name === n)?.data ?? []);
  return { version, w: get('w'), b: get('b') };
}

async function expectRefused(p: Promise<unknown>, grpcCode: status, tampCode: string, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected the call to be refused').toBeInstanceOf(RpcError);
  const e = caught as RpcError;
  expect(status[e.grpcCode]).toBe(status[grpcCode]);
  expect(e.code).toBe(tampCode);
  expect(e.message).toMatch(pattern);
}

beforeEach(async () => {
  ps = await startParameterServer({ jobId: JOB, index: 0, chiefSecret: SECRET });
  address = `127.0.0.1:${ps.port}`;
  client = new ShardClient(address, JOB, CHIEF);
});

afterEach(async () => {
  client.close();
  for (const c of workers.values()) c.close();
  workers = new Map();
  await ps.close();
});

describe('parameter server', () => {
  it('refuses pushes before the chief initialised it (UNAVAILABLE, retryable)', async () => {
    await expectRefused(as('worker-0').push({ workerId: 'worker-0', step: 0n, basedOnVersion: 0n, batchSize: 1 }, vars(INITIAL)), status.UNAVAILABLE, 'NOT_READY', /not been initialised/);
  });

  it('applies every async push exactly once: K workers × M integer gradients with SGD at lr 1', async () => {
    await assign(1);
    const K = 4;
    const M = 25;
    const gradient = (k: number, m: number) => ({ w: [1, 2, 3, 4, 5, 6].map((x) => x * (k + 1) + m), b: [k, m, 1] });
    await Promise.all(
      Array.from({ length: K }, async (_, k) => {
        const c = new ShardClient(address, JOB, { rpc: workerRpc(`worker-${k}`) });
        for (let m = 0; m < M; m++) {
          const g = gradient(k, m);
          const r = await c.push({ workerId: `worker-${k}`, step: BigInt(m), basedOnVersion: 0n, batchSize: 1 }, vars(g));
          expect(r.duplicate).toBe(false);
        }
        c.close();
      }),
    );
    const expected = { w: [...INITIAL.w], b: [...INITIAL.b] };
    for (let k = 0; k < K; k++) {
      for (let m = 0; m < M; m++) {
        const g = gradient(k, m);
        g.w.forEach((x, i) => (expected.w[i] = (expected.w[i] as number) - x));
        g.b.forEach((x, i) => (expected.b[i] = (expected.b[i] as number) - x));
      }
    }
    const got = await values();
    expect(got.version).toBe(BigInt(K * M));
    expect(got.w).toEqual(expected.w);
    expect(got.b).toEqual(expected.b);
  });

  it('acknowledges a retried push without applying it again', async () => {
    await assign(1);
    const g = vars({ w: [1, 1, 1, 1, 1, 1], b: [1, 1, 1] });
    const first = await as('worker-0').push({ workerId: 'worker-0', step: 7n, basedOnVersion: 0n, batchSize: 1 }, g);
    const again = await as('worker-0').push({ workerId: 'worker-0', step: 7n, basedOnVersion: 0n, batchSize: 1 }, g);
    expect(first).toMatchObject({ version: 1n, duplicate: false });
    expect(again).toMatchObject({ version: 1n, duplicate: true });
    expect((await values()).w).toEqual(INITIAL.w.map((x) => x - 1));
    const other = await as('worker-1').push({ workerId: 'worker-1', step: 7n, basedOnVersion: 0n, batchSize: 1 }, g);
    expect(other.duplicate).toBe(false);
    const st = await client.status();
    expect([st.pushesApplied, st.pushesDuplicate]).toEqual([2n, 1n]);
  });

  describe('bad input is refused with its status and changes nothing', () => {
    const meta = { workerId: 'worker-0', step: 1n, basedOnVersion: 0n, batchSize: 1 };
    const good = () => vars({ w: [1, 1, 1, 1, 1, 1], b: [1, 1, 1] });

    async function unchanged(): Promise<void> {
      const v = await values();
      expect(v).toEqual({ version: 0n, w: INITIAL.w, b: INITIAL.b });
    }

    beforeEach(async () => {
      await assign(1);
    });

    it('an unknown variable', async () => {
      const g = good();
      g[1] = { ...(g[1] as WireTensor), name: 'bias' };
      await expectRefused(as('worker-0').push(meta, g), status.INVALID_ARGUMENT, 'UNKNOWN_VARIABLE', /gradient "bias" names no variable/);
      await unchanged();
    });

    it('a wrong shape', async () => {
      const g = good();
      g[0] = { name: 'w', shape: [3, 2], dtype: 'float32', data: new Float32Array(6), sliceStart: 0 };
      await expectRefused(as('worker-0').push(meta, g), status.INVALID_ARGUMENT, 'SHAPE_MISMATCH', /"w" has shape \[3,2\], expected \[2,3\]/);
      await unchanged();
    });

    it('a wrong dtype', async () => {
      const g = good();
      g[1] = { name: 'b', shape: [3], dtype: 'int32', data: new Int32Array(3), sliceStart: 0 };
      await expectRefused(as('worker-0').push(meta, g), status.INVALID_ARGUMENT, 'SHAPE_MISMATCH', /"b" has dtype int32, expected float32/);
      await unchanged();
    });

    it('NaN and Infinity', async () => {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const g = good();
        (g[0]?.data as Float32Array)[4] = bad;
        await expectRefused(as('worker-0').push(meta, g), status.INVALID_ARGUMENT, 'NON_FINITE', new RegExp(`"w" holds ${bad} at element 4`));
      }
      await unchanged();
    });

    it('a missing gradient', async () => {
      const g = good().slice(0, 1);
      await expectRefused(as('worker-0').push(meta, g), status.INVALID_ARGUMENT, 'INVALID_ARGUMENT', /missing gradients for b@0/);
      await unchanged();
    });

    it('a wrong job id', async () => {
      const other = new ShardClient(address, 'another-job', { rpc: workerRpc('worker-0') });
      await expectRefused(other.push(meta, good()), status.FAILED_PRECONDITION, 'JOB_MISMATCH', /job "another-job" reached a server of another job/);
      await expectRefused(other.pull('worker-0'), status.FAILED_PRECONDITION, 'JOB_MISMATCH', /another-job/);
      other.close();
      await unchanged();
    });

    it('an unknown worker', async () => {
      await expectRefused(as('worker-9').push({ ...meta, workerId: 'worker-9' }, good()), status.FAILED_PRECONDITION, 'UNKNOWN_WORKER', /worker "worker-9" is not part of this job/);
      await expectRefused(as('worker-9').pull('worker-9'), status.FAILED_PRECONDITION, 'UNKNOWN_WORKER', /worker-9/);
      await unchanged();
    });

    describe('through a raw client', () => {
      let raw: RawClient;
      beforeEach(() => {
        raw = createClient(RawClient, address, workerRpc('worker-0'));
      });
      afterEach(() => raw.close());

      function rawPush(messages: PushRequest[], finish: 'end' | 'cancel'): Promise<PushResponse> {
        return new Promise((resolve, reject) => {
          const stream = raw.push((error, response) => (error !== null ? reject(error) : resolve(response as PushResponse)));
          for (const m of messages) stream.write(m);
          if (finish === 'end') stream.end();
          else setTimeout(() => stream.cancel(), 50);
        });
      }

      function pushMessages(protocolVersion = PROTOCOL_VERSION): PushRequest[] {
        const chunks = good().flatMap((t) => encodeTensor(t, { chunkBytes: 8 }));
        return chunks.map((chunk, i) => ({
          header: i === 0 ? { jobId: JOB, protocolVersion } : undefined,
          workerId: 'worker-0',
          step: 1n,
          basedOnVersion: 0n,
          batchSize: 1,
          tensorCount: 2,
          momentumCorrected: false,
          adamCorrected: false,
          chunk,
          moreChunks: [],
          restoreGeneration: 0n,
        }));
      }

      it('a wrong protocol version', async () => {
        const error = await rawPush(pushMessages(PROTOCOL_VERSION + 1), 'end').catch((e: unknown) => e);
        expect((error as { code: number }).code).toBe(status.FAILED_PRECONDITION);
        expect((error as { details: string }).details).toMatch(new RegExp(`protocol version ${PROTOCOL_VERSION + 1} is not this server's ${PROTOCOL_VERSION}`));
        await unchanged();
      });

      it('(not bad input) every chunk of a push in one message, `chunk` then `more_chunks`, applies like one chunk per message', async () => {
        const [first, ...rest] = pushMessages();
        if (first?.chunk === undefined) throw new Error('no chunks');
        const one: PushRequest = { ...first, moreChunks: rest.map((m) => m.chunk).filter((c) => c !== undefined) };
        expect(one.moreChunks.length).toBe(4); // "w" in three 8-byte chunks, "b" in two
        const r = await rawPush([one], 'end');
        expect(r).toMatchObject({ version: 1n, duplicate: false });
        expect((await values()).w).toEqual(INITIAL.w.map((x) => x - 1));
      });

      it('(not bad input) a pull packs the shard\'s small tensors into one message', async () => {
        const messages = await new Promise<PullResponse[]>((resolve, reject) => {
          const got: PullResponse[] = [];
          const stream = raw.pull({ header: { jobId: JOB, protocolVersion: PROTOCOL_VERSION }, workerId: 'worker-0', names: [], minVersion: 0n, codec: 0, step: 0n, basePull: 0n, restoreGeneration: 0n });
          stream.on('data', (m: PullResponse) => got.push(m));
          stream.on('error', reject);
          stream.on('end', () => resolve(got));
        });
        expect(messages.length).toBe(1);
        expect([messages[0]?.chunk?.name, ...(messages[0]?.moreChunks.map((c) => c.name) ?? [])]).toEqual(['w', 'b']);
      });

      it('a stream cut mid-tensor (half-closed)', async () => {
        const messages = pushMessages().slice(0, 2); // "w" is 24 bytes in 8-byte chunks: 2 of 3
        const error = await rawPush(messages, 'end').catch((e: unknown) => e);
        expect((error as { code: number }).code).toBe(status.INVALID_ARGUMENT);
        expect((error as { details: string }).details).toMatch(/tensor "w": received 16 of 24 bytes/);
        await unchanged();
      });

      it('a stream cancelled mid-tensor', async () => {
        const error = await rawPush(pushMessages().slice(0, 2), 'cancel').catch((e: unknown) => e);
        expect((error as { code: number }).code).toBe(status.CANCELLED);
        await unchanged();
        expect((await client.status()).pushesApplied).toBe(0n);
      });

      it('a chunk gap and a damaged chunk', async () => {
        const gap = pushMessages();
        gap.splice(1, 1);
        const e1 = await rawPush(gap, 'end').catch((e: unknown) => e);
        expect((e1 as { details: string }).details).toMatch(/tensor "w": chunk at byte offset 16 arrived but bytes \[8, 16\) are missing/);
        const damaged = pushMessages();
        const c = damaged[1]?.chunk;
        if (c !== undefined) c.payload = Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9]);
        const e2 = await rawPush(damaged, 'end').catch((e: unknown) => e);
        expect((e2 as { details: string }).details).toMatch(/tensor "w": checksum mismatch/);
        await unchanged();
      });
    });
  });

  it('rebuilds typed errors on the client side', async () => {
    const e = await as('worker-0').push({ workerId: 'worker-0', step: 0n, basedOnVersion: 0n, batchSize: 1 }, []).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TampError);
    expect(e).not.toBeInstanceOf(ClusterError);
  });
});
