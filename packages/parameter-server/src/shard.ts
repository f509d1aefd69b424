/**
 * One parameter-server shard: its variable parts, their optimizer slots, the
 * version (updates applied) and the bookkeeping that makes pushes idempotent.
 *
 * Every request is validated completely before anything changes, so a
 * refused push or assign leaves the shard exactly as it was.
 */
import { ClusterError, InvalidArgumentError, type OptimizerName, type OptimizerSettings, type WireTensor, sizeOfShape } from '@tamp/core';
import { type ServerOptimizer, createServerOptimizer } from './optimizers/index.js';
import { KernelArena, type KernelKind, allocFloats } from './optimizers/wasm-kernels.js';
import { partKey } from './placement.js';

export const CONSISTENCY_MODES = Object.freeze(['async', 'sync', 'ssp'] as const);
export type ConsistencyMode = (typeof CONSISTENCY_MODES)[number];

/** Id the chief uses to read a shard (evaluation, final model, checkpoints). */
export const CHIEF_READER_ID = 'chief';

/** Name of the pseudo-tensor holding optimizer state shared by all variables (Adam's β powers). */
export const OPTIMIZER_STATE_TENSOR = ':optimizer';

export interface ShardConfig {
  readonly optimizer: OptimizerSettings;
  readonly version: bigint;
  readonly mode: ConsistencyMode;
  /** sync: gradients per step when every worker is alive (workers less backups). */
  readonly syncReplicas: number;
  /** ssp: how many steps a worker may run ahead of the slowest. */
  readonly staleness: number;
  readonly workerIds: readonly string[];
  /** Step every worker starts at (non-zero after a resume). */
  readonly workerStep?: bigint;
}

export interface ShardPart {
  readonly name: string;
  readonly shape: readonly number[];
  readonly sliceStart: number;
  readonly sliceLength: number;
  readonly value: Float32Array;
  readonly slots: Float32Array[];
}

export interface PushMeta {
  readonly workerId: string;
  readonly step: bigint;
  readonly basedOnVersion: bigint;
  readonly batchSize: number;
  readonly tensorCount: number;
}

export interface PushOutcome {
  readonly version: bigint;
  readonly duplicate: boolean;
  readonly dropped: boolean;
}

export interface ShardCounters {
  applied: bigint;
  duplicate: bigint;
  dropped: bigint;
  refused: bigint;
  pullsWaited: bigint;
  maxLead: bigint;
}

interface PendingGradient {
  readonly workerId: string;
  readonly batchSize: number;
  readonly grads: ReadonlyMap<string, Float32Array>;
  readonly resolvers: Array<(o: PushOutcome) => void>;
}

const FINITE_BLOCK = 4096;

/**
 * Index of the first NaN or ±Infinity in `data`, or -1. Sums x·0 over blocks
 * of elements (0 for every finite x, NaN for NaN and ±Infinity), a loop
 * without branches that V8 runs at about 5 GB/s here (a compare per element
 * ran at 2-3.5 GB/s); only a block whose sum is not 0 is searched element by
 * element. A push pays this for every megabyte it carries.
 */
export function firstNonFinite(data: Float32Array): number {
  const n = data.length;
  for (let start = 0; start < n; start += FINITE_BLOCK) {
    const end = Math.min(n, start + FINITE_BLOCK);
    let sum = 0;
    for (let i = start; i < end; i++) sum += (data[i] as number) * 0;
    if (sum !== 0) {
      for (let i = start; i < end; i++) if (!Number.isFinite(data[i] as number)) return i;
    }
  }
  return -1;
}

/**
 * out[i] = Σₖ weights[k]·grads[k][i], summed in double precision in k order
 * and rounded to float32 once. Two contributions (the common case) get their
 * own loop; no double-precision scratch array is allocated.
 */
export function weightedSum(out: Float32Array, grads: readonly Float32Array[], weights: readonly number[]): void {
  const n = out.length;
  if (grads.length === 2) {
    const [a, b] = grads as [Float32Array, Float32Array];
    const [wa, wb] = weights as [number, number];
    for (let i = 0; i < n; i++) out[i] = wa * (a[i] as number) + wb * (b[i] as number);
    return;
  }
  const k = grads.length;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += (weights[j] as number) * ((grads[j] as Float32Array)[i] as number);
    out[i] = sum;
  }
}

