/**
 * The chief's Coordinator service: Join, Heartbeat, Leave, CheckpointBarrier
 * and JobStatus over the CoordinatorState (coordinator-state.ts), which the
 * chief shares.
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
import { type RpcServerOptions, serviceHandlers, startServer } from '@tamp/rpc';
import { type CoordinatorOptions, CoordinatorState } from './coordinator-state.js';
import { trackCoordinator } from './metrics.js';

export interface RunningCoordinator {
  readonly port: number;
  readonly state: CoordinatorState;
  close(): Promise<void>;
}

export async function startCoordinator(options: CoordinatorOptions & { host?: string; port?: number; rpc?: RpcServerOptions }): Promise<RunningCoordinator> {
  const state = new CoordinatorState(options);
  trackCoordinator(state);
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
      validationMap: state.validationMAP,
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
