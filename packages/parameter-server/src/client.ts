/**
 * Clients of the ParameterServer service: one shard (ShardClient), and all
 * shards of a job through its placement (ParameterClient), which splits
 * gradients into the parts each shard holds and reassembles pulled slices.
 */
import { type ClientWritableStream, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  type AssignRequest,
  type ParameterServerClient as GrpcParameterServerClient,
  type PullResponse,
  type PushRequest,
  type PushResponse,
  type ShardStatusResponse,
} from '@tamp/proto/tamp/v1/parameter_server';
import { Codec } from '@tamp/proto/tamp/v1/tensor';
import { ClusterError, type Placement, type ShardConfig, TensorAssembler, type WireTensor, encodeTensorMessages } from '@tamp/core';
import { CHANNEL_OPTIONS, clientCredentials } from './rpc/channel.js';
import { FastParameterServerClient, messageChunks } from './rpc/fast-codec.js';
import { requestHeader } from './rpc/header.js';
import { withRetry } from './rpc/retry.js';
import { fromServiceError } from './rpc/status.js';
import { reassembleVariables, splitGradients } from './split.js';
import { shardConfigToProto } from './wire/shard-config.js';

export interface CallSettings {
  /** Deadline of one call (ms). */
  readonly callTimeoutMs?: number;
}

function deadline(ms: number): Date {
  return new Date(Date.now() + ms);
}

function writeAll<T>(stream: ClientWritableStream<T>, messages: Iterable<T>): Promise<void> {
  return new Promise((resolve, reject) => {
    const it = messages[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        const next = it.next();
        if (next.done === true) {
          stream.end();
          resolve();
          return;
        }
        if (!stream.write(next.value)) {
          stream.once('drain', pump);
          return;
        }
      }
    };
    stream.once('error', reject);
    pump();
  });
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
    this.client = new FastParameterServerClient(address, clientCredentials(), CHANNEL_OPTIONS) as unknown as GrpcParameterServerClient;
  }

  close(): void {
    this.client.close();
  }

  status(): Promise<ShardStatusResponse> {
    return new Promise((resolve, reject) => {
      this.client.shardStatus({ header: requestHeader(this.jobId) }, new Metadata(), { deadline: deadline(this.timeoutMs) }, (error, response) => {
        if (error !== null) reject(fromServiceError(error, `shard status from ${this.address}`));
        else resolve(response);
      });
    });
  }

  pull(workerId: string, options: { minVersion?: bigint; step?: bigint; names?: readonly string[]; timeoutMs?: number } = {}): Promise<{ version: bigint; tensors: WireTensor[] }> {
    return new Promise((resolve, reject) => {
      const assembler = new TensorAssembler();
      let version: bigint | undefined;
      const stream = this.client.pull(
        { header: requestHeader(this.jobId), workerId, names: [...(options.names ?? [])], minVersion: options.minVersion ?? 0n, codec: Codec.CODEC_NONE, step: options.step ?? 0n },
        { deadline: deadline(options.timeoutMs ?? this.timeoutMs) },
      );
      stream.on('data', (msg: PullResponse) => {
        try {
          version ??= msg.version;
          for (const chunk of messageChunks(msg)) assembler.add(chunk);
        } catch (error) {
          stream.cancel();
          reject(error as Error);
        }
      });
      stream.on('error', (error: ServiceError) => reject(fromServiceError(error, `pull from ${this.address}`)));
      stream.on('end', () => {
        try {
          resolve({ version: version ?? 0n, tensors: assembler.finish() });
        } catch (error) {
          reject(error as Error);
        }
      });
    });
  }

  /** `timeoutMs`: sync pushes wait at the step barrier for the other workers. */
  push(spec: PushSpec, tensors: readonly WireTensor[], timeoutMs = this.timeoutMs): Promise<PushResponse> {
    return new Promise((resolve, reject) => {
      const stream = this.client.push({ deadline: deadline(timeoutMs) }, (error, response) => {
        if (error !== null) reject(fromServiceError(error, `push to ${this.address}`));
        else resolve(response as PushResponse);
      });
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
      writeAll(stream, messages()).catch(() => {
        // The callback above reports the call's status.
      });
    });
  }

  assign(config: ShardConfig, tensors: readonly WireTensor[]): Promise<bigint> {
    return new Promise((resolve, reject) => {
      const stream = this.client.assign({ deadline: deadline(this.timeoutMs) }, (error, response) => {
        if (error !== null) reject(fromServiceError(error, `assign to ${this.address}`));
        else resolve(response?.version ?? 0n);
      });
      const header = requestHeader(this.jobId);
      const base = { ...shardConfigToProto(config), tensorCount: tensors.length };
      const messages = function* (): Generator<AssignRequest> {
        yield { header, ...base, chunk: undefined, moreChunks: [] };
        for (const [chunk, ...moreChunks] of encodeTensorMessages(tensors)) yield { header: undefined, ...base, workerIds: [], chunk, moreChunks };
      };
      writeAll(stream, messages()).catch(() => {});
    });
  }

  updateMembership(liveWorkerIds: readonly string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.updateMembership({ header: requestHeader(this.jobId), liveWorkerIds: [...liveWorkerIds] }, new Metadata(), { deadline: deadline(this.timeoutMs) }, (error) => {
        if (error !== null) reject(fromServiceError(error, `membership update to ${this.address}`));
        else resolve();
      });
    });
  }

  saveShard(directory: string, step: bigint): Promise<{ file: string; bytes: number; crc32: number; version: bigint }> {
    return new Promise((resolve, reject) => {
      this.client.saveShard({ header: requestHeader(this.jobId), directory, step }, new Metadata(), { deadline: deadline(this.timeoutMs) }, (error, r) => {
        if (error !== null) reject(fromServiceError(error, `checkpoint of ${this.address}`));
        else resolve({ file: r.file, bytes: Number(r.bytes), crc32: r.crc32, version: r.version });
      });
    });
  }

  shutdown(reason: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.shutdown({ header: requestHeader(this.jobId), reason }, new Metadata(), { deadline: deadline(this.timeoutMs) }, (error) => {
        if (error !== null) reject(fromServiceError(error, `shutdown of ${this.address}`));
        else resolve();
      });
    });
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
