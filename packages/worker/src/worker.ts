/**
 * One replica: joins the chief, trains on its data shard with the selected
 * backend, and exchanges parameters and gradients with the parameter
 * servers through its communication thread.
 *
 * - async: each gradient is pushed as soon as it is computed (up to two in
 *   flight), and the next parameters are pulled while the step computes.
 * - ssp: as async, but a pull for step s waits at the servers until the
 *   slowest live worker is at most `staleness` steps behind s.
 * - sync: pull the parameters of global step v (waiting for step v−1 to be
 *   applied), compute, push for step v and wait until the servers apply the
 *   step's mean gradient. A worker that fell behind (its push dropped as late,
 *   or it rejoined) continues at the step the cluster is at.
 *
 * Every `checkpointEvery` steps the worker waits at the chief's checkpoint
 * barrier; a resumed job starts every worker at the checkpoint's step.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { BatchSource, type BackendRequest, ClusterError, UsageError, type SelectedBackend, computeGradients, errorMessage } from '@tamp/core';
import { INSECURE, type RpcSecurity, WORKER_KEY_ENV, WORKER_KEY_KEY, newSecret } from '@tamp/rpc';
import { epochLimit, loadDataset, useBackend } from '@tamp/core/node';
import { CommChannel } from './comm/channel.js';
import type { NamedArray } from './comm/messages.js';
import { CoordinatorClient } from './coordinator-client.js';
import { type JobConfig, decodeJobConfig, jobWire, workerId as psWorkerId } from './job-config.js';
import { type StepPhase, type WorkerLoopStats, trackWorkerLoop } from './metrics.js';
import { setVariables } from './model-state.js';

export interface WorkerOptions {
  readonly jobId: string;
  readonly chiefAddress: string;
  /** Ask for this task index (-1: the chief chooses). */
  readonly taskIndex?: number;
  /** This process's identity (default: TAMP_CLIENT_ID, else host and pid). */
  readonly clientId?: string;
  /**
   * What binds its slot at Join, so a restart of this worker may take its
   * live slot back at once (default: TAMP_WORKER_KEY, which the launcher sets
   * per slot, else a fresh one per process: a restart then waits until the
   * chief declares the old process lost).
   */
  readonly workerKey?: string;
  readonly backend: BackendRequest;
  readonly requireGpu?: boolean;
  readonly joinTimeoutMs?: number;
  /** Exit (non-zero, naming it) once the chief has not answered for this long (ms, default 60 s). */
  readonly peerTimeoutMs?: number;
  /**
   * A test hook: wait this long (ms) after computing each step's gradients,
   * so a test can make one worker slower than the others by construction
   * (default: the TAMP_TEST_STEP_DELAY_MS environment variable, else 0).
   */
  readonly stepDelayMs?: number;
  readonly log?: (message: string) => void;
  /** Transport security of every channel (chief and parameter servers; default: plaintext). */
  readonly security?: RpcSecurity;
}

/** The environment variable giving a worker its client id (the launcher sets it, one per slot). */
export const CLIENT_ID_ENV = 'TAMP_CLIENT_ID';

/** The test hook's value from the environment (0 when unset). */
export function stepDelayFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TAMP_TEST_STEP_DELAY_MS;
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`TAMP_TEST_STEP_DELAY_MS must be a number of milliseconds ≥ 0, got "${raw}"; unset it outside tests`);
  return ms;
}

export interface WorkerReport {
  readonly workerId: string;
  readonly taskIndex: number;
  readonly backend: string;
  readonly steps: number;
  readonly samples: number;
  readonly seconds: number;
  /** sync: gradients the servers dropped as late. */
  readonly dropped: number;
  readonly stopped?: string;
}

const DEFAULT_PEER_TIMEOUT_MS = 60_000;

/** How long a sync push or pull may wait at a barrier for slow workers. */
const BARRIER_WAIT_MS = 30 * 60_000;

