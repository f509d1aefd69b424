/**
 * The chief's Coordinator: membership (join, heartbeat, leave, lost
 * workers), the global step and the job's status. The state is a plain
 * class so the chief's loop and the gRPC service share it.
 */
import {
  type CheckpointBarrierRequest,
  type CheckpointBarrierResponse,
  type CoordinatorServer,
  CoordinatorService,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JobStatusRequest,
  type JobStatusResponse,
  type JoinRequest,
  type JoinResponse,
  type LeaveRequest,
  type LeaveResponse,
} from '@tamp/proto/tamp/v1/coordinator';
import { ClusterError } from '@tamp/core';
import { type RpcServerOptions, serviceHandlers, startServer } from '@tamp/rpc';
import { workerId } from './job-config.js';

export type WorkerState = 'joined' | 'lost' | 'left' | 'finished';
export type JobState = 'starting' | 'running' | 'finishing' | 'done' | 'failed';

export interface WorkerRecord {
  /** The id the worker gave (its own identity). */
  clientId: string;
  /** The id the parameter servers know it by: worker-<taskIndex>. */
  readonly workerId: string;
  readonly taskIndex: number;
  state: WorkerState;
  lastHeartbeat: number;
  localStep: bigint;
  epoch: number;
  loss: number;
  samples: bigint;
  /** The worker's own training time (s), from its first step. */
  seconds: number;
  backend: string;
  joins: number;
}

export interface CoordinatorOptions {
  readonly jobId: string;
  readonly numWorkers: number;
  readonly jobConfigJson: string;
  readonly psAddresses: readonly string[];
  readonly heartbeatIntervalMs: number;
  /** A worker silent for this long is marked lost. */
  readonly heartbeatTimeoutMs: number;
  /** Epochs each worker runs: a worker that finished has completed them all. */
  readonly epochs: number;
  readonly log?: (message: string) => void;
}

export class CoordinatorState {
  readonly slots: Array<WorkerRecord | undefined>;
  jobState: JobState = 'running';
  globalStep = 0n;
  epoch = 0;
  validationAccuracy = 0;
  checkpointStep = 0n;
  loss = 0;
  totalSteps = 0n;
  error = '';
  /** Workers waiting at a checkpoint barrier: the step, and how to release each. */
  barrier: { step: number; arrived: Map<string, (r: CheckpointBarrierResponse) => void> } | undefined;
  private readonly log: (message: string) => void;
  private listeners = new Set<() => void>();

  constructor(readonly options: CoordinatorOptions) {
    this.slots = new Array<WorkerRecord | undefined>(options.numWorkers).fill(undefined);
    this.log = options.log ?? (() => {});
  }

