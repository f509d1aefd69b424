/**
 * Clients of the ParameterServer service: one shard (ShardClient), and all
 * shards of a job through its placement (ParameterClient), which splits
 * gradients into the parts each shard holds and reassembles pulled slices.
 */
import {
  type AssignRequest,
  type ParameterServerClient as GrpcParameterServerClient,
  type PushRequest,
  type PushResponse,
  type ShardStatusResponse,
} from '@tamp/proto/tamp/v1/parameter_server';
import { Codec } from '@tamp/proto/tamp/v1/tensor';
import { ClusterError, type Placement, type ShardConfig, TensorAssembler, type WireTensor, encodeTensorMessages } from '@tamp/core';
import { type RpcCallOptions, type RpcClientOptions, callClientStream, callServerStream, callUnary, createClient, requestHeader, withRetry } from '@tamp/rpc';
import { FastParameterServerClient, messageChunks } from './wire/fast-codec.js';
import { reassembleVariables, splitGradients } from './split.js';
import { shardConfigToProto } from './wire/shard-config.js';

export interface CallSettings {
  /** Deadline of one call (ms). */
  readonly callTimeoutMs?: number;
  /** Transport settings (credentials, interceptors). */
  readonly rpc?: RpcClientOptions;
}

/** What ShardClient.assign sends: the shard configuration (kept as a name for existing importers). */
export type AssignSpec = ShardConfig;

export interface PushSpec {
  readonly workerId: string;
  readonly step: bigint;
  readonly basedOnVersion: bigint;
  readonly batchSize: number;
}

/** One shard. */
export class ShardClient {
  readonly address: string;
  private readonly client: GrpcParameterServerClient;
  private readonly jobId: string;
  private readonly timeoutMs: number;

  constructor(address: string, jobId: string, settings: CallSettings = {}) {
    this.address = address;
    this.jobId = jobId;
    this.timeoutMs = settings.callTimeoutMs ?? 60_000;
    this.client = createClient(FastParameterServerClient, address, settings.rpc);
  }

  close(): void {
    this.client.close();
  }

  private call(what: string, timeoutMs = this.timeoutMs): RpcCallOptions {
    return { what: `${what} ${this.address}`, timeoutMs };
  }

  status(): Promise<ShardStatusResponse> {
    return callUnary(this.client, 'shardStatus', { header: requestHeader(this.jobId) }, this.call('shard status from'));
  }

  pull(workerId: string, options: { minVersion?: bigint; step?: bigint; names?: readonly string[]; timeoutMs?: number } = {}): Promise<{ version: bigint; tensors: WireTensor[] }> {
    const request = { header: requestHeader(this.jobId), workerId, names: [...(options.names ?? [])], minVersion: options.minVersion ?? 0n, codec: Codec.CODEC_NONE, step: options.step ?? 0n };
    return callServerStream(this.client, 'pull', request, this.call('pull from', options.timeoutMs), () => {
      const assembler = new TensorAssembler();
      let version: bigint | undefined;
      return {
        onMessage(msg) {
          version ??= msg.version;
          for (const chunk of messageChunks(msg)) assembler.add(chunk);
        },
        finish: () => ({ version: version ?? 0n, tensors: assembler.finish() }),
      };
    });
  }

  /** `timeoutMs`: sync pushes wait at the step barrier for the other workers. */
  push(spec: PushSpec, tensors: readonly WireTensor[], timeoutMs = this.timeoutMs): Promise<PushResponse> {
    const header = requestHeader(this.jobId);
    const messages = function* (): Generator<PushRequest> {
      let first = true;
      // Serialized one message at a time, as the stream takes them.
      for (const [chunk, ...moreChunks] of encodeTensorMessages(tensors)) {
        yield first
          ? { header, workerId: spec.workerId, step: spec.step, basedOnVersion: spec.basedOnVersion, batchSize: spec.batchSize, tensorCount: tensors.length, chunk, moreChunks }
          : { header: undefined, workerId: '', step: 0n, basedOnVersion: 0n, batchSize: 0, tensorCount: 0, chunk, moreChunks };
        first = false;
      }
    };
    return callClientStream(this.client, 'push', messages, this.call('push to', timeoutMs));
  }

