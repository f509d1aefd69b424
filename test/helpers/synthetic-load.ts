/**
 * Synthetic load on real parameter servers (ARCHITECTURE.md, "Faults": the
 * load test): `tamp ps` processes, assigned as the chief would (async mode,
 * SGD at learning rate 1, one variable per shard), and W synthetic workers in
 * this process, each with its own gRPC channels and slot token, pushing and
 * pulling as fast as they can for a fixed time.
 *
 * Every gradient value is a multiple of 1/8 no larger than 1, so every
 * partial sum the servers form is exact in float32 whatever the order of
 * arrival: the final values must equal the initial ones minus the sum of the
 * acknowledged pushes exactly. A lost update (acknowledged, not applied) or
 * a doubled one (applied twice) shows as a difference; so does a push applied
 * to the wrong slice (the values depend on the element's index).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type WireTensor, optimizerSettings } from '@tamp/core';
import { ShardClient } from '@tamp/parameter-server';
import { CHIEF_SECRET_KEY, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { freePorts } from './ports.js';
import { TAMP_BIN } from './tamp.js';

export interface LoadOptions {
  servers: number;
  workers: number;
  /** Length of each shard's variable (float32 elements). */
  elements: number;
  seconds: number;
  /** RSS is compared between the end of this warm-up and the end of the run. */
  warmupSeconds: number;
}

export interface LoadResult {
  pushes: number;
  pulls: number;
  /** Errors no one provoked: each is a failure of the servers. */
  errors: string[];
  /** Elements (over all shards) whose final value differs from the predicted one. */
  mismatches: number;
  firstMismatch?: string;
  /** Per shard: acknowledged pushes, and the shard's own applied count and version. */
  shards: Array<{ acknowledged: number; applied: number; version: number; rssWarmMiB: number; rssEndMiB: number }>;
  pushMs: { p50: number; p99: number };
  pullMs: { p50: number; p99: number };
  seconds: number;
}

/** The gradient element worker k sends at step s for element j of shard i: a multiple of 1/8 in [1/8, 1]. */
export function gradientValue(k: number, s: number, i: number, j: number): number {
  return (((k * 3 + s + i * 5 + j) % 8) + 1) / 8;
}