export async function runWorker(options: WorkerOptions): Promise<WorkerReport> {
  const log = options.log ?? (() => {});
  const clientId = options.clientId ?? (process.env[CLIENT_ID_ENV] || `${process.env.HOSTNAME ?? 'worker'}-${process.pid}`);
  const stepDelayMs = options.stepDelayMs ?? stepDelayFromEnv();
  const backend: SelectedBackend = await useBackend(options.backend, { requireGpu: options.requireGpu ?? false, log });
  const security = options.security ?? INSECURE;
  // What binds this worker's slot at Join (Membership.join): the launcher's per-slot key survives a restart; otherwise one per process.
  const workerKey = options.workerKey ?? (process.env[WORKER_KEY_ENV] || newSecret());
  const chief = new CoordinatorClient(options.chiefAddress, options.jobId, undefined, { security, metadata: { [WORKER_KEY_KEY]: workerKey } });
  let comm: CommChannel | undefined;
  let bridge: NodeJS.Timeout | undefined;
  let id = clientId;
  try {
    const joined = await chief.joinWithRetry(clientId, options.taskIndex ?? -1, backend.name, options.joinTimeoutMs ?? 120_000, (error) =>
      log(`waiting for the chief at ${options.chiefAddress}: ${errorMessage(error)}`),
    );
    chief.setWorkerToken(joined.workerToken);
    const config: JobConfig = decodeJobConfig(joined.jobConfigJson);
    const taskIndex = joined.taskIndex;
    id = psWorkerId(taskIndex);
    const t = config.training;
    log(`${id} of ${config.numWorkers}: ${t.model} on ${t.dataset}, ${t.mode}, batch ${t.batchSize}, backend ${backend.name}${t.wire !== undefined ? `, push ${t.wire.push}, pull ${t.wire.pull}` : ''}${config.startStep > 0 ? `, resuming at step ${config.startStep}` : ''}`);
    const wire = jobWire(t);
    // Heartbeat from this thread from the moment of Join until the comm
    // thread's own heartbeats are answered: starting that thread loads its
    // code (seconds through tsx on a loaded machine), and a worker silent
    // that long was wrongly declared lost. Only then load the dataset and
    // build the model: that blocks this thread's event loop (so its own
    // heartbeats too), while the comm thread's go on.
    const zero = { localStep: 0n, epoch: 0, loss: 0, samples: 0n, seconds: 0 };
    const beat = () => void chief.heartbeat(id, zero).catch(() => undefined);
    beat();
    bridge = setInterval(beat, config.heartbeatIntervalMs);
    comm = new CommChannel(
      {
        jobId: config.jobId,
        workerId: id,
        psAddresses: config.psAddresses,
        placement: config.placement,
        chiefAddress: options.chiefAddress,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        chiefLostAfterMs: options.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS,
        security,
        wire: { push: wire.wirePush, pull: wire.wirePull, warmupSteps: t.wire?.warmupSteps ?? 0, ...(t.wire?.errorFeedback === false ? { errorFeedback: false } : {}), ...(t.wire?.clipNorm !== undefined ? { clipNorm: t.wire.clipNorm } : {}), ...(wire.wireAuto === true ? { auto: true } : {}), ...(wire.momentumCorrection === true ? { momentum: t.optimizer.momentum } : {}) },
        workerToken: joined.workerToken,
      },
    );
    await comm.ready;
    clearInterval(bridge);
    if (comm.stopped !== undefined) throw new ClusterError(comm.peerLost ? 'PEER_UNAVAILABLE' : 'JOB_FAILED', `${id}: ${comm.stopped}`);
    const dataset = loadDataset(t.dataset);
    const model = await tfl.models.modelFromJSON({ modelTopology: config.modelTopology as never });
    const source = new BatchSource(dataset.train, {
      batchSize: t.batchSize,
      seed: t.seed,
      replica: { index: taskIndex, count: config.numWorkers },
      ...epochLimit(dataset, t.epochSize),
    });
    const loop = new ReplicaLoop(config, id, model, source, comm, chief, log, stepDelayMs, trackWorkerLoop(taskIndex));
    const result = t.mode === 'sync' ? await loop.runSync() : await loop.runAsync();
    if (comm.wireChoice !== undefined) log(`${id}: --wire auto chose ${comm.wireChoice}`);
    const wireChoice = comm.wireChoice !== undefined ? { wireChoice: comm.wireChoice } : {};
    if (result.stopped === undefined) await chief.leave(id, true, 'done', { localStep: BigInt(result.steps), samples: BigInt(result.samples), seconds: result.seconds, ...loop.timeSplit(), ...wireChoice });
    else if (comm.peerLost) throw new ClusterError('PEER_UNAVAILABLE', `${id}: ${result.stopped}; exiting`);
    else log(`${id}: stopping: ${result.stopped}`);
    model.dispose();
    return { workerId: id, taskIndex, backend: backend.name, ...result };
  } catch (error) {
    await chief.leave(id, false, errorMessage(error)).catch(() => undefined);
    throw error;
  } finally {
    clearInterval(bridge);
    await comm?.close();
    chief.close();
  }
}

