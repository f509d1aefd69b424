/**
 * The chief's watch over the parameter servers, and their recovery
 * (ARCHITECTURE.md, "Faults").
 *
 * Every pass of the chief's loop asks every shard for its status. A server
 * that answers "not initialised" after it had been assigned came back
 * without its state (a crash, then a restart by the local supervisor or a
 * container restart policy): the chief begins a new restore generation and
 * restores it from the newest complete checkpoint under --out (or the job's
 * start, when none was written yet):
 *
 * - sync: every shard goes back to that checkpoint's step, so the job stays
 *   exactly consistent; workers are refused with ROLLED_BACK until they take
 *   the new generation and replay from that step (ps-recovery.ts).
 * - async and ssp: only the lost shard is restored; the others keep their
 *   newer values. Neither mode has a global step to be consistent with (the
 *   result already depends on timing), and rolling the survivors back would
 *   throw away their updates as well.
 *
 * A server that does not answer is asked again on the next pass, until it
 * has been silent for the peer timeout: then the job fails, naming it.
 */
import { ClusterError, type ShardConfig, type WireTensor, errorMessage } from '@tamp/core';
import type { ParameterClient } from '@tamp/parameter-server';
import type { ShardStatusResponse } from '@tamp/proto/tamp/v1/parameter_server';
import { rpcMetrics } from '@tamp/rpc';
import { Counter, Histogram } from 'prom-client';
import { checkpointsRoot, findLatestCheckpoint, restoreTensors } from './checkpoints.js';
import type { ChiefJob } from './chief-job.js';
import { jobWire } from './job-config.js';

/** One fault the job survived (report.json `recoveries`). */
export interface RecoveryRecord {
  readonly role: 'ps';
  readonly index: number;
  readonly cause: string;
  /** Seconds from the last time the chief saw it healthy to noticing the fault. */
  readonly detectedAfterSeconds: number;
  /** Seconds from the last time the chief saw it healthy to its state restored (training resumes). */
  readonly resumedAfterSeconds: number;
  /** Updates undone: sync, the steps between the checkpoint and the global step; async/ssp, the lost shard's. */
  readonly stepsLost: number;
  /** The step the shards went back to. */
  readonly restoredStep: number;
  /** The checkpoint restored (a folder), or "start" when none had been written. */
  readonly restoredFrom: string;
  /** The restore generation this recovery began. */
  readonly generation: number;
}

export interface RecoveryMetrics {
  readonly recoveries: Counter;
  readonly seconds: Histogram;
  readonly stepsLost: Counter;
}

let metrics: RecoveryMetrics | undefined;

/** Registered by the first chief's watch, so other roles' processes show none. */
export function recoveryMetrics(): RecoveryMetrics {
  const registers = [rpcMetrics.registry];
  metrics ??= {
    recoveries: new Counter({ name: 'tamp_recoveries_total', help: 'Faults the job recovered from, by role and cause', labelNames: ['role', 'cause'], registers }),
    seconds: new Histogram({
      name: 'tamp_recovery_seconds',
      help: 'From the last healthy sight of a role to noticing its fault (phase="detected") and to its state restored (phase="resumed")',
      labelNames: ['role', 'phase'],
      buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30, 60],
      registers,
    }),
    stepsLost: new Counter({ name: 'tamp_recovery_steps_lost_total', help: 'Updates undone by recoveries, by role', labelNames: ['role'], registers }),
  };
  return metrics;
}

/** A shard's status as one pass saw it. */
export type ShardSight = { readonly status: ShardStatusResponse } | { readonly error: unknown };

export class ShardWatch {
  /** When each shard last answered as initialised (undefined before). */
  private readonly healthyAt: Array<number | undefined>;
  /** Its version then (what a restore undoes in async and ssp). */
  private readonly lastVersion: bigint[];
  /** Since when it has not answered, or answered uninitialised. */
  private readonly faultySince: Array<number | undefined>;

