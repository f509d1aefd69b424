/**
 * The chief's Coordinator service: Join, Heartbeat, Leave, GetGlobalStep,
 * CheckpointBarrier and JobStatus over the CoordinatorState
 * (coordinator-state.ts), which the chief shares.
 */
import { type sendUnaryData } from '@grpc/grpc-js';
import {
  type CheckpointBarrierRequest,
  type CheckpointBarrierResponse,
  CoordinatorService,
  type GetGlobalStepRequest,
  type GetGlobalStepResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JobStatusRequest,
  type JobStatusResponse,
  type JoinRequest,
  type JoinResponse,
  type LeaveRequest,
  type LeaveResponse,
} from '@tamp/proto/tamp/v1/coordinator';
import { bindServer, checkHeader, createServer, shutdownServer, toServiceError } from '@tamp/parameter-server';
import { type CoordinatorOptions, CoordinatorState } from './coordinator-state.js';

export interface RunningCoordinator {
  readonly port: number;
  readonly state: CoordinatorState;
  close(): Promise<void>;
}

export async function startCoordinator(options: CoordinatorOptions & { host?: string; port?: number }): Promise<RunningCoordinator> {
  const state = new CoordinatorState(options);
  const { jobId } = options;
  const log = options.log ?? (() => {});
  const fail = (error: unknown) => toServiceError(error, log);
  const unary =
    <Req extends { header?: JoinRequest['header'] }, Res>(name: string, handle: (req: Req) => Res) =>
    (call: { request: Req }, callback: sendUnaryData<Res>) => {
      try {
        checkHeader(call.request.header, jobId, name);
        callback(null, handle(call.request));
      } catch (error) {
        callback(fail(error), null);
      }
    };
  const server = createServer();
  server.addService(CoordinatorService, {
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
      return { globalStep: state.globalStep, stop: state.jobState === 'done' || state.jobState === 'failed', checkpointStep: 0n };
    }),
    leave: unary<LeaveRequest, LeaveResponse>('leave', (req) => {
      state.leave(req.workerId, req.finished, req.reason, { localStep: req.localStep, samples: req.samples, seconds: req.seconds });
      return {};
    }),
    getGlobalStep: unary<GetGlobalStepRequest, GetGlobalStepResponse>('getGlobalStep', () => ({ globalStep: state.globalStep })),
    checkpointBarrier: (call: { request: CheckpointBarrierRequest }, callback: sendUnaryData<CheckpointBarrierResponse>) => {
      try {
        checkHeader(call.request.header, jobId, 'checkpointBarrier');
        state.arriveAtBarrier(call.request.workerId, Number(call.request.step)).then(
          (r) => callback(null, r),
          (error: unknown) => callback(fail(error), null),
        );
      } catch (error) {
        callback(fail(error), null);
      }
    },
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
  });
  const port = await bindServer(server, options.host ?? '127.0.0.1', options.port ?? 0);
  log(`chief of job "${jobId}" listening on ${options.host ?? '127.0.0.1'}:${port}`);
  return { port, state, close: () => shutdownServer(server) };
}
