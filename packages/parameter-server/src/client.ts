/**
 * The client of one ParameterServer shard (ShardClient). All shards of a job
 * through its placement: parameter-client.ts (ParameterClient).
 */
import {
  type AssignRequest,
  type ParameterServerClient as GrpcParameterServerClient,
  type PushRequest,
  type PushResponse,
  type ShardStatusResponse,
} from '@tamp/proto/tamp/v1/parameter_server';
import type { TensorChunk } from '@tamp/proto/tamp/v1/tensor';
import {
  type EncodedTensor,
  type ShardConfig,
  TensorAssembler,
  type WireCodec,
  type WireTensor,
  encodedTensorChunks,
  encodeTensorMessages,
  groupChunks,
  isDeltaPull,
  protoCodec,
} from '@tamp/core/base';
import { type RpcCallOptions, type RpcClientOptions, callClientStream, callServerStream, callUnary, createClient, requestHeader, withRetry } from '@tamp/rpc';
import { FastParameterServerClient, messageChunks } from './wire/fast-codec.js';
import { shardConfigToProto } from './wire/shard-config.js';
import { PullReference } from './wire/pull-reference.js';

export interface CallSettings {
  /** Deadline of one call (ms). */
  readonly callTimeoutMs?: number;
  /** Transport settings (credentials, interceptors). */
  readonly rpc?: RpcClientOptions;
  /** The codec pulls ask for (default fp32; the job's --wire-pull). */
  readonly pullCodec?: WireCodec;
}

type PullOptions = { minVersion?: bigint; step?: bigint; names?: readonly string[]; timeoutMs?: number; codec?: WireCodec; restoreGeneration?: bigint };

/** What ShardClient.assign sends: the shard configuration (kept as a name for existing importers). */
export type AssignSpec = ShardConfig;

export interface PushSpec {
  readonly workerId: string;
  readonly step: bigint;
  readonly basedOnVersion: bigint;
  readonly batchSize: number;
  /** The gradient is DGC's momentum-corrected accumulation (the shard applies it with plain SGD). */
  readonly momentumCorrected?: boolean;
  /** The gradient is the top-k of Adam's accumulated direction (the Adam correction; the shard applies it with plain SGD). */
  readonly adamCorrected?: boolean;
  /** The restore generation the gradient was computed in (ARCHITECTURE.md, "Faults"; default 0). Fixed per call: a retry carries the same one. */
  readonly restoreGeneration?: bigint;
}

/** One shard. */
export class ShardClient {
  readonly address: string;
  private readonly client: GrpcParameterServerClient;
  private readonly jobId: string;
  private readonly timeoutMs: number;
  private readonly pullCodec: WireCodec;
  /** int8 and int4 pulls: the values held and the last pull's number; pulls run one at a time so answers apply in order. */
  private readonly reference = new PullReference();
  private pulling: Promise<unknown> = Promise.resolve();

