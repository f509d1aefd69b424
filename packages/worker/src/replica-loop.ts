/**
 * The training loop of one replica, by mode (worker.ts runs it):
 *
 * - async: each gradient is pushed as soon as it is computed (up to two in
 *   flight), and the next parameters are pulled while the step computes.
 *   The batches are claimed from the chief in small blocks (batch-claimer.ts)
 *   until every planned batch is done, so a lost worker's share is trained
 *   by the others.
 * - ssp: as async, but a pull for step s waits at the servers until the
 *   slowest live worker is at most `staleness` steps behind s.
 * - sync: pull the parameters of global step v (waiting for step v−1 to be
 *   applied), compute, push for step v and wait until the servers apply the
 *   step's mean gradient. A worker that fell behind (its push dropped as late,
 *   or it rejoined) continues at the step the cluster is at.
 *
 * Every `checkpointEvery` steps the worker waits at the chief's checkpoint
 * barrier (async/ssp: when its claim says the hand-out paused there); a
 * resumed job starts every worker at the checkpoint's step (async/ssp: the
 * chief hands out the batches the checkpoint had not done). When
 * the chief restores parameter servers from a checkpoint, a request made
 * before is refused with ROLLED_BACK: the loop lets its other requests
 * settle, takes the new restore generation and (sync) step from the chief,
 * and continues from there (ps-recovery.ts).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { type BatchSource, ClusterError, computeGradients } from '@tamp/core';
import type { CommChannel } from './comm/channel.js';
import type { NamedArray } from './comm/messages.js';
import type { CoordinatorClient } from './coordinator-client.js';
import type { JobConfig } from './job-config.js';
import type { StepPhase, WorkerLoopStats } from './metrics.js';
import { setVariables } from './model-state.js';
import { asError, isRolledBack, rejoinGeneration, settleAll } from './ps-recovery.js';
import { BatchClaimer } from './batch-claimer.js';

/** How long a sync push or pull may wait at a barrier for slow workers. */
export const BARRIER_WAIT_MS = 30 * 60_000;
/** async/ssp: how long a worker with no free batch waits before claiming again (the others hold the rest; one may be lost). */
const CLAIM_WAIT_MS = 100;

export interface LoopResult {
  steps: number;
  samples: number;
  seconds: number;
  dropped: number;
  stopped?: string;
}

/** The training loop of one replica, by mode. */
export class ReplicaLoop {
  private readonly totalSteps: number;
  private samples = 0;
  private dropped = 0;
  private loss = NaN;
  private started = 0;
  private lastCheckpoint: number;
  // Where a step's time goes (ms, per epoch), logged with each epoch.
  private phases = { weights: 0, compute: 0, readback: 0, waitPush: 0, waitPull: 0, checkpoint: 0 };
  private mark = 0;
  private phaseSteps = 0;
  /** The metrics' names for the phases. */
  private static readonly PHASE_METRIC: Record<keyof ReplicaLoop['phases'], StepPhase> = { weights: 'set_weights', compute: 'compute', readback: 'readback', waitPush: 'push_wait', waitPull: 'pull_wait', checkpoint: 'checkpoint_wait' };
  /** The whole run's split (ms), for the report: compute (with readback), push wait, pull wait. */
  private readonly totals = { compute: 0, waitPush: 0, waitPull: 0 };

  constructor(
    private readonly config: JobConfig,
    private readonly id: string,
    private readonly model: tfl.LayersModel,
    private readonly source: BatchSource,
    private readonly comm: CommChannel,
    private readonly chief: CoordinatorClient,
    private readonly log: (message: string) => void,
    private readonly stepDelayMs: number,
    /** What the worker's metrics read (metrics.ts). */
    private readonly stats: WorkerLoopStats,
  ) {
    this.totalSteps = source.stepsPerEpoch * config.training.epochs;
    this.lastCheckpoint = config.startStep;
  }

