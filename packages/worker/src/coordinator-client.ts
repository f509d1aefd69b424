/** Client of the chief's Coordinator service. */
import { CoordinatorClient as GrpcCoordinatorClient, CoordinatorService, type HeartbeatResponse, type JobStatusResponse, type JoinResponse } from '@tamp/proto/tamp/v1/coordinator';
import { type RpcCallOptions, type RpcClientOptions, WORKER_TOKEN_KEY, callUnary, createClient, requestHeader, rpcMetrics, withRetry } from '@tamp/rpc';

export interface Progress {
  readonly localStep: bigint;
  readonly epoch: number;
  readonly loss: number;
  readonly samples: bigint;
  /** Seconds since the first training step began. */
  readonly seconds: number;
  /** Where those seconds went: computing gradients (with reading them back), waiting for pushes, waiting for pulls. */
  readonly computeSeconds?: number;
  readonly pushWaitSeconds?: number;
  readonly pullWaitSeconds?: number;
  /** --wire auto: the codecs chosen and why. */
  readonly wireChoice?: string;
  /** After the chief was silent: seconds from the last answer before it to the first unanswered heartbeat, and to now. */
  readonly chiefNoticedSeconds?: number;
  readonly chiefSilentSeconds?: number;
  /** The training backend (for a restarted chief, which did not see the Join). */
  readonly backend?: string;
}

function timeSplit(p: Partial<Progress> | undefined): { computeSeconds: number; pushWaitSeconds: number; pullWaitSeconds: number; wireChoice: string } {
  return { computeSeconds: p?.computeSeconds ?? 0, pushWaitSeconds: p?.pushWaitSeconds ?? 0, pullWaitSeconds: p?.pullWaitSeconds ?? 0, wireChoice: p?.wireChoice ?? '' };
}

export class CoordinatorClient {
  readonly address: string;
  private readonly client: GrpcCoordinatorClient;
  private readonly jobId: string;
  private readonly timeoutMs: number;

  /** Metadata sent with every call: read at each call, so setWorkerToken reaches calls made after it. */
  private readonly auth: Record<string, string>;

  constructor(address: string, jobId: string, timeoutMs = 30_000, rpc: RpcClientOptions = {}) {
    this.address = address;
    this.jobId = jobId;
    this.timeoutMs = timeoutMs;
    this.auth = { ...rpc.metadata };
    this.client = createClient(GrpcCoordinatorClient, address, { ...rpc, metadata: this.auth });
  }

  /**
   * Retry checkpoint barriers, Leave and JobStatus for this long while the
   * chief does not answer (a restarted chief comes back on its address and
   * takes the worker back: chief-rejoin.ts); the worker sets its peer timeout.
   */
  retryMs = 0;

  /** The slot token Join answered: every later call carries it (role-auth.ts). */
  setWorkerToken(token: string): void {
    this.auth[WORKER_TOKEN_KEY] = token;
  }

  close(): void {
    this.client.close();
  }

  private call(what: string, timeoutMs = this.timeoutMs): RpcCallOptions {
    return { what: `${what} (chief at ${this.address})`, timeoutMs };
  }

  /** Idempotent calls: retried while the chief is unreachable, up to retryMs. */
  private retried(what: string, timeoutMs = this.timeoutMs): RpcCallOptions {
    return { ...this.call(what, timeoutMs), ...(this.retryMs > 0 ? { retry: { deadlineMs: this.retryMs, baseDelayMs: 100, maxDelayMs: 1_000 } } : {}) };
  }

  join(workerId: string, taskIndex: number, backend: string): Promise<JoinResponse> {
    return callUnary(this.client, 'join', { header: requestHeader(this.jobId), workerId, taskIndex, backend }, this.call('join'));
  }

