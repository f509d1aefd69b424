/**
 * A restarted chief takes over its running job instead of starting it again
 * (ARCHITECTURE.md, "Faults"). The parameter servers and the workers train
 * on while the chief is gone (sync steps need only the servers; heartbeats,
 * checkpoint barriers and Leave are retried within the workers' peer
 * timeout), so nothing is rolled back:
 *
 * - the servers already hold the job: the step is their version; the
 *   restore generation theirs; each worker's slot-token generation is the
 *   newest they accepted from it (ShardStatus tells only the chief);
 * - membership is rebuilt from that, and each worker resumes its slot with
 *   the token it already holds on its next call (no Join): the tokens are an
 *   HMAC of the job's chief secret, which survives the restart (the launcher
 *   and every manifest give the chief the same secret), so no state is
 *   needed to check them;
 * - the checkpoints and epoch evaluations written so far are read back from
 *   --out; an epoch finished but not yet evaluated is evaluated again.
 *
 * A server that lost its state as well is restored from the newest
 * checkpoint by the usual watch (shard-recovery.ts). When every server lost
 * its state, there is no running job to rejoin: the chief starts as a new
 * one would (and refuses an --out holding this job's checkpoints: resume it
 * with --resume).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterError, TampError, errorMessage } from '@tamp/core';
import type { ShardStatusResponse } from '@tamp/proto/tamp/v1/parameter_server';
import { ShardClient } from '@tamp/parameter-server';
import { CHIEF_SECRET_KEY, INSECURE, type RpcSecurity } from '@tamp/rpc';
import { type CheckpointManifest, checkpointsRoot } from './checkpoints.js';
import type { CoordinatorState } from './coordinator-state.js';
import { newestManifest } from './out-folder.js';
import type { ClusterEpochRecord } from './report.js';
import { type ShardWatch, recoveryMetrics } from './shard-recovery.js';

/** How long the chief waits for every parameter server to answer at start. */
export const SHARDS_REACHABLE_MS = 120_000;

/** report.json `recoveries`: the chief restarted and took over the running job. */
export interface ChiefRecoveryRecord {
  readonly role: 'chief';
  readonly index: 0;
  readonly cause: string;
  /** Seconds from the workers' last answer from the crashed chief to their first unanswered heartbeat (null: no worker said). */
  readonly detectedAfterSeconds: number | null;
  /** Seconds from that last answer to the new chief answering (no worker said: from this chief's start to its taking over). */
  readonly resumedAfterSeconds: number;
  /** Nothing is rolled back: 0 (a server that lost its state too has its own entry). */
  readonly stepsLost: 0;
  /** The servers' step (shard 0's version) when this chief took over. */
  readonly restoredStep: number;
  readonly restoredFrom: 'parameter servers';
  readonly generation: number;
}

/**
 * Wait until every parameter server answers, and ask each its status as the
 * chief. One already assigned means a chief of this job ran before: rejoin.
 */
export async function probeShards(addresses: readonly string[], jobId: string, secret: string, security: RpcSecurity = INSECURE): Promise<ShardStatusResponse[]> {
  const clients = addresses.map((a) => new ShardClient(a, jobId, { rpc: { security, metadata: { [CHIEF_SECRET_KEY]: secret } } }));
  try {
    return await Promise.all(clients.map((c) => c.waitReachable(SHARDS_REACHABLE_MS)));
  } catch (error) {
    if (error instanceof TampError && error.code === 'PERMISSION_DENIED') {
      throw new ClusterError(
        'PERMISSION_DENIED',
        `the parameter servers hold a job whose chief secret differs from this chief's (${errorMessage(error)}): a restarted chief takes its job over only with the job's secret (TAMP_CHIEF_SECRET or TAMP_CHIEF_SECRET_FILE, as the launcher and the manifests give it)`,
      );
    }
    throw error;
  } finally {
    for (const c of clients) c.close();
  }
}

/** Whether the servers hold a running job (some shard is assigned). */
export function isRunningJob(statuses: readonly ShardStatusResponse[]): boolean {
  return statuses.some((s) => s.initialized);
}

/** What --out holds of this job: its complete checkpoints' manifests (oldest first) and the newest manifest. */
export function writtenCheckpoints(out: string, jobId: string): { manifests: string[]; newest: CheckpointManifest | undefined } {
  const root = checkpointsRoot(out);
  const newest = newestManifest(out);
  if (!existsSync(root) || newest?.jobId !== jobId) return { manifests: [], newest: undefined };
  const manifests = readdirSync(root)
    .filter((d) => d.startsWith('step-'))
    .sort()
    .map((d) => join(root, d, 'manifest.json'))
    .filter((f) => existsSync(f));
  return { manifests, newest };
}