/** An initial value per element (exact in float32; distinct by shard and index). */
function initialValue(i: number, j: number): number {
  return ((i * 7 + j) % 16) - 8;
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSyntheticLoad(o: LoadOptions): Promise<LoadResult> {
  const jobId = 'synthetic-load';
  const secret = newSecret();
  const ports = await freePorts(o.servers);
  const procs: ChildProcess[] = ports.map((port, i) =>
    spawn(process.execPath, [TAMP_BIN, 'ps', '--index', String(i), '--port', String(port), '--job-id', jobId], {
      env: { ...process.env, TAMP_CHIEF_SECRET: secret },
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
  const exited = procs.map((p) => new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code))));
  const addresses = ports.map((p) => `127.0.0.1:${p}`);
  const chiefs = addresses.map((a) => new ShardClient(a, jobId, { rpc: { metadata: { [CHIEF_SECRET_KEY]: secret } } }));
  const workerClients: ShardClient[][] = [];
  try {
    const ids = Array.from({ length: o.workers }, (_, k) => `worker-${k}`);
    const variable = (i: number): WireTensor => ({ name: `v${i}`, shape: [o.elements], dtype: 'float32', data: Float32Array.from({ length: o.elements }, (_, j) => initialValue(i, j)), sliceStart: 0 });
    for (const [i, chief] of chiefs.entries()) {
      // Started processes take a moment to listen: status answers once they do.
      for (let attempt = 0; ; attempt++) {
        try {
          await chief.status();
          break;
        } catch (e) {
          if (attempt > 600) throw e;
          await sleep(100);
        }
      }
      await chief.assign({ shardIndex: i, optimizer: optimizerSettings('sgd', 1), version: 0n, mode: 'async', syncReplicas: o.workers, staleness: 0, workerIds: ids }, [variable(i)]);
    }

    const acknowledged: Array<Array<number[]>> = ids.map(() => addresses.map(() => [])); // [worker][shard] = steps acknowledged
    const errors: string[] = [];
    const pushMs: number[] = [];
    const pullMs: number[] = [];
    let pulls = 0;
    const started = performance.now();
    const deadline = started + o.seconds * 1000;
    const rssWarm: number[] = addresses.map(() => Number.NaN);
    const warm = sleep(o.warmupSeconds * 1000).then(() => {
      for (const [i, p] of procs.entries()) rssWarm[i] = rssMiB(p.pid);
    });

    const worker = async (k: number) => {
      const id = ids[k] as string;
      const clients = addresses.map((a) => new ShardClient(a, jobId, { callTimeoutMs: 120_000, rpc: { metadata: { [WORKER_TOKEN_KEY]: slotToken(secret, id, 1) } } }));
      workerClients.push(clients);
      const versions = addresses.map(() => 0n);
      for (let s = 0; performance.now() < deadline && errors.length === 0; s++) {
        await Promise.all(
          clients.map(async (c, i) => {
            const data = new Float32Array(o.elements);
            for (let j = 0; j < o.elements; j++) data[j] = gradientValue(k, s, i, j);
            const t0 = performance.now();
            try {
              await c.push({ workerId: id, step: BigInt(s), basedOnVersion: versions[i] as bigint, batchSize: 1 }, [{ name: `v${i}`, shape: [o.elements], dtype: 'float32', data, sliceStart: 0 }]);
              pushMs.push(performance.now() - t0);
              (acknowledged[k]?.[i] as number[]).push(s);
            } catch (e) {
              errors.push(`${id} push of step ${s} to shard ${i}: ${(e as Error).message}`);
            }
            const t1 = performance.now();
            try {
              const pulled = await c.pull(id);
              pullMs.push(performance.now() - t1);
              versions[i] = pulled.version;
              pulls++;
            } catch (e) {
              errors.push(`${id} pull from shard ${i}: ${(e as Error).message}`);
            }
          }),
        );
      }
    };
    await Promise.all([...ids.map((_, k) => worker(k)), warm]);
    const seconds = (performance.now() - started) / 1000;

    let mismatches = 0;
    let firstMismatch: string | undefined;
    const shards: LoadResult['shards'] = [];
    for (const [i, chief] of chiefs.entries()) {
      const expected = Float64Array.from({ length: o.elements }, (_, j) => initialValue(i, j));
      let count = 0;
      for (const [k, perShard] of acknowledged.entries()) {
        for (const s of perShard[i] as number[]) {
          count++;
          for (let j = 0; j < o.elements; j++) expected[j] = (expected[j] as number) - gradientValue(k, s, i, j);
        }
      }
      const pulled = (await chief.pull('chief')).tensors[0]?.data ?? new Float32Array(0);
      for (let j = 0; j < o.elements; j++) {
        if (pulled[j] !== expected[j]) {
          mismatches++;
          firstMismatch ??= `shard ${i} element ${j}: ${pulled[j]} after the pushes, ${expected[j]} predicted`;
        }
      }
      const status = await chief.status();
      shards.push({ acknowledged: count, applied: Number(status.pushesApplied), version: Number(status.version), rssWarmMiB: rssWarm[i] as number, rssEndMiB: rssMiB(procs[i]?.pid) });
    }
    pushMs.sort((a, b) => a - b);
    pullMs.sort((a, b) => a - b);
    return {
      pushes: pushMs.length,
      pulls,
      errors,
      mismatches,
      ...(firstMismatch !== undefined ? { firstMismatch } : {}),
      shards,
      pushMs: { p50: percentile(pushMs, 0.5), p99: percentile(pushMs, 0.99) },
      pullMs: { p50: percentile(pullMs, 0.5), p99: percentile(pullMs, 0.99) },
      seconds,
    };
  } finally {
    for (const c of [...chiefs, ...workerClients.flat()]) c.close();
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(exited);
  }
}
