/**
 * One parameter-server shard: the state a ParameterServer serves. Its parts
 * live in ShardStorage (shard/storage.ts), pushes are checked completely by
 * shard/validation.ts, applied once per (worker id, step) (shard/idempotency.ts)
 * and combined by the consistency policy its mode names (shard/consistency/).
 *
 * Every request is validated completely before anything changes, so a
 * refused push or assign leaves the shard exactly as it was.
 */
import {
  CHIEF_READER_ID,
  ClusterError,
  type ConsistencyMode,
  type DeltaPullKind,
  type OptimizerName,
  CodecError,
  type EncodedTensor,
  type ShardConfig,
  type WireCodec,
  type WireCodecKind,
  type WireTensor,
  checkShardConfig,
  formatWireCodec,
} from '@tamp/core/base';
import { CounterSet, type ShardCounters } from './shard/counters.js';
import { type ConsistencyPolicy, POLICIES, type PolicyHost, type PushOutcome } from './shard/consistency/index.js';
import { SeenPushes } from './shard/idempotency.js';
import { PullDeltas } from './shard/pull-deltas.js';
import { type ShardPart, ShardStorage } from './shard/storage.js';
import { type PushMeta, checkKnownWorker, refuseUnagreedCorrection, validatePush } from './shard/validation.js';
import { Waiters } from './shard/waiters.js';
import { type ReplicaCopy, type ReplicaRecord, type ReplicaSink, type SeenPush, applyRecord, replicaCopy } from './shard/replication.js';
import type { KernelKind } from './optimizers/wasm-kernels.js';

export type { ShardCounters } from './shard/counters.js';
export { type PushOutcome, weightedSum } from './shard/consistency/index.js';
export type { ShardPart } from './shard/storage.js';
export type { ReplicaCopy, ReplicaRecord, ReplicaSink, SeenPush } from './shard/replication.js';
export { type PushMeta, firstNonFinite } from './shard/validation.js';
// The cluster vocabulary moved to @tamp/core (cluster/); still exported here for importers of @tamp/parameter-server.
export { CHIEF_READER_ID, CONSISTENCY_MODES, type ConsistencyMode, OPTIMIZER_STATE_TENSOR, type ShardConfig } from '@tamp/core/base';

/** Everything an Assign sets, replaced as one unit. */
interface Assigned {
  readonly config: ShardConfig;
  readonly storage: ShardStorage;
  readonly policy: ConsistencyPolicy;
}

const FP32: WireCodec = { kind: 'fp32' };
/** What `--wire auto` may choose besides fp32: top-k only for pushes, on a link too slow for int8 (wire/auto.ts). */
const AUTO_PUSH_KINDS: readonly WireCodecKind[] = ['fp16', 'int8', 'int4', 'topk'];
const AUTO_PULL_KINDS: readonly WireCodecKind[] = ['fp16', 'int8', 'int4'];

export class Shard {
  readonly index: number;
  private state: Assigned | undefined;
  private seen = new SeenPushes();
  private currentVersion = 0n;
  private readonly waiters = new Waiters();
  /** Workers still training (the chief's view); sync and ssp wait only for these. */
  private live = new Set<string>();
  private readonly counterSet = new CounterSet();
  /** int8 pulls: what each worker holds (shard/pull-deltas.ts). */
  private readonly deltas = new PullDeltas();
  /** A backup (--ps-replicas 1) takes its primary's updates only, until promoted; workers are refused. */
  private backupOf: 'backup' | undefined;
  /** A primary's forwarder to its backup (undefined: not replicated). */
  private sink: ReplicaSink | undefined;
  /** Failed over while alive (ReplicaForwarder found its backup promoted). */
  private deposed = false;
  /** Pushes marked seen since the last update forwarded. */
  private unforwarded: SeenPush[] = [];

  constructor(index: number, role: 'primary' | 'backup' = 'primary') {
    this.index = index;
    if (role === 'backup') this.backupOf = 'backup';
  }

  /** Whether this shard is a backup not (yet) promoted. */
  get isBackup(): boolean {
    return this.backupOf !== undefined;
  }

