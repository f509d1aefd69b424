/**
 * The Coordinator's state: membership (membership.ts), the checkpoint
 * barrier, the global step and the job's status. The gRPC service
 * (coordinator.ts) and the chief share one instance and change it only
 * through these methods, so every transition (and anything that counts
 * them) has one place; readers get read-only views.
 */
import type { CheckpointBarrierResponse } from '@tamp/proto/tamp/v1/coordinator';
import { ClusterError } from '@tamp/core';
import { Membership, type MembershipOptions, type WorkerRecord } from './membership.js';
import type { JobPoint } from './worker-faults.js';
import { type BatchPlan, type BatchProgress, BatchClaims, type Claim } from './batch-claims.js';
import type { BatchRange } from './batch-ranges.js';

export type JobState = 'starting' | 'running' | 'finishing' | 'done' | 'failed';

export interface CoordinatorOptions extends MembershipOptions {
  readonly jobConfigJson: string;
  readonly psAddresses: readonly string[];
  /** --ps-replicas 1: each shard's current address and the placement generation (a failover moves a shard; replica-chain.ts). */
  readonly placement?: () => { readonly addresses: readonly string[]; readonly generation: bigint };
  readonly heartbeatIntervalMs: number;
  /** Steps the whole job takes (for progress bars; sync counts one per step of all workers). */
  readonly totalSteps?: number;
  /** async and ssp: batches are claimed from the chief (batch-claims.ts); a resumed job starts from its checkpoint's progress. */
  readonly claims?: {
    readonly plan: BatchPlan;
    readonly resume?: { progress: BatchProgress; checkpointStep: number };
    /** ssp: leave workers idle without a batch out of the shards' live set (its staleness gate would wait for them); async's policy reads no live set. */
    readonly idleNotLive?: boolean;
  };
}

/** A finished epoch's validation score, by task. */
export interface EpochScore {
  readonly task: 'classification' | 'detection';
  readonly score: number;
}

const NEXT_STATES: Readonly<Record<JobState, readonly JobState[]>> = {
  starting: ['running', 'failed'],
  running: ['finishing', 'failed'],
  finishing: ['done', 'failed'],
  done: [],
  failed: [],
};

export class CoordinatorState extends Membership {
  private job: JobState = 'running';
  private step = 0n;
  private epochs = 0;
  private accuracy = 0;
  private map = 0;
  private checkpointAt = 0n;
  private checkpointCount = 0;
  /** Barriers released, and the seconds from each one's first arrival to its release (metrics). */
  private barrierStats = { released: 0, seconds: 0 };
  private failure = '';
  /** The restore generation and, in sync mode, the step the shards went back to (ARCHITECTURE.md, "Faults"). */
  private generation = 0n;
  private rolledBackTo = 0n;
  /** Workers waiting at a checkpoint barrier: the step, when the first arrived, and how to release each. */
  private barrier: { step: number; since: number; arrived: Map<string, (r: CheckpointBarrierResponse) => void> } | undefined;
  /** The step of the last barrier released, written or abandoned (−1: none yet); lowered by a sync restore. */
  private releasedBarrierStep = -1;
  /** What the workers saw of a chief's silence before this chief took over (chiefSilenceSeen). */
  private silence: { noticed: number; silent: number } | undefined;

  /** async and ssp: the job's batches, claimed by the workers (undefined in sync, whose batches go by step). */
  readonly claims: BatchClaims | undefined;

  constructor(override readonly options: CoordinatorOptions) {
    super(options);
    this.claims = options.claims !== undefined ? new BatchClaims(options.claims.plan, options.claims.resume) : undefined;
  }

  /** A worker joins (or rejoins); refused once the job is over. */
  override join(clientId: string, requestedIndex: number, backend: string, now = Date.now(), key = ''): WorkerRecord {
    if (this.job === 'done' || this.job === 'failed') {
      throw new ClusterError('JOB_MISMATCH', `join: the job has already ${this.job === 'done' ? 'finished' : 'failed'}`);
    }
    const r = super.join(clientId, requestedIndex, backend, now, key);
    // A new process in the slot knows nothing of the batches its predecessor claimed.
    this.handBack(r.workerId, 'rejoined');
    return r;
  }

  override checkLost(now = Date.now()): WorkerRecord[] {
    const lost = super.checkLost(now);
    for (const r of lost) this.handBack(r.workerId, 'lost');
    return lost;
  }

  override leave(id: string, finished: boolean, reason: string, final?: Parameters<Membership['leave']>[3], now = Date.now()): void {
    super.leave(id, finished, reason, final, now);
    if (!finished) this.handBack(this.find(id, 'leave').workerId, 'left');
  }

  // ---- batch claims (async, ssp) ----