  /** Called after every membership change. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  join(clientId: string, requestedIndex: number, backend: string, now = Date.now()): WorkerRecord {
    if (this.jobState === 'done' || this.jobState === 'failed') {
      throw new ClusterError('JOB_MISMATCH', `join: job "${this.options.jobId}" has already ${this.jobState === 'done' ? 'finished' : 'failed'}`);
    }
    const n = this.options.numWorkers;
    let index = -1;
    if (requestedIndex >= 0) {
      if (requestedIndex >= n) throw new ClusterError('CLUSTER_CONFIG', `join: task index ${requestedIndex} is out of range: the job has ${n} workers (0..${n - 1})`);
      const current = this.slots[requestedIndex];
      if (current !== undefined && current.clientId !== clientId && (current.state === 'joined' || current.state === 'finished')) {
        throw new ClusterError('CLUSTER_CONFIG', `join: task index ${requestedIndex} is held by "${current.clientId}"; give each worker its own --index`);
      }
      index = requestedIndex;
    } else {
      index = this.slots.findIndex((s) => s !== undefined && s.clientId === clientId);
      if (index === -1) index = this.slots.findIndex((s) => s === undefined);
      if (index === -1) index = this.slots.findIndex((s) => s?.state === 'lost' || s?.state === 'left');
      if (index === -1) throw new ClusterError('CLUSTER_CONFIG', `join: all ${n} worker slots of job "${this.options.jobId}" are taken`);
    }
    const previous = this.slots[index];
    if (previous?.state === 'finished') {
      throw new ClusterError('CLUSTER_CONFIG', `join: worker ${index} already finished its share of job "${this.options.jobId}"`);
    }
    const record: WorkerRecord = {
      clientId,
      workerId: workerId(index),
      taskIndex: index,
      state: 'joined',
      lastHeartbeat: now,
      localStep: previous?.localStep ?? 0n,
      epoch: previous?.epoch ?? 0,
      loss: previous?.loss ?? 0,
      samples: previous?.samples ?? 0n,
      seconds: previous?.seconds ?? 0,
      backend,
      joins: (previous?.joins ?? 0) + 1,
    };
    this.slots[index] = record;
    this.log(`${record.workerId} (${clientId}, ${backend}) ${record.joins > 1 ? 'rejoined' : 'joined'}`);
    this.changed();
    return record;
  }

  private find(clientOrWorkerId: string, what: string): WorkerRecord {
    const r = this.slots.find((s) => s !== undefined && (s.clientId === clientOrWorkerId || s.workerId === clientOrWorkerId));
    if (r === undefined) throw new ClusterError('UNKNOWN_WORKER', `${what}: worker "${clientOrWorkerId}" has not joined job "${this.options.jobId}"; call Join first`);
    return r;
  }

  heartbeat(req: Pick<HeartbeatRequest, 'workerId' | 'localStep' | 'epoch' | 'loss' | 'samples' | 'seconds'>, now = Date.now()): WorkerRecord {
    const r = this.find(req.workerId, 'heartbeat');
    if (r.state === 'finished' || r.state === 'left') {
      // A heartbeat sent before the worker's Leave but answered after it: the
      // Leave's final counts stand.
      r.lastHeartbeat = now;
      return r;
    }
    if (r.state === 'lost') {
      // It came back before anyone took its place: it simply continues.
      r.state = 'joined';
      this.log(`${r.workerId} is back`);
    }
    r.lastHeartbeat = now;
    r.localStep = req.localStep;
    r.epoch = req.epoch;
    r.loss = req.loss;
    r.samples = req.samples;
    r.seconds = req.seconds;
    this.changed();
    return r;
  }

  leave(id: string, finished: boolean, reason: string, final?: { localStep: bigint; samples: bigint; seconds: number }): void {
    const r = this.find(id, 'leave');
    if (final !== undefined && (final.localStep > 0n || final.samples > 0n)) {
      r.localStep = final.localStep;
      r.samples = final.samples;
      r.seconds = final.seconds;
    }
    r.state = finished ? 'finished' : 'left';
    if (finished) r.epoch = Math.max(r.epoch, this.options.epochs);
    this.log(`${r.workerId} ${finished ? 'finished' : `left (${reason})`}`);
    this.changed();
  }

  /** Mark workers silent for longer than the timeout as lost; returns them. */
  checkLost(now = Date.now()): WorkerRecord[] {
    const lost: WorkerRecord[] = [];
    for (const r of this.slots) {
      if (r?.state === 'joined' && now - r.lastHeartbeat > this.options.heartbeatTimeoutMs) {
        r.state = 'lost';
        lost.push(r);
        this.log(`${r.workerId} lost: no heartbeat for ${now - r.lastHeartbeat} ms`);
      }
    }
    if (lost.length > 0) this.changed();
    return lost;
  }

  /** A worker reached checkpoint `step`: resolves when the checkpoint is written (or abandoned). */
  arriveAtBarrier(id: string, step: number): Promise<CheckpointBarrierResponse> {
    const r = this.find(id, 'checkpointBarrier');
    if (this.barrier !== undefined && this.barrier.step !== step) {
      throw new ClusterError('CLUSTER_CONFIG', `checkpointBarrier: ${r.workerId} arrived for step ${step} while the others wait at step ${this.barrier.step}`);
    }
    this.barrier ??= { step, arrived: new Map() };
    const barrier = this.barrier;
    return new Promise((resolve) => {
      barrier.arrived.set(r.workerId, resolve);
      this.changed();
    });
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
    for (const resolve of b?.arrived.values() ?? []) resolve(response);
  }