  get initialized(): boolean {
    return this.state !== undefined;
  }

  get version(): bigint {
    return this.currentVersion;
  }

  get mode(): ConsistencyMode | undefined {
    return this.state?.config.mode;
  }

  get optimizerName(): OptimizerName | undefined {
    return this.state?.storage.optimizer.name;
  }

  /** The optimizer's slot names, in the order each part's slots are kept. */
  get slotNames(): readonly string[] | undefined {
    return this.state?.storage.optimizer.slotNames;
  }

  /** Where the optimizer's update loops run (undefined before the first assign). */
  get kernels(): KernelKind | undefined {
    return this.state?.storage.optimizer.kernels;
  }

  get workerIds(): readonly string[] {
    return this.state?.config.workerIds ?? [];
  }

  get partList(): readonly ShardPart[] {
    return [...(this.state?.storage.parts.values() ?? [])];
  }

  /** Bytes of the shard's variables (0 before the first assign). */
  get bytes(): number {
    return this.state?.storage.bytes ?? 0;
  }

  /** The configuration it was assigned (for checkpoints). */
  get shardConfig(): ShardConfig | undefined {
    return this.state?.config;
  }

  /** The job's gradient codec (fp32 before the first assign). */
  get wirePush(): WireCodec {
    return this.state?.config.wirePush ?? FP32;
  }

  /** The job's parameter codec (fp32 before the first assign). */
  get wirePull(): WireCodec {
    return this.state?.config.wirePull ?? FP32;
  }

  /** `--wire auto`: every worker picks fp32, fp16, int8 or int4 (and maybe top-k pushes) for itself. */
  get wireAuto(): boolean {
    return this.state?.config.wireAuto === true;
  }

  /** Codecs a push may carry: fp32 and the job's push codec (fp16, int8, int4 and top-k under --wire auto). */
  get pushCodecs(): readonly WireCodecKind[] {
    return this.wireAuto ? AUTO_PUSH_KINDS : [this.wirePush.kind];
  }

  /** Refuse a pull in a codec the job did not agree to (fp32 is always served). */
  checkPullCodec(kind: WireCodecKind): void {
    if (kind === 'fp32' || (this.wireAuto ? AUTO_PULL_KINDS.includes(kind) : kind === this.wirePull.kind)) return;
    const agreed = this.wireAuto ? 'auto: fp32, fp16, int8 or int4' : formatWireCodec(this.wirePull);
    throw new CodecError('CODEC_UNSUPPORTED', `pull: codec ${kind} is not this job's (it pulls ${agreed}); run every role with the chief's --wire-pull`);
  }

  /** An int8 or int4 pull by `workerId`: changes since its pull `basePull`, or whole values (shard/pull-deltas.ts). */
  deltaPull(workerId: string, names: readonly string[], basePull: bigint, kind: DeltaPullKind): { seq: bigint; tensors: EncodedTensor[] } {
    return this.deltas.encode(workerId, this.liveParts(names), basePull, kind);
  }

  /** Count a complete push's payload bytes as received. */
  recordPushBytes(bytes: number): void {
    this.counterSet.pushReceived(bytes);
  }

  /** Count a worker pull's payload bytes as sent. */
  recordPullBytes(bytes: number): void {
    this.counterSet.pullServed(bytes);
  }

  /** A snapshot of the counters (ShardStatus); they change only through the shard. */
  get counters(): ShardCounters {
    return this.counterSet.snapshot();
  }

  /** Count a push the server refused before it reached the shard (a broken stream, too many bytes, an invalid push). */
  recordRefused(): void {
    this.counterSet.refused();
  }

  optimizerState(): Record<string, number> {
    return this.state?.storage.optimizer.globalState() ?? {};
  }

