/**
 * The replication calls of the ParameterServer service (--ps-replicas 1;
 * ARCHITECTURE.md, "Faults"): the chief's (ReplicaHost, ReplicaAttach,
 * ReplicaPromote) and a primary's to its backup (ReplicaApply). Every call
 * carries the chief's secret in the client's metadata.
 */
import type { ParameterServerClient as GrpcParameterServerClient, ReplicaApplyRequest } from '@tamp/proto/tamp/v1/parameter_server';
import { type WireTensor, encodeTensorMessages } from '@tamp/core/base';
import { type RpcCallOptions, type RpcClientOptions, callClientStream, callUnary, createClient, requestHeader } from '@tamp/rpc';
import { FastParameterServerClient } from './wire/fast-codec.js';
import type { SeenPush } from './shard/replication.js';

export class ReplicaClient {
  readonly address: string;
  private readonly client: GrpcParameterServerClient;
  private readonly jobId: string;
  private readonly timeoutMs: number;

  constructor(address: string, jobId: string, rpc: RpcClientOptions | undefined, timeoutMs = 60_000) {
    this.address = address;
    this.jobId = jobId;
    this.timeoutMs = timeoutMs;
    this.client = createClient(FastParameterServerClient, address, rpc);
  }

  close(): void {
    this.client.close();
  }

  private call(what: string): RpcCallOptions {
    return { what: `${what} ${this.address}`, timeoutMs: this.timeoutMs };
  }

  /** Ask this server to host shard `shardIndex`'s backup; answers the backup service's port. */
  async host(shardIndex: number): Promise<number> {
    const r = await callUnary(this.client, 'replicaHost', { header: requestHeader(this.jobId), shardIndex }, this.call('replica host at'));
    return r.port;
  }

  /** Tell this primary its backup's address ('' : none); answers the version it copied there. */
  async attach(backupAddress: string): Promise<bigint> {
    const r = await callUnary(this.client, 'replicaAttach', { header: requestHeader(this.jobId), backupAddress }, this.call('replica attach at'));
    return r.version;
  }

  /** Make this backup its shard's primary. */
  async promote(liveWorkerIds: readonly string[]): Promise<bigint> {
    const r = await callUnary(this.client, 'replicaPromote', { header: requestHeader(this.jobId), liveWorkerIds: [...liveWorkerIds] }, this.call('replica promote at'));
    return r.version;
  }

  /** Forward one update (a primary to its backup); answers the backup's version. */
  async apply(version: bigint, skip: boolean, seen: readonly SeenPush[], tensors: readonly WireTensor[]): Promise<bigint> {
    const header = requestHeader(this.jobId);
    const base = { version, skip, tensorCount: tensors.length };
    const messages = function* (): Generator<ReplicaApplyRequest> {
      const groups = encodeTensorMessages(tensors);
      if (groups.length === 0) {
        yield { header, ...base, seen: [...seen], chunk: undefined, moreChunks: [] };
        return;
      }
      let first = true;
      for (const [chunk, ...moreChunks] of groups) {
        yield first ? { header, ...base, seen: [...seen], chunk, moreChunks } : { header: undefined, ...base, seen: [], chunk, moreChunks };
        first = false;
      }
    };
    const r = await callClientStream(this.client, 'replicaApply', messages, this.call('replica apply to'));
    return r.version;
  }
}