  constructor(address: string, jobId: string, settings: CallSettings = {}) {
    this.address = address;
    this.jobId = jobId;
    this.timeoutMs = settings.callTimeoutMs ?? 60_000;
    this.pullCodec = settings.pullCodec ?? { kind: 'fp32' };
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

  /** `options.codec`: this pull's codec instead of the client's (--wire auto measures each). */
  pull(workerId: string, options: PullOptions = {}): Promise<{ version: bigint; tensors: WireTensor[] }> {
    if (!isDeltaPull((options.codec ?? this.pullCodec).kind)) return this.pullOnce(workerId, options);
    const next = this.pulling.then(() => this.pullOnce(workerId, options));
    this.pulling = next.catch(() => undefined);
    return next;
  }

  private pullOnce(workerId: string, options: PullOptions): Promise<{ version: bigint; tensors: WireTensor[] }> {
    const kind = (options.codec ?? this.pullCodec).kind;
    const request = {
      header: requestHeader(this.jobId),
      workerId,
      names: [...(options.names ?? [])],
      minVersion: options.minVersion ?? 0n,
      codec: protoCodec(kind),
      step: options.step ?? 0n,
      basePull: isDeltaPull(kind) ? this.reference.seq : 0n,
      restoreGeneration: options.restoreGeneration ?? 0n,
    };
    const reference = this.reference;
    return callServerStream(this.client, 'pull', request, this.call('pull from', options.timeoutMs), () => {
      // fp32 always comes too (whole values: a first int8 or int4 pull, or one whose base the server no longer matches).
      const assembler = new TensorAssembler({ accept: kind === 'fp32' ? [] : [kind] });
      let version: bigint | undefined;
      let seq = 0n;
      return {
        onMessage(msg) {
          version ??= msg.version;
          seq = msg.pullSeq;
          for (const chunk of messageChunks(msg)) assembler.add(chunk);
        },
        finish: () => {
          const tensors = assembler.finish();
          return { version: version ?? 0n, tensors: isDeltaPull(kind) ? reference.apply(seq, tensors) : tensors };
        },
      };
    });
  }

  /** `timeoutMs`: sync pushes wait at the step barrier for the other workers. */
  push(spec: PushSpec, tensors: readonly WireTensor[], timeoutMs = this.timeoutMs): Promise<PushResponse> {
    return this.pushChunks(spec, tensors.length, () => encodeTensorMessages(tensors), timeoutMs);
  }

  /** Push tensors a PushEncoder already encoded (every attempt sends the same bytes). */
  pushEncoded(spec: PushSpec, tensors: readonly EncodedTensor[], timeoutMs = this.timeoutMs): Promise<PushResponse> {
    return this.pushChunks(spec, tensors.length, () => groupChunks(tensors.flatMap((t) => encodedTensorChunks(t))), timeoutMs);
  }

  private pushChunks(spec: PushSpec, tensorCount: number, groups: () => TensorChunk[][], timeoutMs: number): Promise<PushResponse> {
    const header = requestHeader(this.jobId);
    const messages = function* (): Generator<PushRequest> {
      let first = true;
      // Serialized one message at a time, as the stream takes them.
      for (const [chunk, ...moreChunks] of groups()) {
        yield first
          ? {
              header,
              workerId: spec.workerId,
              step: spec.step,
              basedOnVersion: spec.basedOnVersion,
              batchSize: spec.batchSize,
              tensorCount,
              momentumCorrected: spec.momentumCorrected === true,
              adamCorrected: spec.adamCorrected === true,
              chunk,
              moreChunks,
              restoreGeneration: spec.restoreGeneration ?? 0n,
            }
          : { header: undefined, workerId: '', step: 0n, basedOnVersion: 0n, batchSize: 0, tensorCount: 0, momentumCorrected: false, adamCorrected: false, chunk, moreChunks, restoreGeneration: 0n };
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

  /**
   * Save the shard's part of checkpoint `step` under the root fixed at Assign; `directory`: the checkpoint's folder name (checkpointFolderName) or ''.
   * `background`: answered once the state is copied (crc32 0), the file written after (checkpointWriteWait).
   */
  async saveShard(directory: string, step: bigint, background = false): Promise<{ file: string; bytes: number; crc32: number; version: bigint }> {
    const r = await callUnary(this.client, 'saveShard', { header: requestHeader(this.jobId), directory, step, background }, this.call('checkpoint of'));
    return { file: r.file, bytes: Number(r.bytes), crc32: r.crc32, version: r.version };
  }

  /** A background SaveShard's file once it is durably written (its size and CRC-32); fails when the write failed or the server restarted since. */
  async checkpointWriteWait(directory: string, step: bigint, timeoutMs = 600_000): Promise<{ file: string; bytes: number; crc32: number; version: bigint }> {
    const r = await callUnary(this.client, 'checkpointWriteWait', { header: requestHeader(this.jobId), directory, step }, this.call('checkpoint write of', timeoutMs));
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