  /**
   * Replace the shard's whole state: variables (plain names), optimizer slots
   * ("<name>:<slot>", optional: fresh slots otherwise) and optimizer state
   * (OPTIMIZER_STATE_TENSOR, optional).
   */
  assign(config: ShardConfig, tensors: readonly WireTensor[]): void {
    if (config.shardIndex !== this.index) {
      throw new ClusterError('CLUSTER_CONFIG', `assign: shard ${config.shardIndex}'s variables reached parameter server ${this.index}; check the order of the ps addresses`);
    }
    checkShardConfig(config);
    const storage = ShardStorage.build(config, tensors);
    const own: ShardConfig = { ...config, workerIds: [...config.workerIds] };
    const policy = POLICIES[own.mode](this.host(own, storage));
    // All checked: switch over as one unit. A reassign is a restore (a parameter
    // server came back): requests held for the old state may never be answered by
    // the new one, so they are refused and their workers continue from its step.
    if (this.state !== undefined) {
      const restored = new ClusterError(
        'ROLLED_BACK',
        `shard ${this.index} was restored to version ${config.version} (restore generation ${config.restoreGeneration ?? 0n}) by the chief (a parameter server came back); ask the chief for the current generation and step and continue from there`,
      );
      this.state.policy.release(restored);
      this.waiters.rejectAll(restored);
    }
    this.state = { config: own, storage, policy };
    // A reassign (a restore) changes the state under any backup: replication stops, and the chief copies it afresh (replica-chain.ts).
    this.sink = undefined;
    this.unforwarded = [];
    this.seen = new SeenPushes();
    this.deltas.clear();
    this.live = new Set(own.workerIds);
    this.currentVersion = config.version;
    this.waiters.wake();
  }

  private host(config: ShardConfig, storage: ShardStorage): PolicyHost {
    return {
      index: this.index,
      config,
      version: () => this.currentVersion,
      live: () => this.live,
      parts: () => storage.parts,
      markSeen: (workerId, step) => {
        this.seen.add(workerId, step);
        if (this.sink !== undefined) this.unforwarded.push({ workerId, step });
      },
      check: (grads, what, corrected) => {
        try {
          storage.refuseNonFinite(grads, what, corrected);
        } catch (error) {
          this.counterSet.nonFinite();
          throw error;
        }
      },
      apply: (grads, corrected) => this.applyGradients(grads, corrected),
      skip: () => {
        this.currentVersion += 1n;
        this.forward(true, undefined, undefined);
        this.waiters.wake();
        return this.currentVersion;
      },
      counters: this.counterSet,
      waitUntil: (ready, signal, why) => this.waiters.until(ready, signal, why),
    };
  }

  /** The job's restore generation its last Assign set (0: never restored). */
  get restoreGeneration(): bigint {
    return this.state?.config.restoreGeneration ?? 0n;
  }

  /**
   * Refuse a worker's request made in another restore generation than this
   * shard's (ARCHITECTURE.md, "Faults"): an older one was computed from state
   * the chief has since rolled back (ROLLED_BACK: the worker asks the chief
   * where to continue); a newer one reached this shard before the chief's
   * restore did (sync: NOT_READY, which the client retries; async and ssp
   * restore only the lost shard, so the others stay at older generations and
   * serve it). The chief's own reads are not in any generation.
   */
  checkGeneration(readerId: string, generation: bigint, what: string): void {
    if (readerId === CHIEF_READER_ID) return;
    const { config } = this.require(what);
    const own = config.restoreGeneration ?? 0n;
    if (generation < own) {
      throw new ClusterError(
        'ROLLED_BACK',
        `${what} from ${readerId}: made in restore generation ${generation}, but shard ${this.index} was restored from a checkpoint since (generation ${own}, version ${this.currentVersion}); ask the chief for the current generation and step and continue from there`,
      );
    }
    if (generation > own && config.mode === 'sync') {
      throw new ClusterError('NOT_READY', `${what} from ${readerId}: shard ${this.index} is not yet restored to generation ${generation} (at ${own}); retry`);
    }
  }

  get liveWorkers(): readonly string[] {
    return [...this.live];
  }