  private lap(phase: keyof ReplicaLoop['phases']): void {
    const now = performance.now();
    this.phases[phase] += now - this.mark;
    this.stats.phaseSeconds[ReplicaLoop.PHASE_METRIC[phase]] += (now - this.mark) / 1000;
    if (phase === 'compute' || phase === 'readback') this.totals.compute += now - this.mark;
    else if (phase === 'waitPush' || phase === 'waitPull') this.totals[phase] += now - this.mark;
    this.mark = now;
  }

  private elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  private progress(step: number, epoch = Math.floor(step / this.source.stepsPerEpoch)): void {
    const s = this.stats;
    s.step = step;
    s.samples = this.samples;
    s.dropped = this.dropped;
    s.loss = this.loss;
    s.seconds = this.elapsed();
    this.comm.progress({
      localStep: BigInt(step),
      epoch,
      loss: this.loss,
      samples: BigInt(this.samples),
      seconds: this.elapsed(),
      ...this.timeSplit(),
    });
  }

  /** Seconds of compute, push wait and pull wait so far (sync waits for its push and next pull together: push wait). */
  timeSplit(): { computeSeconds: number; pushWaitSeconds: number; pullWaitSeconds: number } {
    return { computeSeconds: this.totals.compute / 1000, pushWaitSeconds: this.totals.waitPush / 1000, pullWaitSeconds: this.totals.waitPull / 1000 };
  }

  /** After finishing `step` steps: log an epoch that just ended (async/ssp: `claimedEpoch`, the epoch this worker's batches just left, 0 when none). */
  private maybeLogEpoch(step: number, claimedEpoch?: number): void {
    this.phaseSteps++;
    if (claimedEpoch === 0 || (claimedEpoch === undefined && step % this.source.stepsPerEpoch !== 0 && step !== this.totalSteps)) return;
    const epoch = claimedEpoch ?? Math.ceil(step / this.source.stepsPerEpoch);
    const perStep = Object.entries(this.phases)
      .map(([k, v]) => `${k} ${(v / Math.max(1, this.phaseSteps)).toFixed(1)}`)
      .join(', ');
    this.log(`${this.id}: epoch ${epoch}/${this.config.training.epochs} done, loss ${this.loss.toFixed(4)}${this.dropped > 0 ? `, ${this.dropped} late gradients dropped` : ''}; ms per step: ${perStep}`);
    for (const k of Object.keys(this.phases) as Array<keyof ReplicaLoop['phases']>) this.phases[k] = 0;
    this.phaseSteps = 0;
  }

  private checkpointDue(step: number): boolean {
    const every = this.config.checkpointEvery;
    return every > 0 && step > this.lastCheckpoint && step < this.totalSteps && step % every === 0;
  }

  /** Wait at checkpoint `step`'s barrier (async/ssp: `localStep` is this worker's own count). */
  private async checkpoint(step: number, localStep = step): Promise<void> {
    this.progress(localStep);
    const r = await this.chief.checkpointBarrier(this.id, step, BARRIER_WAIT_MS, this.comm.restoreGeneration);
    this.lastCheckpoint = step;
    if (!r.complete) this.log(`${this.id}: checkpoint ${step} was abandoned by the chief; training on`);
    this.lap('checkpoint');
  }

  private async gradients(step: number, batch = this.source.batch(step)): Promise<{ grads: NamedArray[]; size: number }> {
    const result = await computeGradients(this.model, batch);
    if (this.stepDelayMs > 0) {
      // Logged first, so a test knows this worker holds the step's batch (claimed, not yet pushed) for the whole wait.
      this.log(`${this.id}: test step delay: waiting ${this.stepDelayMs} ms after step ${step + 1}'s gradients`);
      await new Promise((resolve) => setTimeout(resolve, this.stepDelayMs));
    }
    this.loss = result.loss;
    this.lap('compute');
    const grads: NamedArray[] = [];
    for (const [name, g] of result.grads) {
      grads.push({ name, data: (await g.data()) as Float32Array });
      g.dispose();
    }
    this.lap('readback');
    if (!Number.isFinite(this.loss)) {
      throw new ClusterError('NON_FINITE', `${this.id}: loss is ${this.loss} at step ${step + 1}; lower the learning rate (now ${this.config.training.optimizer.learningRate})`);
    }
    return { grads, size: batch.size };
  }

