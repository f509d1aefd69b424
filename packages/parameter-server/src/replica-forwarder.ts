/**
 * A primary's side of chain replication (--ps-replicas 1; ARCHITECTURE.md,
 * "Faults"): copies the shard's state to the backup, then sends it every
 * update in version order, one at a time, and says which versions the
 * backup holds (the shard answers a push only then).
 *
 * A backup that does not answer is retried (capped backoff) until the chief
 * reconfigures the chain (ReplicaAttach: another backup, or none): until
 * then pushes wait, as chain replication wants, since acknowledging them
 * would make them losable. Detached, every wait resolves: the primary is
 * then the chain's tail.
 */
import { type RpcClientOptions, withRetry } from '@tamp/rpc';
import { ClusterError, TampError, errorMessage } from '@tamp/core/base';
import { ReplicaClient } from './replica-client.js';
import { ShardClient } from './client.js';
import { type ReplicaCopy, type ReplicaRecord, type ReplicaSink, recordTensors } from './shard/replication.js';
import type { ShardPart } from './shard/storage.js';
import { Waiters } from './shard/waiters.js';

export interface ForwarderOptions {
  readonly address: string;
  readonly jobId: string;
  /** Transport settings with the chief's secret in the metadata. */
  readonly rpc: RpcClientOptions;
  readonly checkpointRoot: string;
  /** The shard's parts (names and slices of the forwarded gradients). */
  readonly parts: () => ReadonlyMap<string, ShardPart>;
  readonly log: (message: string) => void;
  /** The backup refused as a promoted primary: the chief failed this shard over (thinking this one dead). */
  readonly onDeposed: () => void;
}

export class ReplicaForwarder implements ReplicaSink {
  readonly address: string;
  private readonly replica: ReplicaClient;
  private readonly assigner: ShardClient;
  private readonly queue: ReplicaRecord[] = [];
  /** The backup holds every version up to this one (-1: not yet copied). */
  private held = -1n;
  private closed = false;
  private successor: ReplicaSink | undefined;
  /** Set when the backup turned out promoted: every wait rejects with it. */
  private deposed: ClusterError | undefined;
  private readonly abort = new AbortController();
  private readonly waiters = new Waiters();

  constructor(private readonly options: ForwarderOptions) {
    this.address = options.address;
    this.replica = new ReplicaClient(options.address, options.jobId, options.rpc);
    this.assigner = new ShardClient(options.address, options.jobId, { rpc: options.rpc });
  }

  /** The version the backup is known to hold (-1 before the copy landed). */
  get heldVersion(): bigint {
    return this.held;
  }

  /** Copy `copy` to the backup, then send what was forwarded meanwhile and everything after, until closed. */
  async start(copy: ReplicaCopy): Promise<void> {
    await this.retrying(async () => {
      await this.assigner.assign(copy.config, copy.tensors, this.options.checkpointRoot);
      // The pushes remembered so far, so a retry after a failover is a duplicate there too.
      await this.replica.apply(copy.version, false, copy.seen, []);
    });
    if (this.closed) return;
    this.held = copy.version;
    this.waiters.wake();
    void this.drain();
  }

  forward(record: ReplicaRecord): void {
    if (this.closed) return;
    this.queue.push(record);
    if (this.queue.length === 1 && this.held >= 0n) void this.drain();
  }

  async acked(version: bigint): Promise<void> {
    if (this.deposed !== undefined) throw this.deposed;
    await this.waiters.until(() => this.closed || this.held >= version, undefined, () => '');
    if (this.held < version && this.successor !== undefined) await this.successor.acked(version);
  }

  /**
   * Stop forwarding (the chief has reconfigured the chain): every wait
   * resolves, or, given the next backup's forwarder, waits for that one.
   */
  close(successor?: ReplicaSink): void {
    this.successor = successor;
    this.closed = true;
    this.abort.abort();
    this.waiters.wake();
    this.replica.close();
    this.assigner.close();
  }

  private draining = false;

  /**
   * The backup answers as a primary: the chief promoted it, so this shard is
   * no longer the primary (it was thought dead). Pushes waiting here were
   * never on the new primary: they are refused (NOT_READY, so workers retry,
   * and reach the new address once their heartbeat brings it), never
   * acknowledged.
   */
  private depose(error: TampError): void {
    this.deposed = new ClusterError('NOT_READY', `this shard was failed over to its backup at ${this.address} (${error.message}); ask the chief for the shard's address`);
    this.options.log(`replica: ${this.deposed.message}`);
    this.closed = true;
    this.options.onDeposed();
    this.waiters.rejectAll(this.deposed);
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const record = this.queue[0] as ReplicaRecord;
        if (record.version > this.held) {
          const tensors = record.skip ? [] : recordTensors(record, this.options.parts());
          await this.retrying(() => this.replica.apply(record.version, record.skip, record.seen, tensors));
          if (this.closed) return;
          this.held = record.version;
          this.waiters.wake();
        }
        this.queue.shift();
      }
    } finally {
      this.draining = false;
    }
  }

  /** Run `fn` until it succeeds or the forwarder closes; the first failure of a run is logged. */
  private async retrying(fn: () => Promise<unknown>): Promise<void> {
    let logged = false;
    const note = (error: unknown) => {
      if (!logged) this.options.log(`replica: backup at ${this.address} did not take an update (${errorMessage(error)}); pushes wait until it does or the chief reconfigures the chain`);
      logged = true;
    };
    while (!this.closed) {
      try {
        await withRetry(fn, { deadlineMs: 5_000, maxDelayMs: 250, signal: this.abort.signal, onRetry: note });
        return;
      } catch (error) {
        if (this.closed) return;
        if (error instanceof TampError && error.code === 'REPLICA_CONFIG') {
          this.depose(error);
          return;
        }
        note(error);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }
}