/** How many past steps per worker are remembered for idempotency; older ones count as duplicates. */
const SEEN_WINDOW = 4096n;

class SeenSteps {
  private max = -1n;
  private readonly recent = new Set<bigint>();

  has(step: bigint): boolean {
    return step <= this.max - SEEN_WINDOW || this.recent.has(step);
  }

  add(step: bigint): void {
    this.recent.add(step);
    if (step > this.max) this.max = step;
    if (this.recent.size > Number(SEEN_WINDOW)) {
      for (const s of this.recent) if (s <= this.max - SEEN_WINDOW) this.recent.delete(s);
    }
  }
}

export class Shard {
  readonly index: number;
  private parts = new Map<string, ShardPart>();
  private config: ShardConfig | undefined;
  private optimizer: ServerOptimizer | undefined;
  private seen = new Map<string, SeenSteps>();
  private currentVersion = 0n;
  private waiters: Array<{ ready: () => boolean; resolve: () => void }> = [];
  /** Workers still training (the chief's view); sync and ssp wait only for these. */
  private live = new Set<string>();
  /** Per worker: the next step it will push (ssp measures leads with it). */
  private nextStep = new Map<string, bigint>();
  /** sync: gradients received for the current step, by worker. */
  private pending = new Map<string, PendingGradient>();
  readonly counters: ShardCounters = { applied: 0n, duplicate: 0n, dropped: 0n, refused: 0n, pullsWaited: 0n, maxLead: 0n };

  constructor(index: number) {
    this.index = index;
  }

  get initialized(): boolean {
    return this.config !== undefined;
  }

  get version(): bigint {
    return this.currentVersion;
  }

  get mode(): ConsistencyMode | undefined {
    return this.config?.mode;
  }

  get optimizerName(): OptimizerName | undefined {
    return this.optimizer?.name;
  }

  /** The optimizer's slot names, in the order each part's slots are kept. */
  get slotNames(): readonly string[] | undefined {
    return this.optimizer?.slotNames;
  }

  /** Where the optimizer's update loops run (undefined before the first assign). */
  get kernels(): KernelKind | undefined {
    return this.optimizer?.kernels;
  }

  get workerIds(): readonly string[] {
    return this.config?.workerIds ?? [];
  }

  get partList(): readonly ShardPart[] {
    return [...this.parts.values()];
  }

  /** The configuration it was assigned (for checkpoints). */
  get shardConfig(): ShardConfig | undefined {
    return this.config;
  }

  optimizerState(): Record<string, number> {
    return this.optimizer?.globalState() ?? {};
  }