  private result(steps: number, stopped?: string): LoopResult {
    return { steps, samples: this.samples, seconds: this.elapsed(), dropped: this.dropped, ...(stopped !== undefined ? { stopped } : {}) };
  }

  /**
   * async and ssp: train the batches claimed from the chief (batch-claimer.ts)
   * until every planned batch is done, so the live workers cover a lost
   * one's share. `step` counts this worker's pushes (their idempotency key,
   * and ssp's step); the data is the claimed batch's.
   */
  async runAsync(): Promise<LoopResult> {
    const ssp = this.config.training.mode === 'ssp';
    const pull = (step: number) => this.comm.pull(ssp ? { step: BigInt(step), timeoutMs: BARRIER_WAIT_MS } : {});
    const claims = new BatchClaimer(this.chief, this.id);
    // Pushes in flight, each settled into its error (undefined: taken), so none rejects unobserved.
    const inFlight: Array<Promise<Error | undefined>> = [];
    const MAX_IN_FLIGHT = 2;
    const oldest = async () => {
      const error = await inFlight.shift();
      if (error !== undefined) throw error;
    };
    const flush = async () => {
      while (inFlight.length > 0) await oldest();
    };
    const perEpoch = this.source.globalBatchesPerEpoch;
    let step = this.config.startStep;
    let params: Pulled | undefined;
    let next: Promise<Pulled> | undefined;
    this.started = performance.now();
    this.mark = performance.now();
    for (;;) {
      if (this.comm.stopped !== undefined) return this.result(step, this.comm.stopped);
      try {
        const head = await claims.head();
        if (head.kind === 'finished') break;
        if (head.kind !== 'batch') {
          await flush();
          if (head.kind === 'checkpoint') {
            // The checkpoint records the batches done: report them before the barrier.
            await claims.report();
            await this.checkpoint(head.step, step);
            params = undefined;
          } else {
            await new Promise((resolve) => setTimeout(resolve, CLAIM_WAIT_MS));
          }
          claims.advance();
          this.mark = performance.now();
          continue;
        }
        params ??= await pull(step);
        this.mark = performance.now();
        // Known before computing (the next block is claimed now if this is the last batch held), so the pull
        // overlaps the step; asked for before the weights are set, which takes a few milliseconds the pull then
        // spends on the wire (a pull's answer is a new array, so it never touches the values being set).
        const after = await claims.afterHead();
        next = after.kind === 'batch' ? pull(step + 1) : undefined;
        // Observed now, awaited after the step: a refusal meanwhile is not an unhandled rejection.
        next?.catch(() => undefined);
        setVariables(this.model, params.values);
        const basedOn = params.versions;
        this.lap('weights');
        const computed = await this.gradients(step, this.source.globalBatch(head.batch));
        while (inFlight.length >= MAX_IN_FLIGHT) await oldest();
        inFlight.push(
          this.comm.push(BigInt(step), basedOn, computed.size, computed.grads).then(
            () => {
              claims.done(head.batch);
              return undefined;
            },
            (error: unknown) => {
              // Refused by a restored shard after the others applied it: done, its loss on that shard is the restore's (stepsLost).
              if (isRolledBack(error)) claims.done(head.batch);
              return asError(error);
            },
          ),
        );
        claims.advance();
        this.stats.steps++;
        this.lap('waitPush');
        step++;
        this.samples += computed.size;
        const pending = next;
        next = undefined;
        params = pending !== undefined ? await pending : undefined;
        this.lap('waitPull');
        const epoch = Math.min(this.config.training.epochs, Math.floor((head.batch + 1) / perEpoch));
        this.progress(step, epoch);
        // An epoch's line when this worker's next batch is of a later one (a checkpoint pause: its boundary's).
        const upcoming = after.kind === 'batch' ? after.batch : after.kind === 'checkpoint' ? after.step * this.config.numWorkers : head.batch;
        this.maybeLogEpoch(step, Math.floor(upcoming / perEpoch) > Math.floor(head.batch / perEpoch) ? Math.floor(head.batch / perEpoch) + 1 : 0);
      } catch (error) {
        // Nothing of this step is left running, whatever the error.
        await Promise.allSettled([next, ...inFlight]);
        inFlight.length = 0;
        next = undefined;
        if (!isRolledBack(error)) throw error;
        // async and ssp keep their step: only the lost shard went back (its updates since the checkpoint, and this worker's refused pushes, are lost).
        await rejoinGeneration(this.chief, this.comm, this.id, this.log);
        params = undefined;
      }
    }
    this.progress(step, this.config.training.epochs);
    this.maybeLogEpoch(step, this.config.training.epochs);
    return this.result(step);
  }

