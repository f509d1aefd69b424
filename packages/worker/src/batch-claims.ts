/**
 * async and ssp: which of the job's batches are done, who holds which, and
 * what is handed out next (ARCHITECTURE.md, "@tamp/worker"). Batches are
 * numbered globally: batch n is what replica n mod W trained at step
 * floor(n / W) when each worker had a fixed share (core's
 * `BatchSource.globalBatch`), so a claim hands out the same data, only no
 * longer tied to one worker. Workers claim small blocks and report the
 * batches whose pushes settled; a lost worker's claimed, unreported batches
 * are handed out again before any new one (`release`). Training is over when
 * every planned batch is done. Checkpoints pause the hand-out at their
 * boundary (checkpoint c waits until batch c·every·W), so the done set a
 * checkpoint records matches the shards' state. Near a boundary, and near
 * the end, a claim gets at most ceil(left ÷ W) batches, so the workers
 * arrive at the barrier about together.
 */
import { type BatchRange, BatchRanges } from './batch-ranges.js';

export interface BatchPlan {
  /** Batches the job trains: epochs × batches per epoch of all workers. */
  readonly totalBatches: number;
  /** Batches of one epoch over all workers (steps per epoch × W). */
  readonly batchesPerEpoch: number;
  /** Workers in the job (W): checkpoint step c falls at batch c·W. */
  readonly numWorkers: number;
  /** The job's checkpoint cadence in steps (0: none). */
  readonly checkpointEvery: number;
}

/** What a checkpoint records of the batches (manifest `batches`), and what a resume starts from. */
export interface BatchProgress {
  /** Batches done, as [start, end) ranges. */
  readonly done: readonly BatchRange[];
  readonly total: number;
}

export interface Claim {
  readonly start: number;
  readonly end: number;
  /** Non-zero: nothing past this checkpoint step is handed out until its barrier is released. */
  readonly checkpointStep: number;
  readonly finished: boolean;
}

export class BatchClaims {
  /** The first batch never handed out. */
  private next: number;
  /** Batches to hand out before `next`: a lost worker's, or gaps a resumed checkpoint had. */
  private readonly pending = new BatchRanges();
  private readonly done: BatchRanges;
  private readonly owned = new Map<string, BatchRanges>();
  /** The last checkpoint step whose barrier was released. */
  private released: number;
  private handedBack = 0;
  /** Workers that hold no batch and got none (waiting for one, or at a checkpoint barrier). */
  private readonly idleWorkers = new Set<string>();

  constructor(
    readonly plan: BatchPlan,
    resume?: { progress: BatchProgress; checkpointStep: number },
  ) {
    this.done = new BatchRanges(resume?.progress.done ?? []);
    this.next = this.done.maxEnd;
    // Batches below the resumed position that were not done: first in line.
    this.pending.add(0, this.next);
    for (const [s, e] of this.done.toArray()) this.pending.remove(s, e);
    this.released = resume?.checkpointStep ?? 0;
  }

  /** The next checkpoint step a claim may not pass, and its batch (undefined: none before the end). */
  private boundary(): { step: number; batch: number } | undefined {
    const { checkpointEvery: every, numWorkers, totalBatches } = this.plan;
    if (every <= 0) return undefined;
    const step = (Math.floor(this.released / every) + 1) * every;
    const batch = step * numWorkers;
    return batch < totalBatches ? { step, batch } : undefined;
  }

  /**
   * Record `done`, then hand `workerId` up to `count` batches. `idle`: the
   * worker holds none, so what is still recorded as its own (a claim whose
   * answer it never got) is handed out again, to it or another.
   */
  claim(workerId: string, count: number, done: readonly BatchRange[], idle = false): Claim {
    let mine = this.owned.get(workerId);
    if (mine === undefined) {
      mine = new BatchRanges();
      this.owned.set(workerId, mine);
    }
    for (const [s, e] of done) {
      this.done.add(s, e);
      mine.remove(s, e);
      // Reported by a worker wrongly declared lost after its batches were handed back: not needed again.
      this.pending.remove(s, e);
    }
    if (idle) this.release(workerId, false);
    if (this.finished) return { start: 0, end: 0, checkpointStep: 0, finished: true };
    const boundary = this.boundary();
    let range = this.pending.takeFirst(count);
    if (range === undefined && count > 0) {
      const limit = Math.min(this.plan.totalBatches, boundary?.batch ?? Infinity);
      if (this.next < limit) {
        // Tapered toward the limit (guided self-scheduling): at most a worker's share of what is left before it, so
        // the workers run out of batches at a checkpoint's barrier, or at the end, within about a batch of each
        // other rather than a whole block (the first there waits for the last).
        const share = Math.max(1, Math.ceil((limit - this.next) / this.plan.numWorkers));
        range = [this.next, Math.min(limit, this.next + Math.min(count, share))];
        this.next = range[1];
      }
    }
    if (range !== undefined) mine.add(range[0], range[1]);
    if (range !== undefined) this.idleWorkers.delete(workerId);
    else if (idle) this.idleWorkers.add(workerId);
    const paused = boundary !== undefined && this.next >= boundary.batch;
    return { start: range?.[0] ?? 0, end: range?.[1] ?? 0, checkpointStep: paused ? boundary.step : 0, finished: false };
  }

  /**
   * A worker is lost or left unfinished: its claimed batches not reported
   * done are handed out again; returns how many. `reassign` false: an idle
   * worker's orphaned claim, not counted as reassigned.
   */
  release(workerId: string, reassign = true): number {
    const mine = this.owned.get(workerId);
    if (mine === undefined) return 0;
    const back = mine.toArray();
    mine.clear();
    this.idleWorkers.delete(workerId);
    let n = 0;
    for (const [s, e] of back) {
      this.pending.add(s, e);
      n += e - s;
    }
    if (reassign) this.handedBack += n;
    return n;
  }

  /** The checkpoint barrier at `step` was released (written or abandoned): hand out past it. */
  barrierReleased(step: number): void {
    this.released = Math.max(this.released, step);
  }

  /**
   * `workerId` holds no batch and got none: ssp's staleness gate must not
   * wait for it (it pushes nothing until it gets a batch again), or a worker
   * still training would wait for one that waits for it.
   */
  isIdle(workerId: string): boolean {
    return this.idleWorkers.has(workerId);
  }

  /** The hand-out waits at a checkpoint boundary: its barrier comes next. */
  get paused(): boolean {
    const boundary = this.boundary();
    return boundary !== undefined && this.next >= boundary.batch;
  }

  /** Every planned batch is done. */
  get finished(): boolean {
    return this.done.prefixEnd >= this.plan.totalBatches;
  }

  get doneCount(): number {
    return this.done.size;
  }

  /** Batches handed out again after the worker holding them was lost. */
  get reassigned(): number {
    return this.handedBack;
  }

  /** Epochs whose every batch is done. */
  get completedEpochs(): number {
    return Math.floor(this.done.prefixEnd / this.plan.batchesPerEpoch);
  }

  /** For a checkpoint's manifest. */
  get progress(): BatchProgress {
    return { done: this.done.toArray(), total: this.plan.totalBatches };
  }
}
