/** Client of the chief's Coordinator service. */
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  CoordinatorClient as GrpcCoordinatorClient,
  type HeartbeatResponse,
  type JobStatusResponse,
  type JoinResponse,
} from '@tamp/proto/tamp/v1/coordinator';
import { CHANNEL_OPTIONS, clientCredentials, fromServiceError, requestHeader, withRetry } from '@tamp/parameter-server';

export interface Progress {
  readonly localStep: bigint;
  readonly epoch: number;
  readonly loss: number;
  readonly accuracy: number;
  readonly samples: bigint;
  /** Seconds since the first training step began. */
  readonly seconds: number;
}

type Callback<T> = (error: ServiceError | null, response?: T) => void;

export class CoordinatorClient {
  readonly address: string;
  private readonly client: GrpcCoordinatorClient;
  private readonly jobId: string;
  private readonly timeoutMs: number;

  constructor(address: string, jobId: string, timeoutMs = 30_000) {
    this.address = address;
    this.jobId = jobId;
    this.timeoutMs = timeoutMs;
    this.client = new GrpcCoordinatorClient(address, clientCredentials(), CHANNEL_OPTIONS);
  }

  close(): void {
    this.client.close();
  }

  private unary<T>(what: string, call: (md: Metadata, options: { deadline: Date }, cb: Callback<T>) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      call(new Metadata(), { deadline: new Date(Date.now() + this.timeoutMs) }, (error, response) => {
        if (error !== null) reject(fromServiceError(error, `${what} (chief at ${this.address})`));
        else resolve(response as T);
      });
    });
  }

  join(workerId: string, taskIndex: number, backend: string): Promise<JoinResponse> {
    return this.unary('join', (md, o, cb) => this.client.join({ header: requestHeader(this.jobId), workerId, taskIndex, backend }, md, o, cb));
  }

  /** Join, retrying while the chief is still starting (or restarting). */
  joinWithRetry(workerId: string, taskIndex: number, backend: string, deadlineMs: number, onRetry?: (error: unknown) => void): Promise<JoinResponse> {
    return withRetry(() => this.join(workerId, taskIndex, backend), { deadlineMs, baseDelayMs: 100, maxDelayMs: 1_000, ...(onRetry !== undefined ? { onRetry } : {}) });
  }

  heartbeat(workerId: string, p: Progress): Promise<HeartbeatResponse> {
    return this.unary('heartbeat', (md, o, cb) =>
      this.client.heartbeat({ header: requestHeader(this.jobId), workerId, localStep: p.localStep, epoch: p.epoch, loss: p.loss, accuracy: p.accuracy, samples: p.samples, seconds: p.seconds }, md, o, cb),
    );
  }

  leave(workerId: string, finished: boolean, reason: string, final?: Pick<Progress, 'localStep' | 'samples' | 'seconds'>): Promise<void> {
    return this.unary('leave', (md, o, cb) =>
      this.client.leave(
        { header: requestHeader(this.jobId), workerId, finished, reason, localStep: final?.localStep ?? 0n, samples: final?.samples ?? 0n, seconds: final?.seconds ?? 0 },
        md,
        o,
        cb,
      ),
    ).then(() => undefined);
  }

  /** Wait at checkpoint `step` until the chief has written it. */
  checkpointBarrier(workerId: string, step: number, timeoutMs: number): Promise<{ complete: boolean; manifest: string }> {
    return new Promise((resolve, reject) => {
      this.client.checkpointBarrier({ header: requestHeader(this.jobId), workerId, step: BigInt(step) }, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (error, r) => {
        if (error !== null) reject(fromServiceError(error, `checkpoint barrier (chief at ${this.address})`));
        else resolve(r);
      });
    });
  }

  jobStatus(): Promise<JobStatusResponse> {
    return this.unary('job status', (md, o, cb) => this.client.jobStatus({ header: requestHeader(this.jobId) }, md, o, cb));
  }
}