interface LoopResult {
  steps: number;
  samples: number;
  seconds: number;
  dropped: number;
  stopped?: string;
}

/** The training loop of one replica, by mode. */
class ReplicaLoop {
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

  private progress(step: number): void {
    const s = this.stats;
    s.step = step;
    s.samples = this.samples;
    s.dropped = this.dropped;
    s.loss = this.loss;
    s.seconds = this.elapsed();
    this.comm.progress({
      localStep: BigInt(step),
      epoch: Math.floor(step / this.source.stepsPerEpoch),
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

  /** After finishing `step` steps: log an epoch that just ended. */
  private maybeLogEpoch(step: number): void {
    this.phaseSteps++;
    if (step % this.source.stepsPerEpoch !== 0 && step !== this.totalSteps) return;
    const epoch = Math.ceil(step / this.source.stepsPerEpoch);
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

  private async checkpoint(step: number): Promise<void> {
    this.progress(step);
    const r = await this.chief.checkpointBarrier(this.id, step, BARRIER_WAIT_MS);
    this.lastCheckpoint = step;
    if (!r.complete) this.log(`${this.id}: checkpoint ${step} was abandoned by the chief; training on`);
    this.lap('checkpoint');
  }

  private async gradients(step: number): Promise<{ grads: NamedArray[]; size: number }> {
    const batch = this.source.batch(step);
    const result = await computeGradients(this.model, batch);
    if (this.stepDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.stepDelayMs));
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

  async runAsync(): Promise<LoopResult> {
    const ssp = this.config.training.mode === 'ssp';
    const pull = (step: number) => this.comm.pull(ssp ? { step: BigInt(step), timeoutMs: BARRIER_WAIT_MS } : {});
    const inFlight: Array<Promise<unknown>> = [];
    const MAX_IN_FLIGHT = 2;
    const flush = async () => {
      while (inFlight.length > 0) await inFlight.shift();
    };
    let step = this.config.startStep;
    let params = await pull(step);
    this.started = performance.now();
    this.mark = performance.now();
    while (step < this.totalSteps) {
      if (this.comm.stopped !== undefined) return this.result(step, this.comm.stopped);
      if (this.checkpointDue(step)) {
        await flush();
        await this.checkpoint(step);
        params = await pull(step);
      }
      this.mark = performance.now();
      setVariables(this.model, params.values);
      const basedOn = params.versions;
      const next = step + 1 < this.totalSteps && !this.checkpointDue(step + 1) ? pull(step + 1) : undefined;
      this.lap('weights');
      let computed: { grads: NamedArray[]; size: number };
      try {
        computed = await this.gradients(step);
      } catch (error) {
        await Promise.allSettled([next, ...inFlight]);
        throw error;
      }
      while (inFlight.length >= MAX_IN_FLIGHT) await inFlight.shift();
      inFlight.push(this.comm.push(BigInt(step), basedOn, computed.size, computed.grads));
      this.stats.steps++;
      this.lap('waitPush');
      step++;
      this.samples += computed.size;
      if (next !== undefined) {
        params = await next;
      } else if (step < this.totalSteps && !this.checkpointDue(step)) {
        params = await pull(step);
      }
      this.lap('waitPull');
      this.progress(step);
      this.maybeLogEpoch(step);
    }
    await flush();
    this.progress(step);
    return this.result(step);
  }

  async runSync(): Promise<LoopResult> {
    let step = this.config.startStep;
    let localSteps = 0;
    const shards = this.config.psAddresses.length;
    // Parameters of step s: every shard has applied step s − 1 (or more, when
    // this worker fell behind: then it continues where the cluster is).
    const pullFor = (s: number) => this.comm.pull({ minVersions: new Array<bigint>(shards).fill(BigInt(s)), timeoutMs: BARRIER_WAIT_MS });
    this.started = performance.now();
    this.mark = performance.now();
    let params = await pullFor(step);
    this.lap('waitPull');
    for (;;) {
      if (this.comm.stopped !== undefined) return this.result(step, this.comm.stopped);
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
      // round trip per step.
      const [r, next] = await Promise.all([this.comm.push(BigInt(step), params.versions, size, grads, BARRIER_WAIT_MS), pullFor(step + 1)]);
      this.lap('waitPush');
      this.stats.steps++;
      if (r.dropped) this.dropped++;
      else this.samples += size;
      params = next;
      step++;
      localSteps++;
      this.progress(step);
      this.maybeLogEpoch(step);
    }
    this.progress(step);
    return { ...this.result(step), steps: localSteps };
  }
}