  constructor(
    private readonly params: ParameterClient,
    private readonly peerTimeoutMs: number,
    private readonly log: (message: string) => void,
  ) {
    this.healthyAt = params.shards.map(() => undefined);
    this.lastVersion = params.shards.map(() => 0n);
    this.faultySince = params.shards.map(() => undefined);
    recoveryMetrics();
  }

  /**
   * Ask every shard for its status. Returns each one's answer and the indices
   * of those that came back uninitialised after they had been healthy;
   * throws PEER_UNAVAILABLE for one silent past the peer timeout.
   */
  async poll(now = Date.now()): Promise<{ sights: ShardSight[]; restarted: number[] }> {
    const sights = await Promise.all(
      this.params.shards.map((s) =>
        s.status().then(
          (status): ShardSight => ({ status }),
          (error: unknown): ShardSight => ({ error }),
        ),
      ),
    );
    const restarted: number[] = [];
    sights.forEach((sight, i) => {
      if ('status' in sight) {
        if (sight.status.initialized) {
          this.faultySince[i] = undefined;
          this.healthyAt[i] = now;
          this.lastVersion[i] = sight.status.version;
        } else if (this.healthyAt[i] !== undefined) {
          this.faultySince[i] ??= now;
          restarted.push(i);
        }
        return;
      }
      const first = this.faultySince[i] === undefined;
      this.faultySince[i] ??= now;
      const silent = now - (this.healthyAt[i] ?? (this.faultySince[i] as number));
      if (silent > this.peerTimeoutMs) {
        throw new ClusterError(
          'PEER_UNAVAILABLE',
          `parameter server ${i} at ${this.params.shards[i]?.address} has not answered for ${Math.round(silent / 1000)} s, past the peer timeout of ${Math.round(this.peerTimeoutMs / 1000)} s (${errorMessage(sight.error)})`,
        );
      }
      if (first) this.log(`parameter server ${i} did not answer: ${errorMessage(sight.error)}; waiting for it to come back`);
    });
    return { sights, restarted };
  }

  /** When shard `i` was last seen healthy, its version then, and since when it has been faulty. */
  lastSeen(i: number): { at: number | undefined; version: bigint; faultySince: number | undefined } {
    return { at: this.healthyAt[i], version: this.lastVersion[i] ?? 0n, faultySince: this.faultySince[i] };
  }

  /** Shard `i` holds its state at `version` from `now` (assigned or restored). */
  healthy(i: number, version: bigint, now = Date.now()): void {
    this.faultySince[i] = undefined;
    this.healthyAt[i] = now;
    this.lastVersion[i] = version;
  }
}

/** What a restore starts from: the newest complete checkpoint under --out, else the job's own start. */
export interface RestorePoint {
  readonly from: string;
  /** The version the shards go back to (sync: the step; async/ssp: shard 0's, see versionOf). */
  readonly version: bigint;
  /** Shard `index`'s own version in the checkpoint (async/ssp versions may differ after an earlier restore). */
  versionOf(index: number): bigint;
  readonly step: number;
  tensorsFor(index: number): WireTensor[];
}

export function restorePoint(job: ChiefJob, out: string, params: ParameterClient, log: (m: string) => void): RestorePoint {
  const latest = findLatestCheckpoint(out, (m) => log(`warning: ${m}`)) ?? job.restored;
  if (latest !== undefined) {
    const versions = latest.manifest.versions;
    return {
      from: latest.dir,
      version: latest.version,
      versionOf: (i) => (versions[i] !== undefined ? BigInt(versions[i]) : latest.version),
      step: latest.manifest.step,
      tensorsFor: (i) => restoreTensors(latest, params, i, job.training.optimizer),
    };
  }
  return { from: 'start', version: 0n, versionOf: () => 0n, step: 0, tensorsFor: (i) => params.partsFor(i, job.initial) };
}

export interface RecoveryContext {
  readonly job: ChiefJob;
  readonly out: string;
  readonly params: ParameterClient;
  readonly watch: ShardWatch;
  readonly numWorkers: number;
  /** The servers' global step before the fault (sync: steps applied). */
  readonly globalStep: bigint;
  /** ssp: the slowest live worker's step, where a restored shard's staleness gate starts. */
  readonly slowestWorkerStep: number;
  /** Begin a new restore generation going back to `step` (CoordinatorState.beginRestore); returns it. */
  beginRestore(step: bigint): bigint;
  readonly log: (message: string) => void;
}