  /**
   * Replace the shard's whole state: variables (plain names), optimizer slots
   * ("<name>:<slot>", optional: fresh slots otherwise) and optimizer state
   * (OPTIMIZER_STATE_TENSOR, optional).
   */
  assign(config: ShardConfig, tensors: readonly WireTensor[]): void {
    if (config.workerIds.length === 0) throw new InvalidArgumentError('assign: the job has no workers');
    if (config.mode === 'sync' && (config.syncReplicas < 1 || config.syncReplicas > config.workerIds.length)) {
      throw new InvalidArgumentError(`assign: sync needs 1..${config.workerIds.length} replicas per step, got ${config.syncReplicas}`);
    }
    const slotNames = createServerOptimizer(config.optimizer).slotNames;
    const values = new Map<string, WireTensor>();
    const slotTensors = new Map<string, WireTensor>();
    let globalState: Record<string, number> | undefined;
    for (const t of tensors) {
      if (t.dtype !== 'float32') throw new InvalidArgumentError(`assign: tensor "${t.name}" is ${t.dtype}, expected float32`);
      if (t.name === OPTIMIZER_STATE_TENSOR) {
        const [accBeta1, accBeta2] = t.data;
        globalState = { accBeta1: accBeta1 ?? NaN, accBeta2: accBeta2 ?? NaN };
        continue;
      }
      const colon = t.name.lastIndexOf(':');
      const target = colon === -1 ? values : slotTensors;
      const key = partKey(t.name, t.sliceStart);
      if (target.has(key)) throw new InvalidArgumentError(`assign: tensor "${t.name}" (slice at ${t.sliceStart}) appears twice`);
      target.set(key, t);
    }
    if (values.size === 0) throw new InvalidArgumentError('assign: no variables');
    // Check everything first: which slots are given, and that they fit.
    const planned: Array<{ key: string; t: WireTensor; given: Array<WireTensor | undefined> }> = [];
    for (const [key, t] of values) {
      if (sizeOfShape(t.shape) < t.sliceStart + t.data.length) throw new InvalidArgumentError(`assign: "${t.name}" slice runs past its shape`);
      const given = slotNames.map((slot) => {
        const slotKey = partKey(`${t.name}:${slot}`, t.sliceStart);
        const g = slotTensors.get(slotKey);
        if (g !== undefined && g.data.length !== t.data.length) throw new InvalidArgumentError(`assign: slot "${g.name}" has ${g.data.length} elements, its variable ${t.data.length}`);
        slotTensors.delete(slotKey);
        return g;
      });
      planned.push({ key, t, given });
    }
    if (slotTensors.size > 0) {
      throw new InvalidArgumentError(`assign: optimizer slots without a variable or not used by ${config.optimizer.name}: ${[...slotTensors.values()].map((t) => t.name).join(', ')}`);
    }
    // Variables and slots live in one WebAssembly memory when they fit, so the SIMD update loops can reach them.
    const arena = KernelArena.create(planned.flatMap(({ t }) => new Array<number>(1 + slotNames.length).fill(t.data.length)));
    const optimizer = createServerOptimizer(config.optimizer, arena);
    const copy = (data: ArrayLike<number>) => {
      const out = allocFloats(arena, data.length);
      out.set(data);
      return out;
    };
    const parts = new Map<string, ShardPart>();
    for (const { key, t, given } of planned) {
      const value = copy(t.data);
      const slots = slotNames.map((slot, i) => {
        const g = given[i];
        return g === undefined ? optimizer.initSlot(slot, t.data.length) : copy(g.data);
      });
      parts.set(key, { name: t.name, shape: [...t.shape], sliceStart: t.sliceStart, sliceLength: t.data.length, value, slots });
    }
    if (globalState !== undefined) optimizer.restoreGlobalState(globalState);
    // All checked: switch over as one unit.
    for (const p of this.pending.values()) for (const r of p.resolvers) r({ version: config.version, duplicate: false, dropped: true });
    this.parts = parts;
    this.optimizer = optimizer;
    this.config = { ...config, workerIds: [...config.workerIds] };
    this.seen = new Map();
    this.pending = new Map();
    this.live = new Set(config.workerIds);
    this.nextStep = new Map(config.workerIds.map((id) => [id, config.workerStep ?? 0n]));
    this.currentVersion = config.version;
    this.wake();
  }

  get liveWorkers(): readonly string[] {
    return [...this.live];
  }

  /** The chief's view of which workers are training; may complete a sync step or release ssp waits. */
  setLive(ids: readonly string[]): void {
    const config = this.requireInitialized('updateMembership');
    const unknown = ids.filter((id) => !config.workerIds.includes(id));
    if (unknown.length > 0) throw new ClusterError('UNKNOWN_WORKER', `updateMembership: ${unknown.join(', ')} not part of this job`);
    this.live = new Set(ids);
    this.completeSyncStep();
    this.wake();
  }

  private requireInitialized(what: string): ShardConfig {
    if (this.config === undefined) throw new ClusterError('NOT_READY', `${what}: parameter server shard ${this.index} has not been initialised by the chief yet`);
    return this.config;
  }

  /** Check that `id` may read this shard. */
  checkReader(id: string): void {
    const config = this.requireInitialized('pull');
    if (id !== CHIEF_READER_ID && !config.workerIds.includes(id)) {
      throw new ClusterError('UNKNOWN_WORKER', `pull: worker "${id}" is not part of this job (known: ${config.workerIds.join(', ')})`);
    }
  }