/** Rebuild the Coordinator's state from the servers' statuses, before it serves (startCoordinator's `prepare`). */
export function rebuildState(state: CoordinatorState, statuses: readonly ShardStatusResponse[], checkpointStep: number, now = Date.now()): void {
  const generations = new Map<string, number>();
  for (const s of statuses) for (const g of s.chiefRejoinSlots) generations.set(g.workerId, Math.max(generations.get(g.workerId) ?? 0, g.generation));
  const assigned = statuses.filter((s) => s.initialized);
  const live = assigned[0]?.liveWorkerIds ?? [];
  state.rebuildFromShards(live, generations, now);
  const first = statuses[0];
  if (first?.initialized === true) state.recordGlobalStep(first.version);
  state.continueJob(
    assigned.reduce((g, s) => (s.restoreGeneration > g ? s.restoreGeneration : g), 0n),
    checkpointStep,
  );
}

/** The epoch records to continue: the newest manifest's, when it has more than the job started with. */
export function recoveredHistory(started: readonly ClusterEpochRecord[], newest: CheckpointManifest | undefined): ClusterEpochRecord[] {
  return newest !== undefined && newest.history.length > started.length ? [...newest.history] : [...started];
}

/**
 * The chief's recovery record, once the workers said how long the chief was
 * silent (or, at the latest, when the report is written: then from this
 * chief's own start). Counted in the recovery metrics and logged once.
 */
export function chiefRecovery(state: CoordinatorState, startedAt: number, tookOverAt: number, step: bigint, log: (m: string) => void): ChiefRecoveryRecord {
  const seen = state.chiefSilence;
  const record: ChiefRecoveryRecord = {
    role: 'chief',
    index: 0,
    cause: 'restarted; took over the running job',
    detectedAfterSeconds: seen?.noticed ?? null,
    resumedAfterSeconds: seen?.silent ?? (tookOverAt - startedAt) / 1000,
    stepsLost: 0,
    restoredStep: Number(step),
    restoredFrom: 'parameter servers',
    generation: Number(state.restoreGeneration),
  };
  const m = recoveryMetrics();
  m.recoveries.inc({ role: 'chief', cause: record.cause });
  if (record.detectedAfterSeconds !== null) m.seconds.observe({ role: 'chief', phase: 'detected' }, record.detectedAfterSeconds);
  m.seconds.observe({ role: 'chief', phase: 'resumed' }, record.resumedAfterSeconds);
  log(
    `recovery: chief (${record.cause}) at step ${record.restoredStep}: ${record.detectedAfterSeconds !== null ? `the workers noticed after ${record.detectedAfterSeconds.toFixed(1)} s, ` : ''}answered again after ${record.resumedAfterSeconds.toFixed(1)} s${seen === undefined ? " (this chief's own start; no worker reported the silence)" : ''}, 0 steps lost`,
  );
  return record;
}

/** A restarted chief's takeover, step by step (Chief calls these; see the file's comment). */
export class Takeover {
  private tookOver: { at: number; step: bigint } | undefined;
  private recorded = false;

  constructor(
    /** The parameter servers' statuses when the chief started. */
    readonly statuses: readonly ShardStatusResponse[],
    private readonly out: string,
    private readonly jobId: string,
    private readonly log: (message: string) => void,
  ) {}

  /** The newest checkpoint of this job under --out (the batch claims of async and ssp start from it). */
  newestManifest(): CheckpointManifest | undefined {
    return writtenCheckpoints(this.out, this.jobId).newest;
  }

  /**
   * The servers keep their state (one that lost it too is restored from the
   * newest checkpoint by the first pass's watch); the checkpoints and epoch
   * records written so far come back from --out into `checkpoints` and `history`.
   */
  adoptShards(watch: ShardWatch, history: ClusterEpochRecord[], checkpoints: string[], now = Date.now()): void {
    this.statuses.forEach((s, i) => watch.healthy(i, s.initialized ? s.version : 0n, now));
    const { manifests, newest } = writtenCheckpoints(this.out, this.jobId);
    checkpoints.push(...manifests);
    history.splice(0, history.length, ...recoveredHistory(history, newest));
    this.log(`took over at step ${this.statuses[0]?.version ?? 0n}: ${manifests.length} checkpoint(s) and ${history.length} epoch record(s) found under ${this.out}`);
  }

  /** The Coordinator's state, rebuilt before it serves (startCoordinator's `prepare`). */
  rebuild(state: CoordinatorState): void {
    rebuildState(state, this.statuses, writtenCheckpoints(this.out, this.jobId).newest?.step ?? 0);
    this.tookOver = { at: Date.now(), step: state.globalStep };
  }

  /** The chief's recovery record, once the workers said how long it was silent, or when `final` (the report); undefined otherwise, and after the first. */
  record(state: CoordinatorState, final: boolean): ChiefRecoveryRecord | undefined {
    const t = this.tookOver;
    if (t === undefined || this.recorded || (!final && state.chiefSilence === undefined)) return undefined;
    this.recorded = true;
    // This process's start: what the takeover took, when no worker said how long the chief was gone.
    return chiefRecovery(state, Math.round(performance.timeOrigin), t.at, t.step, this.log);
  }
}