  /** The chief's view of which workers are training; may complete a sync step or release ssp waits. */
  setLive(ids: readonly string[]): void {
    const { config, policy } = this.require('updateMembership');
    const unknown = ids.filter((id) => !config.workerIds.includes(id));
    if (unknown.length > 0) throw new ClusterError('UNKNOWN_WORKER', `updateMembership: ${unknown.join(', ')} not part of this job`);
    this.live = new Set(ids);
    policy.membershipChanged();
    this.waiters.wake();
  }

  private require(what: string): Assigned {
    if (this.state === undefined) throw new ClusterError('NOT_READY', `${what}: parameter server shard ${this.index} has not been initialised by the chief yet`);
    return this.state;
  }

  /** Check that `id` may read this shard. */
  checkReader(id: string): void {
    const { config } = this.require('pull');
    if (id !== CHIEF_READER_ID) checkKnownWorker(config.workerIds, id, 'pull');
  }

  /**
   * The shard's variables (all, or the named ones) as tensors viewing the
   * live values: read them before anything else runs, or use snapshot().
   */
  liveParts(names: readonly string[] = []): WireTensor[] {
    const { storage } = this.require('pull');
    const wanted = new Set(names);
    for (const n of wanted) {
      if (!storage.holdsVariable(n)) throw new ClusterError('UNKNOWN_VARIABLE', `pull: this shard holds no variable "${n}"`);
    }
    const tensors: WireTensor[] = [];
    for (const p of storage.parts.values()) {
      if (wanted.size > 0 && !wanted.has(p.name)) continue;
      tensors.push({ name: p.name, shape: p.shape, dtype: 'float32', data: p.value, sliceStart: p.sliceStart });
    }
    return tensors;
  }

  /** Copies of the shard's variables (all, or the named ones) at the current version. */
  snapshot(names: readonly string[] = []): { version: bigint; tensors: WireTensor[] } {
    const tensors = this.liveParts(names).map((t) => ({ ...t, data: t.data.slice() }));
    return { version: this.currentVersion, tensors };
  }

  /**
   * Validate a complete push: a known worker, exactly the shard's parts,
   * right shapes and dtype, finite values. Returns the gradients by part key.
   */
  validatePush(meta: PushMeta, tensors: readonly WireTensor[]): Map<string, Float32Array> {
    const { config, storage } = this.require('push');
    refuseUnagreedCorrection(meta, config);
    return validatePush({ index: this.index, workerIds: config.workerIds, parts: storage.parts }, meta, tensors);
  }

  isDuplicate(workerId: string, step: bigint): boolean {
    return this.seen.has(workerId, step);
  }

  /**
   * Apply one gradient per part (already validated, and checked by the policy
   * for a non-finite result) as one optimizer step; `corrected`
   * (momentum-corrected pushes) with plain SGD in the same step.
   */
  applyGradients(grads: ReadonlyMap<string, Float32Array> | undefined, corrected?: ReadonlyMap<string, Float32Array>): bigint {
    this.require('push').storage.apply(grads, corrected);
    this.currentVersion += 1n;
    this.counterSet.applied();
    this.forward(false, grads, corrected);
    this.waiters.wake();
    return this.currentVersion;
  }

  /** Hand the update just applied to the backup (no-op unreplicated). */
  private forward(skip: boolean, grads: ReadonlyMap<string, Float32Array> | undefined, corrected: ReadonlyMap<string, Float32Array> | undefined): void {
    if (this.sink === undefined) return;
    const seen = this.unforwarded;
    this.unforwarded = [];
    this.sink.forward({ version: this.currentVersion, skip, grads, corrected, seen });
  }

  /**
   * Replicate to `sink` from now on (undefined: stop). Returns what the
   * backup must first be given, taken in this same synchronous turn so no
   * update falls between it and the first record forwarded: copies of the
   * whole state, and every (worker, step) remembered.
   */
  replicateTo(sink: ReplicaSink | undefined): ReplicaCopy | undefined {
    this.sink = sink;
    this.unforwarded = [];
    if (sink === undefined || this.state === undefined) return undefined;
    return replicaCopy(this.state.config, this.state.storage, this.currentVersion, this.seen);
  }