  /**
   * The shard's variables (all, or the named ones) as tensors viewing the
   * live values: read them before anything else runs, or use snapshot().
   */
  liveParts(names: readonly string[] = []): WireTensor[] {
    this.requireInitialized('pull');
    const wanted = new Set(names);
    for (const n of wanted) {
      if (![...this.parts.values()].some((p) => p.name === n)) throw new ClusterError('UNKNOWN_VARIABLE', `pull: this shard holds no variable "${n}"`);
    }
    const tensors: WireTensor[] = [];
    for (const p of this.parts.values()) {
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
    const config = this.requireInitialized('push');
    if (!config.workerIds.includes(meta.workerId)) {
      throw new ClusterError('UNKNOWN_WORKER', `push: worker "${meta.workerId}" is not part of this job (known: ${config.workerIds.join(', ')})`);
    }
    if (tensors.length !== meta.tensorCount) {
      throw new InvalidArgumentError(`push from ${meta.workerId} step ${meta.step}: the stream ended after ${tensors.length} of ${meta.tensorCount} tensors`);
    }
    const grads = new Map<string, Float32Array>();
    for (const t of tensors) {
      const key = partKey(t.name, t.sliceStart);
      const part = this.parts.get(key);
      if (part === undefined) {
        const other = [...this.parts.values()].find((p) => p.name === t.name);
        throw new ClusterError(
          'UNKNOWN_VARIABLE',
          other === undefined
            ? `push: gradient "${t.name}" names no variable of shard ${this.index}`
            : `push: gradient "${t.name}" starts at element ${t.sliceStart}, but shard ${this.index} holds it from element ${other.sliceStart}`,
        );
      }
      if (t.dtype !== 'float32') throw new ClusterError('SHAPE_MISMATCH', `push: gradient "${t.name}" has dtype ${t.dtype}, expected float32`);
      if (t.shape.length !== part.shape.length || t.shape.some((d, i) => d !== part.shape[i])) {
        throw new ClusterError('SHAPE_MISMATCH', `push: gradient "${t.name}" has shape [${t.shape.join(',')}], expected [${part.shape.join(',')}]`);
      }
      if (t.data.length !== part.sliceLength) {
        throw new ClusterError('SHAPE_MISMATCH', `push: gradient "${t.name}" carries ${t.data.length} elements from ${t.sliceStart}, expected ${part.sliceLength}`);
      }
      const data = t.data as Float32Array;
      const bad = firstNonFinite(data);
      if (bad !== -1) {
        throw new ClusterError('NON_FINITE', `push: gradient "${t.name}" holds ${data[bad]} at element ${t.sliceStart + bad}; lower the learning rate or check the loss`);
      }
      grads.set(key, data);
    }
    if (grads.size !== this.parts.size) {
      const missing = [...this.parts.keys()].filter((k) => !grads.has(k));
      throw new InvalidArgumentError(`push: missing gradients for ${missing.join(', ')}`);
    }
    return grads;
  }

  isDuplicate(workerId: string, step: bigint): boolean {
    return this.seen.get(workerId)?.has(step) === true;
  }

  markSeen(workerId: string, step: bigint): void {
    let s = this.seen.get(workerId);
    if (s === undefined) {
      s = new SeenSteps();
      this.seen.set(workerId, s);
    }
    s.add(step);
  }

  /** Apply one gradient per part (already validated) as one optimizer step. */
  applyGradients(grads: ReadonlyMap<string, Float32Array>): bigint {
    const optimizer = this.optimizer as ServerOptimizer;
    for (const [key, part] of this.parts) optimizer.apply(part.value, grads.get(key) as Float32Array, part.slots);
    optimizer.endStep();
    this.currentVersion += 1n;
    this.counters.applied += 1n;
    this.wake();
    return this.currentVersion;
  }

  /**
   * Take a validated push according to the consistency mode. async and ssp
   * apply it at once; sync holds it until every live worker (less backups)
   * has pushed for the step, then applies their batch-weighted mean; a push
   * for a step already applied is dropped (a backup worker's late gradient).
   */
  acceptPush(meta: PushMeta, grads: ReadonlyMap<string, Float32Array>): Promise<PushOutcome> {
    const config = this.requireInitialized('push');
    const waiting = this.pending.get(meta.workerId);
    if (this.isDuplicate(meta.workerId, meta.step)) {
      this.counters.duplicate += 1n;
      if (config.mode === 'sync' && waiting !== undefined && meta.step === this.currentVersion) {
        // A retry of a push still waiting at the barrier: answer it when the step completes.
        return new Promise((resolve) => waiting.resolvers.push((o) => resolve({ ...o, duplicate: true })));
      }
      return Promise.resolve({ version: this.currentVersion, duplicate: true, dropped: false });
    }
    if (config.mode !== 'sync') {
      this.markSeen(meta.workerId, meta.step);
      const version = this.applyGradients(grads);
      const next = this.nextStep.get(meta.workerId) ?? 0n;
      if (meta.step + 1n > next) this.nextStep.set(meta.workerId, meta.step + 1n);
      this.wake();
      return Promise.resolve({ version, duplicate: false, dropped: false });
    }
    if (meta.step < this.currentVersion) {
      this.markSeen(meta.workerId, meta.step);
      this.counters.dropped += 1n;
      return Promise.resolve({ version: this.currentVersion, duplicate: false, dropped: true });
    }
    if (meta.step > this.currentVersion) {
      return Promise.reject(
        new InvalidArgumentError(`push from ${meta.workerId}: step ${meta.step} is ahead of shard ${this.index}, which collects step ${this.currentVersion}; pull with min_version first`),
      );
    }
    this.markSeen(meta.workerId, meta.step);
    return new Promise((resolve) => {
      this.pending.set(meta.workerId, { workerId: meta.workerId, batchSize: Math.max(1, meta.batchSize), grads, resolvers: [resolve] });
      this.completeSyncStep();
    });
  }

  /** Gradients a sync step needs: one per live worker, less the backups. */
  get syncRequired(): number {
    const config = this.config as ShardConfig;
    const backups = config.workerIds.length - config.syncReplicas;
    return Math.max(1, this.live.size - backups);
  }

  private completeSyncStep(): void {
    if (this.config?.mode !== 'sync' || this.pending.size === 0 || this.pending.size < this.syncRequired) return;
    // Batch-weighted mean, summed in worker-id order: the result does not
    // depend on arrival order or on how variables are split over shards.
    const contributions = [...this.pending.values()].sort((a, b) => (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0));
    const total = contributions.reduce((n, c) => n + c.batchSize, 0);
    const weights = contributions.map((c) => c.batchSize / total);
    const mean = new Map<string, Float32Array>();
    for (const [key, part] of this.parts) {
      const out = new Float32Array(part.sliceLength);
      weightedSum(out, contributions.map((c) => c.grads.get(key) as Float32Array), weights);
      mean.set(key, out);
    }
    this.pending = new Map();
    const version = this.applyGradients(mean);
    for (const c of contributions) for (const r of c.resolvers) r({ version, duplicate: false, dropped: false });
  }

  /** Resolve once the version reaches `min` (or the signal aborts). */
  waitForVersion(min: bigint, signal?: AbortSignal): Promise<void> {
    return this.waitUntil(() => this.currentVersion >= min, signal, () => `pull: gave up waiting for version ${min} (shard at ${this.currentVersion})`);
  }

  /**
   * ssp: resolve once worker `workerId`, about to compute `step`, is at most
   * `staleness` steps ahead of the slowest live worker. Answers as soon as
   * that holds: every applied push re-checks.
   */
  async waitForStaleness(workerId: string, step: bigint, signal?: AbortSignal): Promise<void> {
    const config = this.requireInitialized('pull');
    const slowest = () => {
      let min: bigint | undefined;
      for (const id of this.live) {
        if (id === workerId) continue;
        const s = this.nextStep.get(id) ?? 0n;
        if (min === undefined || s < min) min = s;
      }
      return min;
    };
    const allowed = () => {
      const min = slowest();
      return min === undefined || step - min <= BigInt(config.staleness);
    };
    if (!allowed()) {
      this.counters.pullsWaited += 1n;
      await this.waitUntil(allowed, signal, () => `pull: gave up waiting for the slowest worker (step ${step}, staleness ${config.staleness})`);
    }
    const min = slowest();
    if (min !== undefined && step - min > this.counters.maxLead) this.counters.maxLead = step - min;
  }

  private waitUntil(ready: () => boolean, signal: AbortSignal | undefined, why: () => string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const entry = { ready, resolve };
      this.waiters.push(entry);
      signal?.addEventListener('abort', () => {
        this.waiters = this.waiters.filter((w) => w !== entry);
        reject(new ClusterError('NOT_READY', why()));
      });
    });
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => w.ready());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}