  /** `id` reports the batches it finished and claims up to `count` more (batch-claims.ts); `idle`: it holds none. */
  claimBatches(id: string, count: number, done: readonly BatchRange[], idle = false): Claim & { total: number } {
    const r = this.find(id, 'claimBatches');
    if (this.claims === undefined) {
      throw new ClusterError('CLUSTER_CONFIG', `claimBatches: ${r.workerId} asked for batches, but this is a sync job, whose workers take their batches by step`);
    }
    const wasIdle = this.claims.isIdle(r.workerId);
    const claim = this.claims.claim(r.workerId, count, done, idle);
    // New done batches may finish an epoch; a worker going idle or busy changes ssp's live set.
    if (done.length > 0 || wasIdle !== this.claims.isIdle(r.workerId)) this.changed();
    return { ...claim, total: this.claims.plan.totalBatches };
  }

  private handBack(workerId: string, why: string): void {
    const n = this.claims?.release(workerId) ?? 0;
    if (n > 0) this.log(`${workerId} ${why}: its ${n} unfinished batch(es) go to the other workers`);
  }

  /** A worker fault is recorded at the global step and restore generation of the moment. */
  protected override jobPoint(): JobPoint {
    return { step: this.step, generation: this.generation };
  }

  // ---- checkpoint barrier ----

  /**
   * A worker reached checkpoint `step`: resolves when the checkpoint is written (or abandoned).
   * One that trains in an older restore generation is refused with ROLLED_BACK (its step was undone).
   */
  arriveAtBarrier(id: string, step: number, generation = this.generation): Promise<CheckpointBarrierResponse> {
    const r = this.find(id, 'checkpointBarrier');
    if (generation < this.generation) {
      throw new ClusterError(
        'ROLLED_BACK',
        `checkpointBarrier: ${r.workerId} arrived in restore generation ${generation}, but the parameter servers were restored since (generation ${this.generation}, step ${this.rolledBackTo}); continue from there`,
      );
    }
    // A worker that was wrongly declared lost comes back behind the others: a barrier at a
    // step already released (written without it, or abandoned) has nobody left to wait for,
    // since the others trained on past it. Waiting there would hold this worker while the
    // others wait for its next push: release it at once, nothing written for it.
    if (step <= this.releasedBarrierStep) {
      // The batch claims may still pause at it (a restarted chief's, below its newest checkpoint): move them past it.
      this.claims?.barrierReleased(step);
      return Promise.resolve({ complete: false, manifest: '' });
    }
    if (this.barrier !== undefined && this.barrier.step !== step) {
      throw new ClusterError('CLUSTER_CONFIG', `checkpointBarrier: ${r.workerId} arrived for step ${step} while the others wait at step ${this.barrier.step}`);
    }
    this.barrier ??= { step, since: performance.now(), arrived: new Map() };
    const barrier = this.barrier;
    return new Promise((resolve) => {
      barrier.arrived.set(r.workerId, resolve);
      this.changed();
    });
  }

  /** The step workers wait at, if any. */
  get barrierStep(): number | undefined {
    return this.barrier?.step;
  }

  /**
   * A checkpoint barrier has arrivals, or (async/ssp) the hand-out waits at a
   * checkpoint boundary so one is about to: the chief defers an epoch's
   * evaluation (seconds) until it is served, since workers would wait for it.
   */
  get checkpointImminent(): boolean {
    return this.barrier !== undefined || this.claims?.paused === true;
  }

  /** Workers waiting at the barrier. */
  get barrierArrived(): readonly string[] {
    return [...(this.barrier?.arrived.keys() ?? [])];
  }

  /** Every worker still training waits at the barrier. */
  get barrierReady(): boolean {
    if (this.barrier === undefined) return false;
    const active = this.active;
    return active.length > 0 && active.every((w) => this.barrier?.arrived.has(w.workerId) === true);
  }

  /** Release everyone at the barrier. */
  releaseBarrier(response: CheckpointBarrierResponse): void {
    const b = this.barrier;
    this.barrier = undefined;
    if (b !== undefined) this.releasedBarrierStep = Math.max(this.releasedBarrierStep, b.step);
    if (b !== undefined) this.claims?.barrierReleased(b.step);
    if (b !== undefined) this.barrierStats = { released: this.barrierStats.released + 1, seconds: this.barrierStats.seconds + (performance.now() - b.since) / 1000 };
    for (const resolve of b?.arrived.values() ?? []) resolve(response);
  }

  // ---- what the chief learns and decides ----

  /** The parameter servers' version (sync: steps applied; async: pushes applied). */
  recordGlobalStep(version: bigint): void {
    this.step = version;
  }

  /**
   * The chief is restoring parameter servers from a checkpoint: a new restore
   * generation begins (sync: at `step`, where every shard goes back to). A
   * checkpoint barrier in progress is abandoned: its workers, and the others,
   * find the restore on their next request and continue from there.
   */
  beginRestore(step: bigint): bigint {
    this.generation += 1n;
    this.rolledBackTo = step;
    this.releaseBarrier({ complete: false, manifest: '' });
    // Sync replays from `step`: the barriers after it are to be met again.
    this.releasedBarrierStep = Math.min(this.releasedBarrierStep, Number(step));
    this.changed();
    return this.generation;
  }