/**
 * Restore the shards `restarted` (sync: every shard) from the newest
 * complete checkpoint, in a new restore generation. Returns one record per
 * restarted server.
 */
export async function recoverShards(ctx: RecoveryContext, restarted: readonly number[], detectedAt: number): Promise<RecoveryRecord[]> {
  const { job, params, watch, log } = ctx;
  const t = job.training;
  const point = restorePoint(job, ctx.out, params, log);
  const sync = t.mode === 'sync';
  const targets = sync ? params.shards.map((_, i) => i) : [...restarted];
  // Announced before any shard changes: a worker refused by a restored shard finds the new generation at the chief.
  const generation = ctx.beginRestore(BigInt(point.step));
  log(
    `parameter server(s) ${restarted.join(', ')} came back without their state; restoring ${sync ? 'every shard' : 'them'} from ${point.from === 'start' ? "the job's start" : point.from} (step ${point.step}), restore generation ${generation}`,
  );
  const config = (i: number): ShardConfig => ({
    shardIndex: i,
    optimizer: t.optimizer,
    version: point.versionOf(i),
    mode: t.mode,
    syncReplicas: ctx.numWorkers - t.backupWorkers,
    staleness: t.staleness,
    workerIds: job.workerIds,
    workerStep: BigInt(sync ? point.step : Math.max(point.step, ctx.slowestWorkerStep)),
    ...jobWire(t),
    restoreGeneration: generation,
  });
  await Promise.all(targets.map((i) => (params.shards[i] as (typeof params.shards)[number]).assign(config(i), point.tensorsFor(i), checkpointsRoot(ctx.out))));
  const resumedAt = Date.now();
  const records = restarted.map((i): RecoveryRecord => {
    const seen = watch.lastSeen(i);
    const since = seen.at ?? detectedAt;
    const noticed = seen.faultySince ?? detectedAt;
    const lost = sync ? ctx.globalStep - point.version : seen.version - point.versionOf(i);
    return {
      role: 'ps',
      index: i,
      cause: 'restarted without its state',
      detectedAfterSeconds: (noticed - since) / 1000,
      resumedAfterSeconds: (resumedAt - since) / 1000,
      stepsLost: Math.max(0, Number(lost)),
      restoredStep: point.step,
      restoredFrom: point.from,
      generation: Number(generation),
    };
  });
  for (const i of targets) watch.healthy(i, point.versionOf(i), resumedAt);
  return records;
}

/**
 * Count parameter-server recoveries (a restore, or a failover) in the
 * metrics and log each. The chief calls this once it has saved them
 * (recovery-journal.ts), so whatever reads the line finds them in
 * <out>/recoveries.json even if the chief dies right after.
 */
export function announceRecoveries(records: readonly RecoveryRecord[], log: (message: string) => void): void {
  const m = recoveryMetrics();
  for (const r of records) {
    m.recoveries.inc({ role: r.role, cause: r.cause });
    m.seconds.observe({ role: r.role, phase: 'detected' }, r.detectedAfterSeconds);
    m.seconds.observe({ role: r.role, phase: 'resumed' }, r.resumedAfterSeconds);
    m.stepsLost.inc({ role: r.role }, r.stepsLost);
    log(
      r.cause === 'failover'
        ? `recovery: ps shard ${r.index} (failover): detected after ${r.detectedAfterSeconds.toFixed(1)} s, backup promoted after ${r.resumedAfterSeconds.toFixed(1)} s at version ${r.restoredStep}, 0 steps lost`
        : `recovery: ps ${r.index} (${r.cause}): detected after ${r.detectedAfterSeconds.toFixed(1)} s, state restored after ${r.resumedAfterSeconds.toFixed(1)} s, back to step ${r.restoredStep}, ${r.stepsLost} step(s) lost`,
    );
  }
}
