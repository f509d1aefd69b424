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
import type { TensorChunk } from '@tamp/proto/tamp/v1/tensor';
import {
  ClusterError,
  type EncodedTensor,
  type Placement,
  type ShardConfig,
  TensorAssembler,
  type WireCodec,
  clipScale,
  type WireTensor,
  encodedTensorChunks,
  encodeTensorMessages,
  groupChunks,
  isDeltaPull,
  protoCodec,
} from '@tamp/core/base';
import { type RpcCallOptions, type RpcClientOptions, callClientStream, callServerStream, callUnary, createClient, requestHeader, withRetry } from '@tamp/rpc';
import { FastParameterServerClient, messageChunks } from './wire/fast-codec.js';
import { reassembleVariables, splitGradients } from './split.js';
import { shardConfigToProto } from './wire/shard-config.js';
import { PullReference } from './wire/pull-reference.js';
import { type AdamMoments, PushEncoder } from './wire/push-encoder.js';
import { type AutoCandidate, type WireChoice, considerTopk, probeWire } from './wire/auto.js';

export interface CallSettings {
  /** Deadline of one call (ms). */
  readonly callTimeoutMs?: number;
  /** Transport settings (credentials, interceptors). */
  readonly rpc?: RpcClientOptions;
  /** The codec pulls ask for (default fp32; the job's --wire-pull). */
  readonly pullCodec?: WireCodec;
}

/** A job's wire codecs as a worker uses them (ParameterClient). */
export interface WireSettings {
  readonly push: WireCodec;
  readonly pull: WireCodec;
  /** topk: DGC's warm-up from dense, in steps. */
  readonly warmupSteps?: number;
  /** int8, int4 and topk keep what they drop for the next step (default true). */
  readonly errorFeedback?: boolean;
  /** topk: scale each step's whole gradient to at most this L2 norm before it is accumulated (DGC's local clipping). */
  readonly clipNorm?: number;
  /** topk: sparsify biases too (default false: they go whole; PushEncoder). */
  readonly sparseBiases?: boolean;
  /** `--wire auto`: measure the link before the first step and pick fp32, fp16, int8, int4 or top-k (wire/auto.ts); push and pull are ignored. */
  readonly auto?: boolean;
  /** DGC's momentum correction (the job's ShardConfig.momentumCorrection): top-k pushes keep this momentum factor here and are marked momentum-corrected. */
  readonly momentum?: number;
  /** The Adam correction (the job's ShardConfig.adamCorrection: top-k, or --wire auto): top-k pushes keep Adam's moments here, with these settings, and are marked Adam-corrected. */
  readonly adam?: AdamMoments;
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

export interface PulledParameters {
  /** Whole variables by name. */
  readonly values: Map<string, Float32Array>;
  /** Version of each shard's snapshot. */
  readonly versions: bigint[];
}

/** Every shard of a job, through the job's placement. */
export class ParameterClient {
  /** One client per shard, in shard order (retarget replaces one: a failover moved its shard). */
  readonly shards: ShardClient[];
  private readonly jobId: string;
  private readonly settings: CallSettings;
  private readonly placement: Placement;
  private readonly retryMs: number;
  private encoder: PushEncoder | undefined;
  private pullCodec: WireCodec | undefined;
  private readonly wire: WireSettings | undefined;
  private deciding: Promise<WireChoice> | undefined;
  /** --wire auto: the probe's times, kept until the first push has considered top-k (wire/auto.ts's considerTopk). */
  private probed: { times: Record<AutoCandidate, number>; firstPulledAt?: number } | undefined;
  /** --wire auto: what was chosen and why (undefined until the first pull has measured). */
  wireChoice: WireChoice | undefined;

  constructor(addresses: readonly string[], placement: Placement, jobId: string, settings: CallSettings & { retryMs?: number; wire?: WireSettings } = {}) {
    if (addresses.length !== placement.shards.length) {
      throw new ClusterError('CLUSTER_CONFIG', `${addresses.length} parameter server addresses for a placement over ${placement.shards.length} shards: give one address per shard, in shard order`);
    }
    const wire = settings.wire;
    this.wire = wire;
    this.shards = addresses.map((a) => new ShardClient(a, jobId, settings));
    this.jobId = jobId;
    this.settings = settings;
    if (wire !== undefined && wire.auto !== true) this.useCodecs(wire.push, wire.pull);
    this.placement = placement;
    this.retryMs = settings.retryMs ?? 60_000;
  }

  close(): void {
    for (const s of this.shards) s.close();
  }

  /**
   * Send shard `index`'s calls to `address` from now on (--ps-replicas 1: its
   * backup was promoted). Calls being retried take the new address at their
   * next attempt. int8 and int4 pulls start again from whole values there.
   */
  retarget(index: number, address: string): void {
    const old = this.shards[index];
    if (old === undefined || old.address === address) return;
    this.shards[index] = new ShardClient(address, this.jobId, { ...this.settings, ...(this.pullCodec !== undefined ? { pullCodec: this.pullCodec } : {}) });
    old.close();
  }

  /** Shard `index`'s client now (a retry re-reads it, so it follows a retarget). */
  private shard(index: number): ShardClient {
    // Internal invariant: indices come from this.shards itself.
    const s = this.shards[index];
    if (s === undefined) throw new Error(`no shard ${index}`);
    return s;
  }

