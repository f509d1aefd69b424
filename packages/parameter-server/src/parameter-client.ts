/**
 * All shards of a job through its placement (ParameterClient), over one
 * ShardClient (client.ts) each: splits gradients into the parts each shard
 * holds, encodes them in the job's push codec once per step, and reassembles
 * pulled slices; under --wire auto it probes the links and picks the codecs.
 */
import { ClusterError, type Placement, type WireCodec, clipScale, type WireTensor } from '@tamp/core/base';
import type { PushResponse } from '@tamp/proto/tamp/v1/parameter_server';
import { withRetry } from '@tamp/rpc';
import { type CallSettings, type PushSpec, ShardClient } from './client.js';
import { reassembleVariables, splitGradients } from './split.js';
import { type AdamMoments, PushEncoder } from './wire/push-encoder.js';
import { type AutoCandidate, type WireChoice, considerTopk, probeWire } from './wire/auto.js';

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