  /** Join, retrying while the chief is still starting (or restarting). */
  joinWithRetry(workerId: string, taskIndex: number, backend: string, deadlineMs: number, onRetry?: (error: unknown) => void): Promise<JoinResponse> {
    return withRetry(() => this.join(workerId, taskIndex, backend), { deadlineMs, baseDelayMs: 100, maxDelayMs: 1_000, ...(onRetry !== undefined ? { onRetry } : {}) });
  }

  heartbeat(workerId: string, p: Progress): Promise<HeartbeatResponse> {
    const silence = { chiefRejoinNoticedSeconds: p.chiefNoticedSeconds ?? 0, chiefRejoinSilentSeconds: p.chiefSilentSeconds ?? 0, chiefRejoinBackend: p.backend ?? '' };
    const request = { header: requestHeader(this.jobId), workerId, localStep: p.localStep, epoch: p.epoch, loss: p.loss, samples: p.samples, seconds: p.seconds, ...timeSplit(p), ...silence };
    return callUnary(this.client, 'heartbeat', request, this.call('heartbeat'));
  }

  async leave(
    workerId: string,
    finished: boolean,
    reason: string,
    final?: Pick<Progress, 'localStep' | 'samples' | 'seconds' | 'computeSeconds' | 'pushWaitSeconds' | 'pullWaitSeconds' | 'wireChoice'>,
  ): Promise<void> {
    const request = { header: requestHeader(this.jobId), workerId, finished, reason, localStep: final?.localStep ?? 0n, samples: final?.samples ?? 0n, seconds: final?.seconds ?? 0, ...timeSplit(final) };
    await callUnary(this.client, 'leave', request, this.retried('leave'));
  }

  /** Wait at checkpoint `step` until the chief has written it. */
  checkpointBarrier(workerId: string, step: number, timeoutMs: number, restoreGeneration = 0n): Promise<{ complete: boolean; manifest: string }> {
    return callUnary(this.client, 'checkpointBarrier', { header: requestHeader(this.jobId), workerId, step: BigInt(step), restoreGeneration }, this.retried('checkpoint barrier', timeoutMs));
  }

  /** async/ssp: report the batches finished (ranges [start, end)) and claim up to `count` more; `idle`: this worker holds no batch. */
  async claimBatches(workerId: string, count: number, done: ReadonlyArray<readonly [number, number]>, idle: boolean): Promise<{ start: number; end: number; checkpointStep: number; finished: boolean }> {
    const request = { header: requestHeader(this.jobId), workerId, count, idle, done: done.map(([start, end]) => ({ start: BigInt(start), end: BigInt(end) })) };
    // Retried: reporting done batches again changes nothing, and a block whose answer was lost goes back to the others once this worker is idle.
    const r = await callUnary(this.client, 'claimBatches', request, { ...this.call('claim batches'), retry: { deadlineMs: this.timeoutMs, baseDelayMs: 100 } });
    return { start: Number(r.start), end: Number(r.end), checkpointStep: Number(r.checkpointStep), finished: r.finished };
  }

  /**
   * Hold a Presence call open (coordinator.proto): while it is, the chief
   * knows this process's connection is up, and finds the worker lost soon
   * after the process dies. `onEnd` runs once when the call ends (the chief
   * ended it or refused it, or the connection broke); the function returned
   * cancels it without calling `onEnd`.
   */
  presence(workerId: string, onEnd: (error?: unknown) => void): () => void {
    // As long as this worker lives: a count in this thread's metrics, not a handling time.
    rpcMetrics.holdsOpen(CoordinatorService.presence.path);
    const call = this.client.presence({ header: requestHeader(this.jobId), workerId });
    let ended = false;
    const end = (error?: unknown) => {
      if (ended) return;
      ended = true;
      onEnd(error);
    };
    call.on('data', () => {});
    call.on('error', end);
    call.on('end', () => end());
    return () => {
      ended = true;
      call.cancel();
    };
  }

  jobStatus(): Promise<JobStatusResponse> {
    return callUnary(this.client, 'jobStatus', { header: requestHeader(this.jobId) }, this.retried('job status'));
  }
}