  private useCodecs(push: WireCodec, pull: WireCodec): void {
    const wire = this.wire;
    this.pullCodec = pull;
    this.encoder =
      push.kind === 'fp32'
        ? undefined
        : new PushEncoder({
            codec: push,
            ...(wire?.warmupSteps !== undefined ? { warmupSteps: wire.warmupSteps } : {}),
            ...(wire?.errorFeedback !== undefined ? { errorFeedback: wire.errorFeedback } : {}),
            ...(wire?.momentum !== undefined ? { momentum: wire.momentum } : {}),
            ...(wire?.adam !== undefined ? { adam: wire.adam } : {}),
            ...(wire?.sparseBiases === true ? { sparseBiases: true } : {}),
          });
  }

  /** --wire auto: time whole pulls of every shard in each candidate codec (wire/auto.ts's probeWire), then use what it chose. */
  private async decide(workerId: string): Promise<WireChoice> {
    const { choice, times } = await probeWire(async (kind) => {
      const pulled = await Promise.all(this.shards.map((s) => withRetry(() => s.pull(workerId, { codec: { kind } }), { deadlineMs: this.retryMs })));
      return pulled.reduce((n, p) => n + p.tensors.reduce((m, t) => m + t.data.byteLength, 0), 0);
    });
    this.useCodecs(choice.push, choice.pull);
    this.wireChoice = choice;
    this.probed = { times };
    return choice;
  }

  /** --wire auto, at the first push: top-k when int8 or int4 still leaves the step dominated by communication (wire/auto.ts). */
  private reconsider(): void {
    const probed = this.probed;
    const choice = this.wireChoice;
    this.probed = undefined;
    if (probed?.firstPulledAt === undefined || choice === undefined) return;
    const m = this.wire?.momentum;
    const corrections =
      m !== undefined && m > 0
        ? `momentum correction on (m=${m}: the servers apply plain SGD to these pushes)`
        : this.wire?.adam !== undefined
          ? "the Adam correction (this worker keeps Adam's moments and pushes the top-k of Adam's direction; the servers apply plain SGD to it)"
          : "no momentum correction (the job's optimizer keeps its state on the servers)";
    const dgc = `DGC's warm-up from dense over ${this.wire?.warmupSteps ?? 0} steps, error feedback, ${corrections}`;
    const next = considerTopk(choice, probed.times, performance.now() - probed.firstPulledAt, dgc);
    if (next.push.kind !== choice.push.kind) this.useCodecs(next.push, next.pull);
    this.wireChoice = next;
  }

  /** Pull every shard (concurrently) and reassemble whole variables. */
  async pullAll(workerId: string, options: { minVersions?: readonly bigint[]; step?: bigint; timeoutMs?: number; restoreGeneration?: bigint } = {}): Promise<PulledParameters> {
    if (this.wire?.auto === true) await (this.deciding ??= this.decide(workerId));
    const codec = this.pullCodec;
    const results = await Promise.all(
      this.shards.map((_, i) =>
        withRetry(
          () =>
            this.shard(i).pull(workerId, {
              minVersion: options.minVersions?.[i] ?? 0n,
              ...(options.step !== undefined ? { step: options.step } : {}),
              ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
              ...(codec !== undefined ? { codec } : {}),
              ...(options.restoreGeneration !== undefined ? { restoreGeneration: options.restoreGeneration } : {}),
            }),
          { deadlineMs: Math.max(this.retryMs, options.timeoutMs ?? 0) },
        ),
      ),
    );
    const values = reassembleVariables(this.placement, results.map((r) => r.tensors));
    if (this.probed !== undefined) this.probed.firstPulledAt ??= performance.now();
    return { values, versions: results.map((r) => r.version) };
  }

  /** The tensors shard `index` expects, cut from whole gradients. */
  partsFor(index: number, grads: ReadonlyMap<string, Float32Array>): WireTensor[] {
    return splitGradients(this.placement, index, grads);
  }

  /** Push a whole gradient to every shard (concurrently). Retried pushes are applied once. */
  async pushAll(
    spec: Omit<PushSpec, 'basedOnVersion'> & { basedOnVersions: readonly bigint[]; timeoutMs?: number },
    whole: ReadonlyMap<string, Float32Array>,
  ): Promise<PushResponse[]> {
    let grads = whole;
    if (this.probed !== undefined) this.reconsider();
    const encoder = this.encoder;
    const clipNorm = encoder?.codec.kind === 'topk' ? this.wire?.clipNorm : undefined;
    if (clipNorm !== undefined) grads = clipped(grads, clipNorm);
    return Promise.all(
      this.shards.map((_, i) => {
        const push = {
          workerId: spec.workerId,
          step: spec.step,
          batchSize: spec.batchSize,
          basedOnVersion: spec.basedOnVersions[i] ?? 0n,
          momentumCorrected: encoder?.momentumCorrected === true,
          adamCorrected: encoder?.adamCorrected === true,
          restoreGeneration: spec.restoreGeneration ?? 0n,
        };
        const parts = this.partsFor(i, grads);
        // Encoded once, before any retry: the encoder's error feedback sees each gradient once.
        const encoded = encoder?.encode(parts, spec.step);
        return withRetry(() => (encoded === undefined ? this.shard(i).push(push, parts, spec.timeoutMs) : this.shard(i).pushEncoded(push, encoded, spec.timeoutMs)), {
          deadlineMs: Math.max(this.retryMs, spec.timeoutMs ?? 0),
        });
      }),
    );
  }
}

/** The gradient scaled to at most `maxNorm` (core's clipScale over all of it), or itself when already within. */
function clipped(grads: ReadonlyMap<string, Float32Array>, maxNorm: number): ReadonlyMap<string, Float32Array> {
  const scale = clipScale([...grads.values()], maxNorm);
  if (scale === 1) return grads;
  return new Map([...grads].map(([name, g]) => [name, g.map((x) => x * scale)]));
}
