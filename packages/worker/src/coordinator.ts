/**
 * The chief's Coordinator service: Join, Heartbeat, Leave, CheckpointBarrier,
 * ClaimBatches, JobStatus and Presence over the CoordinatorState
 * (coordinator-state.ts), which the chief shares.
 */
import {
  type CheckpointBarrierRequest,
  type CheckpointBarrierResponse,
  type ClaimBatchesRequest,
  type ClaimBatchesResponse,
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
  type PresenceRequest,
  type PresenceResponse,
} from '@tamp/proto/tamp/v1/coordinator';
import { createHash } from 'node:crypto';
import { ClusterError, InvalidArgumentError } from '@tamp/core';
import { type CallInfo, type RpcServerOptions, WORKER_KEY_KEY, WORKER_TOKEN_KEY, newSecret, rpcMetrics, serviceHandlers, slotToken, startServer, verifySlotToken } from '@tamp/rpc';
import { type CoordinatorOptions, CoordinatorState } from './coordinator-state.js';
import { trackCoordinator } from './metrics.js';
import { checkChiefSilence, checkClaim, checkJoin, checkProgress } from './coordinator-bounds.js';
import { FILE_DESCRIPTOR_SET_BASE64 } from '@tamp/proto/tamp/v1/descriptor_set';

/** setTimeout's longest delay is 2^31 − 1 ms; a later grace deadline is checked again after this. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RunningCoordinator {
  readonly port: number;
  readonly state: CoordinatorState;
  close(): Promise<void>;
}

export interface CoordinatorServerOptions extends CoordinatorOptions {
  readonly host?: string;
  readonly port?: number;
  readonly rpc?: RpcServerOptions;
  /** The key of the workers' slot tokens (the job's chief secret; default: a fresh random one). */
  readonly chiefSecret?: string;
  /** Called with the state before the service listens (a restarted chief rebuilds it first: chief-rejoin.ts). */
  readonly prepare?: (state: CoordinatorState) => void;
}