  /** `checkpointRoot`: the absolute folder SaveShard writes under, fixed by the first Assign ('' : none). */
  async assign(config: ShardConfig, tensors: readonly WireTensor[], checkpointRoot = ''): Promise<bigint> {
    const header = requestHeader(this.jobId);
    const base = { ...shardConfigToProto(config), tensorCount: tensors.length, checkpointRoot };
    const messages = function* (): Generator<AssignRequest> {
      yield { header, ...base, chunk: undefined, moreChunks: [] };
      for (const [chunk, ...moreChunks] of encodeTensorMessages(tensors)) yield { header: undefined, ...base, workerIds: [], chunk, moreChunks };
    };
    const response = await callClientStream(this.client, 'assign', messages, this.call('assign to'));
    return response.version;
  }

  async updateMembership(liveWorkerIds: readonly string[]): Promise<void> {
    await callUnary(this.client, 'updateMembership', { header: requestHeader(this.jobId), liveWorkerIds: [...liveWorkerIds] }, this.call('membership update to'));
  }

  /** Save the shard's part of checkpoint `step` under the root fixed at Assign; `directory`: the checkpoint's folder name (checkpointFolderName) or ''. */
  async saveShard(directory: string, step: bigint): Promise<{ file: string; bytes: number; crc32: number; version: bigint }> {
    const r = await callUnary(this.client, 'saveShard', { header: requestHeader(this.jobId), directory, step }, this.call('checkpoint of'));
    return { file: r.file, bytes: Number(r.bytes), crc32: r.crc32, version: r.version };
  }

  async shutdown(reason: string): Promise<void> {
    await callUnary(this.client, 'shutdown', { header: requestHeader(this.jobId), reason }, this.call('shutdown of'));
  }

  /** Wait until the server answers (it may still be starting). */
  async waitReachable(timeoutMs: number): Promise<ShardStatusResponse> {
    return withRetry(() => this.status(), { deadlineMs: timeoutMs, baseDelayMs: 50, maxDelayMs: 500 });
  }
}

export interface PulledParameters {
  /** Whole variables by name. */
  readonly values: Map<string, Float32Array>;
  /** Version of each shard's snapshot. */
  readonly versions: bigint[];
}

/** Every shard of a job, through the job's placement. */
export class ParameterClient {
  readonly shards: ShardClient[];
  private readonly placement: Placement;
  private readonly retryMs: number;

  constructor(addresses: readonly string[], placement: Placement, jobId: string, settings: CallSettings & { retryMs?: number } = {}) {
    if (addresses.length !== placement.shards.length) {
      throw new ClusterError('CLUSTER_CONFIG', `${addresses.length} parameter server addresses for a placement over ${placement.shards.length} shards: give one address per shard, in shard order`);
    }
    this.shards = addresses.map((a) => new ShardClient(a, jobId, settings));
    this.placement = placement;
    this.retryMs = settings.retryMs ?? 60_000;
  }

  close(): void {
    for (const s of this.shards) s.close();
  }

  /** Pull every shard (concurrently) and reassemble whole variables. */
  async pullAll(workerId: string, options: { minVersions?: readonly bigint[]; step?: bigint; timeoutMs?: number } = {}): Promise<PulledParameters> {
    const results = await Promise.all(
      this.shards.map((s, i) =>
        withRetry(
          () =>
            s.pull(workerId, {
              minVersion: options.minVersions?.[i] ?? 0n,
              ...(options.step !== undefined ? { step: options.step } : {}),
              ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
            }),
          { deadlineMs: Math.max(this.retryMs, options.timeoutMs ?? 0) },
        ),
      ),
    );
    const values = reassembleVariables(this.placement, results.map((r) => r.tensors));
    return { values, versions: results.map((r) => r.version) };
  }

  /** The tensors shard `index` expects, cut from whole gradients. */
  partsFor(index: number, grads: ReadonlyMap<string, Float32Array>): WireTensor[] {
    return splitGradients(this.placement, index, grads);
  }

  /** Push a whole gradient to every shard (concurrently). Retried pushes are applied once. */
  async pushAll(
    spec: Omit<PushSpec, 'basedOnVersion'> & { basedOnVersions: readonly bigint[]; timeoutMs?: number },
    grads: ReadonlyMap<string, Float32Array>,
  ): Promise<PushResponse[]> {
    return Promise.all(
      this.shards.map((s, i) =>
        withRetry(
          () =>
            s.push(
              { workerId: spec.workerId, step: spec.step, batchSize: spec.batchSize, basedOnVersion: spec.basedOnVersions[i] ?? 0n },
              this.partsFor(i, grads),
              spec.timeoutMs,
            ),
          { deadlineMs: Math.max(this.retryMs, spec.timeoutMs ?? 0) },
        ),
      ),
    );
  }
}