  /** Workers the parameter servers should wait for: still training, or expected to join. */
  get liveWorkerIds(): string[] {
    return this.slots.flatMap((s, i) => (s === undefined ? [workerId(i)] : s.state === 'joined' ? [s.workerId] : []));
  }

  get workers(): WorkerRecord[] {
    return this.slots.filter((s): s is WorkerRecord => s !== undefined);
  }

  get allJoinedOnce(): boolean {
    return this.slots.every((s) => s !== undefined);
  }

  /** Workers still training. */
  get active(): WorkerRecord[] {
    return this.workers.filter((w) => w.state === 'joined');
  }

  /** Every slot has finished, or is lost/left with no one training any more. */
  get trainingOver(): boolean {
    return this.allJoinedOnce && this.active.length === 0;
  }

  /** Epochs completed by the slowest worker still training (or all, when none is). */
  get completedEpochs(): number {
    const relevant = this.workers.filter((w) => w.state === 'joined' || w.state === 'finished');
    return relevant.length === 0 ? 0 : Math.min(...relevant.map((w) => w.epoch));
  }

  get samples(): bigint {
    return this.workers.reduce((n, w) => n + w.samples, 0n);
  }

  /**
   * Training throughput: all samples over the longest worker's own training
   * time (the workers train side by side), so start-up and the chief's
   * evaluations do not count.
   */
  get samplesPerSecond(): number {
    const seconds = Math.max(0, ...this.workers.map((w) => w.seconds));
    return seconds > 0 ? Number(this.samples) / seconds : 0;
  }
}

export interface RunningCoordinator {
  readonly port: number;
  readonly state: CoordinatorState;
  close(): Promise<void>;
}

export async function startCoordinator(options: CoordinatorOptions & { host?: string; port?: number; rpc?: RpcServerOptions }): Promise<RunningCoordinator> {
  const state = new CoordinatorState(options);
  const { jobId } = options;
  const log = options.log ?? (() => {});
  const { unary } = serviceHandlers({ jobId, log });
  const implementation: CoordinatorServer = {
    join: unary<JoinRequest, JoinResponse>('join', (req) => {
      const r = state.join(req.workerId, req.taskIndex, req.backend);
      return {
        taskIndex: r.taskIndex,
        numWorkers: options.numWorkers,
        parameterServers: options.psAddresses.map((address, shardIndex) => ({ shardIndex, address })),
        jobConfigJson: options.jobConfigJson,
        globalStep: state.globalStep,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
      };
    }),
    heartbeat: unary<HeartbeatRequest, HeartbeatResponse>('heartbeat', (req) => {
      state.heartbeat(req);
      return { globalStep: state.globalStep, stop: state.jobState === 'done' || state.jobState === 'failed' };
    }),
    leave: unary<LeaveRequest, LeaveResponse>('leave', (req) => {
      state.leave(req.workerId, req.finished, req.reason, { localStep: req.localStep, samples: req.samples, seconds: req.seconds });
      return {};
    }),
    checkpointBarrier: unary<CheckpointBarrierRequest, CheckpointBarrierResponse>('checkpointBarrier', (req) => state.arriveAtBarrier(req.workerId, Number(req.step))),
    jobStatus: unary<JobStatusRequest, JobStatusResponse>('jobStatus', () => ({
      jobId,
      state: state.jobState,
      globalStep: state.globalStep,
      epoch: state.epoch,
      validationAccuracy: state.validationAccuracy,
      checkpointStep: state.checkpointStep,
      samplesPerSecond: state.samplesPerSecond,
      loss: state.loss,
      totalSteps: state.totalSteps,
      epochs: options.epochs,
      error: state.error,
      workers: state.workers.map((w) => ({
        workerId: w.workerId,
        taskIndex: w.taskIndex,
        state: w.state,
        localStep: w.localStep,
        backend: w.backend,
        lastHeartbeatMs: BigInt(w.lastHeartbeat),
      })),
    })),
  };
  const server = await startServer([{ definition: CoordinatorService, implementation }], { host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, options.rpc);
  log(`chief of job "${jobId}" listening on ${options.host ?? '127.0.0.1'}:${server.port}`);
  return { port: server.port, state, close: () => server.close() };
}
