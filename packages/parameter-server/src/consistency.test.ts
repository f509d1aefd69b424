import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelError, type WireTensor, crc32, optimizerSettings } from '@tamp/core';
import { readShardCheckpoint, writeShardCheckpoint } from './checkpoint.js';
import { type ConsistencyMode, Shard } from './shard.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-shard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const workers = ['worker-0', 'worker-1', 'worker-2'];

function shard(mode: ConsistencyMode, opts: { syncReplicas?: number; staleness?: number; optimizer?: 'sgd' | 'adam' } = {}): Shard {
  const s = new Shard(0);
  s.assign(
    {
      shardIndex: 0,
      optimizer: optimizerSettings(opts.optimizer ?? 'sgd', 1),
      version: 0n,
      mode,
      syncReplicas: opts.syncReplicas ?? 3,
      staleness: opts.staleness ?? 0,
      workerIds: workers,
    },
    [{ name: 'w', shape: [2], dtype: 'float32', data: Float32Array.from([10, 20]), sliceStart: 0 } satisfies WireTensor],
  );
  return s;
}

const g = (a: number, b: number) => new Map([['w@0', Float32Array.from([a, b])]]);
const meta = (workerId: string, step: number, batchSize = 1) => ({ workerId, step: BigInt(step), basedOnVersion: 0n, batchSize, tensorCount: 1 });
const value = (s: Shard) => Array.from(s.partList[0]?.value ?? []);

describe('sync barrier', () => {
  it('applies the batch-weighted mean once every worker pushed, and answers all of them', async () => {
    const s = shard('sync');
    const a = s.acceptPush(meta('worker-2', 0, 2), g(3, 3));
    const b = s.acceptPush(meta('worker-0', 0, 1), g(6, 0));
    expect(s.version).toBe(0n);
    const c = s.acceptPush(meta('worker-1', 0, 1), g(0, 6));
    const outcomes = await Promise.all([a, b, c]);
    expect(outcomes.map((o) => o.version)).toEqual([1n, 1n, 1n]);
    // mean = (2·3 + 6 + 0) / 4, (2·3 + 0 + 6) / 4 = 3, 3; SGD at lr 1.
    expect(value(s)).toEqual([7, 17]);
  });

  it('drops a late gradient (backup workers) and counts it', async () => {
    const s = shard('sync', { syncReplicas: 2 });
    await Promise.all([s.acceptPush(meta('worker-0', 0), g(1, 1)), s.acceptPush(meta('worker-1', 0), g(1, 1))]);
    const late = await s.acceptPush(meta('worker-2', 0), g(100, 100));
    expect(late).toEqual({ version: 1n, duplicate: false, dropped: true });
    expect(s.counters.dropped).toBe(1n);
    expect(value(s)).toEqual([9, 19]);
  });

  it('answers a retry still waiting at the barrier with the same outcome, applied once', async () => {
    const s = shard('sync', { syncReplicas: 2 });
    const first = s.acceptPush(meta('worker-0', 0), g(2, 2));
    const retry = s.acceptPush(meta('worker-0', 0), g(2, 2));
    await s.acceptPush(meta('worker-1', 0), g(2, 2));
    expect((await first).version).toBe(1n);
    expect(await retry).toEqual({ version: 1n, duplicate: true, dropped: false });
    expect(value(s)).toEqual([8, 18]);
  });

  it('completes a waiting step when a lost worker leaves the membership', async () => {
    const s = shard('sync');
    const a = s.acceptPush(meta('worker-0', 0), g(1, 1));
    const b = s.acceptPush(meta('worker-1', 0), g(1, 1));
    s.setLive(['worker-0', 'worker-1']);
    expect((await Promise.all([a, b])).map((o) => o.version)).toEqual([1n, 1n]);
    await expect(s.acceptPush(meta('worker-0', 5), g(1, 1))).rejects.toThrow(/step 5 is ahead of shard 0, which collects step 1/);
  });
});

describe('ssp gate', () => {
  it('holds a worker more than τ steps ahead of the slowest live worker until it catches up', async () => {
    const s = shard('ssp', { staleness: 2 });
    s.setLive(['worker-0', 'worker-1']);
    await s.beforePull('worker-0', 2n, 0n); // 2 ahead of worker-1 at 0: allowed
    let released = false;
    const held = s.beforePull('worker-0', 3n, 0n).then(() => (released = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(released).toBe(false);
    await s.acceptPush(meta('worker-1', 0), g(0, 0));
    await held;
    expect(released).toBe(true);
    expect(s.counters.pullsWaited).toBe(1n);
    expect(s.counters.maxLead).toBe(2n);
  });

  it('stops waiting for a worker that left the membership', async () => {
    const s = shard('ssp', { staleness: 0 });
    s.setLive(['worker-0', 'worker-1']);
    const held = s.beforePull('worker-0', 4n, 0n);
    s.setLive(['worker-0']);
    await held;
  });
});

describe('shard checkpoint files', () => {
  it('round-trip values, Adam slots and state; any damage is a ModelError, never a crash', async () => {
    const s = shard('async', { optimizer: 'adam' });
    for (let i = 0; i < 3; i++) await s.acceptPush(meta('worker-0', i), g(i + 1, -i));
    const saved = writeShardCheckpoint(s, dir);
    const back = readShardCheckpoint(saved.file);
    expect(back.header.version).toBe('3');
    expect(Array.from(back.values.get('w@0') ?? [])).toEqual(value(s));
    expect(back.slots.get('w:m@0')?.length).toBe(2);
    expect(back.header.optimizerState).toEqual(s.optimizerState());
    const bytes = readFileSync(saved.file);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.constantFrom('flip', 'truncate', 'length'), (at, how) => {
        const copy = Buffer.from(bytes);
        let damaged: Buffer = copy;
        if (how === 'flip') copy[at] = (copy[at] as number) ^ 0x5a;
        if (how === 'truncate') damaged = copy.subarray(0, at);
        if (how === 'length') copy.writeUInt32LE(0xfffffff0, 12);
        const file = join(dir, 'damaged.bin');
        writeFileSync(file, damaged);
        expect(() => readShardCheckpoint(file)).toThrow(ModelError);
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('refuses a header whose parts are malformed even when its checksum is right', async () => {
    const s = shard('async');
    await s.acceptPush(meta('worker-0', 0), g(1, 1));
    const saved = writeShardCheckpoint(s, dir);
    const bytes = readFileSync(saved.file);
    const headerLength = bytes.readUInt32LE(12);
    const header = JSON.parse(bytes.toString('utf8', 16, 16 + headerLength)) as { parts: Array<Record<string, unknown>> };
    for (const broken of [{ slots: 'm' }, { sliceLength: -1 }, { name: 7 }]) {
      const json = Buffer.from(JSON.stringify({ ...header, parts: header.parts.map((p) => ({ ...p, ...broken })) }), 'utf8');
      const data = bytes.subarray(16 + headerLength, bytes.length - 4);
      const out = Buffer.alloc(16 + json.length + data.length + 4);
      bytes.copy(out, 0, 0, 12);
      out.writeUInt32LE(json.length, 12);
      json.copy(out, 16);
      data.copy(out, 16 + json.length);
      out.writeUInt32LE(crc32(out.subarray(0, out.length - 4)), out.length - 4);
      const file = join(dir, 'malformed.bin');
      writeFileSync(file, out);
      expect(() => readShardCheckpoint(file), JSON.stringify(broken)).toThrow(/lacks its name, shape, slice or slot names/);
    }
  });
});