  /**
   * A restarted chief takes over a running job (chief-rejoin.ts): the
   * restore generation the parameter servers are in, and the newest
   * checkpoint already on disk (a barrier at or before it is released at
   * once: its workers were released before the crash, or it is written).
   */
  continueJob(generation: bigint, checkpointStep: number): void {
    this.generation = generation;
    if (checkpointStep > 0) {
      this.checkpointAt = BigInt(checkpointStep);
      this.releasedBarrierStep = checkpointStep;
      this.claims?.barrierReleased(checkpointStep);
    }
    this.changed();
  }

  /**
   * A worker's first heartbeat after the chief's silence: seconds from its
   * last answer before it to its first unanswered heartbeat (`noticed`), and
   * to this answered one (`silent`). The earliest worker's are kept.
   */
  chiefSilenceSeen(noticed: number, silent: number): void {
    const seen = this.silence;
    this.silence = { noticed: Math.min(seen?.noticed ?? noticed, noticed), silent: Math.min(seen?.silent ?? silent, silent) };
  }

  /** What the workers saw of the chief's silence (undefined before any said). */
  get chiefSilence(): { readonly noticed: number; readonly silent: number } | undefined {
    return this.silence;
  }

  /** A complete checkpoint was written at `step`. */
  checkpointWritten(step: number): void {
    this.checkpointAt = BigInt(step);
    this.checkpointCount++;
  }

  /** The chief evaluated epoch `epoch` on the validation split. */
  epochEvaluated(epoch: number, validation: EpochScore): void {
    this.epochs = epoch;
    if (validation.task === 'detection') this.map = validation.score;
    else this.accuracy = validation.score;
  }

  /** Training is over: the chief writes the last checkpoint and the report. */
  finishing(): void {
    this.moveTo('finishing');
  }

  /** The report is written: heartbeats now tell workers to stop. */
  done(): void {
    this.moveTo('done');
  }

  /** The job failed: heartbeats tell workers to stop, and workers at a barrier are released with nothing written. */
  fail(message: string): void {
    // Once done, the report is written: a later error (stopping the servers) does not undo that.
    if (this.stopRequested) return;
    this.moveTo('failed');
    this.failure = message;
    this.releaseBarrier({ complete: false, manifest: '' });
  }

  private moveTo(next: JobState): void {
    // Internal invariant: only the chief calls finishing/done/fail, in that order
    // (runChief); a different order is a bug in the chief, not a user's mistake.
    if (!NEXT_STATES[this.job].includes(next)) throw new Error(`coordinator: job state ${this.job} cannot become ${next}`);
    this.job = next;
  }

  // ---- read-only views ----

  /** Membership's live workers, less (ssp) those idle without a batch: its gate must not wait for them (batch-claims.ts). */
  override get liveWorkerIds(): string[] {
    const ids = super.liveWorkerIds;
    const claims = this.claims;
    return claims === undefined || this.options.claims?.idleNotLive !== true ? ids : ids.filter((id) => !claims.isIdle(id));
  }

  /** async/ssp: epochs whose every batch is done; sync: as Membership counts them. */
  override get completedEpochs(): number {
    return this.claims !== undefined ? Math.min(this.options.epochs, this.claims.completedEpochs) : super.completedEpochs;
  }

  get jobState(): JobState {
    return this.job;
  }

  /** Heartbeats answer "stop" once the job is over. */
  get stopRequested(): boolean {
    return this.job === 'done' || this.job === 'failed';
  }

  get globalStep(): bigint {
    return this.step;
  }

  /** The last epoch the chief evaluated. */
  get epoch(): number {
    return this.epochs;
  }

  /** Classifiers: the last evaluated epoch's validation accuracy (0 before any, and for detectors). */
  get validationAccuracy(): number {
    return this.accuracy;
  }

  /** Detectors: the last evaluated epoch's validation mAP@0.5 (0 before any, and for classifiers). */
  get validationMAP(): number {
    return this.map;
  }

  /** The job's restore generation (0: never restored). */
  get restoreGeneration(): bigint {
    return this.generation;
  }

  /** sync: the step the last restore went back to (0 before any). */
  get restoreStep(): bigint {
    return this.rolledBackTo;
  }

  get checkpointStep(): bigint {
    return this.checkpointAt;
  }

  /** Checkpoints written in this run. */
  get checkpointsWritten(): number {
    return this.checkpointCount;
  }

  /** Checkpoint barriers released, and their total wait (s) from the first worker's arrival. */
  get barrierWaits(): { readonly released: number; readonly seconds: number } {
    return this.barrierStats;
  }

  get totalSteps(): bigint {
    return BigInt(this.options.totalSteps ?? 0);
  }

  /** Why the job failed ('' unless it did). */
  get error(): string {
    return this.failure;
  }

}
