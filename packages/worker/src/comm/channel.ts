/** The training thread's side of the communication thread. */
import { Worker } from 'node:worker_threads';
import { ClusterError, type ErrorCode, ERROR_CODES, TampError, errorMessage } from '@tamp/core';
import { type ThreadMetrics, rpcMetrics } from '@tamp/rpc';
import type { Progress } from '../coordinator-client.js';
import { type CommInit, type FromComm, type NamedArray, type PullOptions, type ToComm, transferList } from './messages.js';

type Pending = { resolve: (m: FromComm) => void; reject: (e: unknown) => void };

/** The comm thread's metrics source registered with this process's registry (the latest channel's). */
let removeMetricsSource: (() => void) | undefined;
type Request = Extract<ToComm, { id: number }> extends infer T ? (T extends unknown ? Omit<T, 'id'> : never) : never;

export class CommChannel {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stopReason: string | undefined;
  /** --wire auto: the codecs the communication thread chose, and why. */
  wireChoice: string | undefined;
  /** The stop came from a peer (the chief) gone past the peer timeout, not from the job's end. */
  peerLost = false;
  private exited = false;
  private markReady: () => void = () => {};
  /** Resolves once the thread's own heartbeats reach the chief (or it stopped, or is gone). */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));
  /** The thread's metrics as it closed (its RPC counters outlive it in the worker's /metrics). */
  private lastMetrics: ThreadMetrics = [];

  constructor(init: CommInit) {
    this.worker = new Worker(new URL('./bootstrap.mjs', import.meta.url), { workerData: init });
    this.worker.on('message', (m: FromComm) => this.onMessage(m));
    this.worker.on('error', (error: unknown) => this.failAll(new ClusterError('JOB_FAILED', `communication thread failed: ${errorMessage(error)}`, { cause: error })));
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.markReady();
      if (this.pending.size > 0) this.failAll(new ClusterError('JOB_FAILED', `communication thread exited (code ${code})`));
    });
    // The thread's RPC metrics (pulls, pushes, heartbeats) in every scrape of the worker's /metrics.
    removeMetricsSource?.();
    removeMetricsSource = rpcMetrics.addSource(() => this.metrics());
  }

  /** The comm thread's metrics (its last ones once it has closed). */
  async metrics(): Promise<ThreadMetrics> {
    if (this.exited) return this.lastMetrics;
    const m = await this.request({ type: 'metrics' }).catch(() => undefined);
    if (m?.type === 'metrics') this.lastMetrics = m.metrics;
    return this.lastMetrics;
  }

  /** Why the job asked this worker to stop, if it did. */
  get stopped(): string | undefined {
    return this.stopReason;
  }

  private onMessage(m: FromComm): void {
    if (m.type === 'stop') {
      this.stopReason = m.reason;
      this.peerLost = m.peerLost;
      // Nothing more will come from a job whose chief is gone: a pull or push waiting at a barrier fails now.
      if (m.peerLost) this.failAll(new ClusterError('PEER_UNAVAILABLE', m.reason));
      this.markReady();
      return;
    }
    if (m.type === 'ready') {
      this.markReady();
      return;
    }
    if (m.type === 'wire') {
      this.wireChoice = m.choice;
      return;
    }
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    if (m.type === 'error') {
      const code = (m.error.code in ERROR_CODES ? m.error.code : 'JOB_FAILED') as ErrorCode;
      p.reject(new TampError(code, m.error.message));
    } else p.resolve(m);
  }

  private failAll(error: unknown): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }

  private request(message: Request, transfer: ArrayBuffer[] = []): Promise<FromComm> {
    if (this.exited) return Promise.reject(new ClusterError('JOB_FAILED', 'communication thread is gone'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  /**
   * The restore generation this worker trains in (ARCHITECTURE.md, "Faults"):
   * stamped on each pull and push as it is asked for, so a call (and its
   * retries) keeps the generation it was made in.
   */
  restoreGeneration = 0n;

  async pull(options: PullOptions = {}): Promise<{ values: Map<string, Float32Array>; versions: readonly bigint[] }> {
    const m = await this.request({ type: 'pull', options: { ...options, restoreGeneration: this.restoreGeneration } });
    // comm-thread.ts answers a pull with 'pulled' or 'error' (rejected above): anything else is a bug here.
    if (m.type !== 'pulled') throw new Error(`unexpected reply ${m.type}`);
    return { values: new Map(m.values.map((v) => [v.name, v.data])), versions: m.versions };
  }

  /** Push whole gradients; their buffers are transferred (unusable here afterwards). */
  async push(
    step: bigint,
    basedOnVersions: readonly bigint[],
    batchSize: number,
    grads: readonly NamedArray[],
    timeoutMs?: number,
  ): Promise<{ versions: readonly bigint[]; duplicate: boolean; dropped: boolean }> {
    const m = await this.request(
      { type: 'push', step, basedOnVersions, batchSize, grads, restoreGeneration: this.restoreGeneration, ...(timeoutMs !== undefined ? { timeoutMs } : {}) },
      transferList(grads),
    );
    // As for pull: a push is answered with 'pushed' or 'error'.
    if (m.type !== 'pushed') throw new Error(`unexpected reply ${m.type}`);
    return m;
  }

  progress(progress: Progress): void {
    if (!this.exited) this.worker.postMessage({ type: 'progress', progress } satisfies ToComm);
  }

  async close(): Promise<void> {
    if (!this.exited) {
      const m = await this.request({ type: 'close' }).catch(() => undefined);
      if (m?.type === 'closed') this.lastMetrics = m.metrics;
      await this.worker.terminate();
    }
  }
}