export async function startCoordinator(options: CoordinatorServerOptions): Promise<RunningCoordinator> {
  const state = new CoordinatorState(options);
  trackCoordinator(state);
  const { jobId } = options;
  const log = options.log ?? (() => {});
  const secret = options.chiefSecret !== undefined && options.chiefSecret !== '' ? options.chiefSecret : newSecret();
  options.prepare?.(state);
  const { unary, serverStream } = serviceHandlers({ jobId, log });
  /** Ends every Presence call still open when the server closes (a worker closes its own after its Leave). */
  const presenceEnds = new Set<() => void>();
  let closing = false;
  /** Wakes checkLost when the earliest disconnect grace ends. */
  let graceTimer: NodeJS.Timeout | undefined;
  const armGraceTimer = () => {
    const deadline = state.nextDisconnectDeadline();
    if (deadline === undefined || graceTimer !== undefined) return;
    graceTimer = setTimeout(() => {
      graceTimer = undefined;
      state.checkLost();
      armGraceTimer();
    }, Math.min(Math.max(0, deadline - Date.now()) + 5, MAX_TIMER_MS));
    graceTimer.unref();
  };
  const keyDigest = (caller: CallInfo) => {
    const key = caller.metadata(WORKER_KEY_KEY);
    return key === undefined ? '' : createHash('sha256').update(key).digest('hex');
  };
  /**
   * The slot `id` names, when the call carries its current token (an older Join's token is refused).
   * After a chief restart, a worker the previous chief admitted resumes its slot with its token (Membership.adopt).
   */
  const requireSlot = (caller: CallInfo, id: string, what: string) => {
    const token = caller.metadata(WORKER_TOKEN_KEY);
    state.adopt(id, (workerId) => verifySlotToken(secret, workerId, token), caller.metadata(WORKER_KEY_KEY) !== undefined ? keyDigest(caller) : undefined);
    const r = state.slot(id, what);
    if (verifySlotToken(secret, r.workerId, token) !== r.generation) {
      throw new ClusterError('PERMISSION_DENIED', `${what}: no valid token for ${r.workerId}: a worker sends the token the chief gave it at its latest Join`);
    }
    return r;
  };
  const implementation: CoordinatorServer = {
    join: unary<JoinRequest, JoinResponse>('join', (req, caller) => {
      checkJoin(req);
      const r = state.join(req.workerId, req.taskIndex, req.backend, Date.now(), keyDigest(caller));
      return {
        workerToken: slotToken(secret, r.workerId, r.generation),
        taskIndex: r.taskIndex,
        numWorkers: options.numWorkers,
        parameterServers: (options.placement?.().addresses ?? options.psAddresses).map((address, shardIndex) => ({ shardIndex, address })),
        jobConfigJson: options.jobConfigJson,
        globalStep: state.globalStep,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
      };
    }),
    heartbeat: unary<HeartbeatRequest, HeartbeatResponse>('heartbeat', (req, caller) => {
      requireSlot(caller, req.workerId, 'heartbeat');
      checkProgress(req, options, 'heartbeat');
      checkChiefSilence(req);
      state.heartbeat(req);
      if (req.chiefRejoinSilentSeconds > 0) state.chiefSilenceSeen(req.chiefRejoinNoticedSeconds, req.chiefRejoinSilentSeconds);
      const placement = options.placement?.();
      return {
        globalStep: state.globalStep,
        stop: state.jobState === 'done' || state.jobState === 'failed',
        replicaShardAddresses: [...(placement?.addresses ?? [])],
        replicaPlacementGeneration: placement?.generation ?? 0n,
      };
    }),
    leave: unary<LeaveRequest, LeaveResponse>('leave', (req, caller) => {
      requireSlot(caller, req.workerId, 'leave');
      checkProgress({ ...req, epoch: 0, loss: 0 }, options, 'leave');
      state.leave(req.workerId, req.finished, req.reason, {
        localStep: req.localStep,
        samples: req.samples,
        seconds: req.seconds,
        computeSeconds: req.computeSeconds,
        pushWaitSeconds: req.pushWaitSeconds,
        pullWaitSeconds: req.pullWaitSeconds,
        wireChoice: req.wireChoice,
      });
      return {};
    }),
    checkpointBarrier: unary<CheckpointBarrierRequest, CheckpointBarrierResponse>('checkpointBarrier', (req, caller) => {
      requireSlot(caller, req.workerId, 'checkpointBarrier');
      if (req.step < 1n || (options.totalSteps !== undefined && req.step > BigInt(options.totalSteps))) {
        throw new InvalidArgumentError(`checkpointBarrier: step ${req.step} is outside the job's steps (1..${options.totalSteps ?? '?'})`);
      }
      return state.arriveAtBarrier(req.workerId, Number(req.step), req.restoreGeneration);
    }),
    claimBatches: unary<ClaimBatchesRequest, ClaimBatchesResponse>('claimBatches', (req, caller) => {
      requireSlot(caller, req.workerId, 'claimBatches');
      const done = checkClaim(req, state.claims?.plan.totalBatches ?? 0);
      const c = state.claimBatches(req.workerId, req.count, done, req.idle);
      return { start: BigInt(c.start), end: BigInt(c.end), checkpointStep: BigInt(c.checkpointStep), finished: c.finished, totalBatches: BigInt(c.total) };
    }),
    presence: serverStream<PresenceRequest, PresenceResponse>('presence', async (req, out, caller) => {
      const r = requireSlot(caller, req.workerId, 'presence');
      const { workerId, generation } = r;
      state.presence(workerId, generation, true);
      // Held until the worker's connection closes (the call is cancelled) or this server closes.
      const ended = await new Promise<boolean>((resolve) => {
        if (closing) return resolve(true);
        if (out.signal.aborted) return resolve(false);
        const end = () => resolve(true);
        presenceEnds.add(end);
        out.signal.addEventListener('abort', () => {
          presenceEnds.delete(end);
          resolve(false);
        }, { once: true });
      });
      if (ended) return;
      state.presence(workerId, generation, false);
      armGraceTimer();
    }),
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
      validationMap: state.validationMAP,
      restoreGeneration: state.restoreGeneration,
      restoreStep: state.restoreStep,
      replicaShardAddresses: [...(options.placement?.().addresses ?? [])],
      replicaPlacementGeneration: options.placement?.().generation ?? 0n,
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
  // A Presence call lasts as long as its worker: a count, not a handling time.
  rpcMetrics.holdsOpen(CoordinatorService.presence.path);
  const server = await startServer([{ definition: CoordinatorService, implementation, descriptors: FILE_DESCRIPTOR_SET_BASE64 }], { host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, options.rpc);
  log(`chief of job "${jobId}" listening on ${options.host ?? '127.0.0.1'}:${server.port}`);
  return {
    port: server.port,
    state,
    close: () => {
      closing = true;
      for (const end of presenceEnds) end();
      presenceEnds.clear();
      clearTimeout(graceTimer);
      return server.close();
    },
  };
}