  async runSync(): Promise<LoopResult> {
    let step = this.config.startStep;
    let localSteps = 0;
    /** Each step this worker ran, and the samples it added (0 when dropped): a rollback takes back the steps it undid. */
    const ran = new Map<number, number>();
    const shards = this.config.psAddresses.length;
    // Parameters of step s: every shard has applied step s − 1 (or more, when
    // this worker fell behind: then it continues where the cluster is).
    const pullFor = (s: number) => this.comm.pull({ minVersions: new Array<bigint>(shards).fill(BigInt(s)), timeoutMs: BARRIER_WAIT_MS });
    this.started = performance.now();
    this.mark = performance.now();
    let params: Pulled | undefined;
    for (;;) {
      if (this.comm.stopped !== undefined) return this.result(step, this.comm.stopped);
      try {
        if (params === undefined) {
          params = await pullFor(step);
          this.lap('waitPull');
        }
        const version = Number(params.versions.reduce((a, b) => (a < b ? a : b)));
        if (version >= this.totalSteps) break;
        if (version > step) step = version;
        if (this.checkpointDue(step)) await this.checkpoint(step);
        this.mark = performance.now();
        setVariables(this.model, params.values);
        this.lap('weights');
        const { grads, size } = await this.gradients(step);
        // Ask for the next step's parameters together with the push: the
        // servers answer the pull as soon as this step is applied, saving a
        // round trip per step. Both settle before either is acted on.
        const [r, next] = await settleAll<[Pushed, Pulled]>([this.comm.push(BigInt(step), params.versions, size, grads, BARRIER_WAIT_MS), pullFor(step + 1)]);
        this.lap('waitPush');
        this.stats.steps++;
        if (r.dropped) this.dropped++;
        else this.samples += size;
        ran.set(step, r.dropped ? 0 : size);
        params = next;
        step++;
        localSteps++;
        this.progress(step);
        this.maybeLogEpoch(step);
      } catch (error) {
        if (!isRolledBack(error)) throw error;
        // Every shard went back to the restored step: replay from it (batches are chosen by step, so the same ones).
        const at = await rejoinGeneration(this.chief, this.comm, this.id, this.log);
        // The steps undone are the restore's loss (its recovery record's stepsLost), not this worker's: it
        // trains them again, so they count once (a Leave counting 22 of a 20-step job is refused).
        for (const [s, samples] of ran) {
          if (s < at.step) continue;
          localSteps--;
          this.samples -= samples;
          ran.delete(s);
        }
        step = at.step;
        this.lastCheckpoint = step;
        params = undefined;
      }
    }
    this.progress(step);
    return { ...this.result(step), steps: localSteps };
  }
}

type Pulled = Awaited<ReturnType<CommChannel['pull']>>;
type Pushed = Awaited<ReturnType<CommChannel['push']>>;