  /**
   * A backup takes one record of its primary: the next version is applied
   * as the primary applied it (same optimizer, same loops: bit-identical);
   * one already held is acknowledged again; a gap is refused (the primary
   * sends in order, so a gap means this backup missed its copy).
   */
  applyReplicated(record: ReplicaRecord, tensors: readonly WireTensor[]): bigint {
    const { storage, policy } = this.require('replica apply');
    for (const p of record.seen) {
      this.seen.add(p.workerId, p.step);
      policy.replicated(p.workerId, p.step);
    }
    if (record.version <= this.currentVersion) return this.currentVersion;
    if (record.version !== this.currentVersion + 1n) {
      throw new ClusterError('NOT_READY', `replica apply: update ${record.version} reached backup of shard ${this.index} at version ${this.currentVersion}; the primary copies its state first`);
    }
    if (!record.skip) {
      applyRecord(storage, tensors);
      this.counterSet.applied();
    }
    this.currentVersion = record.version;
    this.waiters.wake();
    return this.currentVersion;
  }

  /** A backup becomes its shard's primary (the chief's ReplicaPromote): it serves workers from its own state, with the chief's membership. */
  promote(liveWorkerIds: readonly string[]): void {
    this.require('replica promote');
    this.backupOf = undefined;
    this.setLive(liveWorkerIds);
  }

  /** This primary was failed over (its backup promoted while it lived): workers are refused from now on. */
  depose(): void {
    this.deposed = true;
  }

  /** Refuse a worker's request to a backup not promoted, or to a primary deposed (the chief's reads pass). */
  checkServing(readerId: string, what: string): void {
    if (readerId === CHIEF_READER_ID) return;
    if (this.deposed) throw new ClusterError('NOT_READY', `${what} from ${readerId}: shard ${this.index} was failed over to its backup; ask the chief for the shard's address`);
    if (this.backupOf !== undefined) throw new ClusterError('NOT_READY', `${what} from ${readerId}: this is the backup of shard ${this.index}, not (yet) its primary; ask the chief for the shard's address`);
  }

  /**
   * Take a validated push: a retry of one already taken is answered as a
   * duplicate, anything else goes to the mode's policy (async and ssp apply
   * at once; sync holds it for the step's barrier). A policy counts the
   * pushes it refuses.
   */
  acceptPush(meta: PushMeta, grads: ReadonlyMap<string, Float32Array>): Promise<PushOutcome> {
    const { policy } = this.require('push');
    let outcome: Promise<PushOutcome>;
    if (this.seen.has(meta.workerId, meta.step)) {
      this.counterSet.duplicate();
      outcome = policy.duplicate(meta);
    } else {
      outcome = policy.accept(meta, grads);
    }
    // Replicated: answered only once the backup holds the version the answer names, so no acknowledged update can be lost.
    const sink = this.sink;
    return sink === undefined ? outcome : outcome.then(async (o) => (await sink.acked(o.version), o));
  }

  /** Whether a pull by `readerId` may have to wait (for a version, or at the mode's gate). */
  pullMayWait(readerId: string, minVersion: bigint): boolean {
    return minVersion > this.currentVersion || (readerId !== CHIEF_READER_ID && this.state?.policy.gatesPulls === true);
  }

  /**
   * Resolve once a pull may be answered: the version has reached
   * `minVersion`, and a worker (not the chief) has passed the mode's gate
   * for `step` (ssp's staleness bound). Rejects NOT_READY when the signal aborts.
   */
  async beforePull(readerId: string, step: bigint, minVersion: bigint, signal?: AbortSignal): Promise<void> {
    const { policy } = this.require('pull');
    if (minVersion > this.currentVersion) await this.waitForVersion(minVersion, signal);
    if (readerId !== CHIEF_READER_ID) await policy.beforePull(readerId, step, signal);
  }

  /** Resolve once the version reaches `min` (or the signal aborts). */
  waitForVersion(min: bigint, signal?: AbortSignal): Promise<void> {
    return this.waiters.until(() => this.currentVersion >= min, signal, () => `pull: gave up waiting for version ${min} (shard at ${this.currentVersion})`);
  }
}
