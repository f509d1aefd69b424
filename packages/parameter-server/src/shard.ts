/**
 * One parameter-server shard: its variable parts, their optimizer slots, the
 * version (updates applied) and the bookkeeping that makes pushes idempotent.
 *
 * Every request is validated completely before anything changes, so a
 * refused push or assign leaves the shard exactly as it was.
 */
import { ClusterError, InvalidArgumentError, type OptimizerName, type OptimizerSettings, type WireTensor, sizeOfShape } from '@tamp/core';
import { type ServerOptimizer, createServerOptimizer } from './optimizers/index.js';
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
  readonly syncReplicas: number;
  readonly staleness: number;
  readonly workerIds: readonly string[];
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
  private waiters: Array<{ min: bigint; resolve: () => void }> = [];
  readonly counters: ShardCounters = { applied: 0n, duplicate: 0n, dropped: 0n, refused: 0n };

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
    const optimizer = createServerOptimizer(config.optimizer);
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
    const parts = new Map<string, ShardPart>();
    for (const [key, t] of values) {
      if (sizeOfShape(t.shape) < t.sliceStart + t.data.length) throw new InvalidArgumentError(`assign: "${t.name}" slice runs past its shape`);
      const slots = optimizer.slotNames.map((slot) => {
        const given = slotTensors.get(partKey(`${t.name}:${slot}`, t.sliceStart));
        if (given === undefined) return optimizer.initSlot(slot, t.data.length);
        if (given.data.length !== t.data.length) throw new InvalidArgumentError(`assign: slot "${given.name}" has ${given.data.length} elements, its variable ${t.data.length}`);
        slotTensors.delete(partKey(`${t.name}:${slot}`, t.sliceStart));
        return Float32Array.from(given.data);
      });
      parts.set(key, { name: t.name, shape: [...t.shape], sliceStart: t.sliceStart, sliceLength: t.data.length, value: Float32Array.from(t.data), slots });
    }
    if (slotTensors.size > 0) {
      throw new InvalidArgumentError(`assign: optimizer slots without a variable or not used by ${optimizer.name}: ${[...slotTensors.values()].map((t) => t.name).join(', ')}`);
    }
    if (globalState !== undefined) optimizer.restoreGlobalState(globalState);
    // All checked: switch over as one unit.
    this.parts = parts;
    this.optimizer = optimizer;
    this.config = { ...config, workerIds: [...config.workerIds] };
    this.seen = new Map();
    this.currentVersion = config.version;
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
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i])) {
          throw new ClusterError('NON_FINITE', `push: gradient "${t.name}" holds ${data[i]} at element ${t.sliceStart + i}; lower the learning rate or check the loss`);
        }
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
  applyGradients(grads: ReadonlyMap<string, Float32Array>, scale = 1): bigint {
    const optimizer = this.optimizer as ServerOptimizer;
    for (const [key, part] of this.parts) {
      let g = grads.get(key) as Float32Array;
      if (scale !== 1) g = g.map((x) => x * scale);
      optimizer.apply(part.value, g, part.slots);
    }
    optimizer.endStep();
    this.currentVersion += 1n;
    this.counters.applied += 1n;
    this.wake();
    return this.currentVersion;
  }

  /** Resolve once the version reaches `min` (or the signal aborts). */
  waitForVersion(min: bigint, signal?: AbortSignal): Promise<void> {
    if (this.currentVersion >= min) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const entry = { min, resolve };
      this.waiters.push(entry);
      signal?.addEventListener('abort', () => {
        this.waiters = this.waiters.filter((w) => w !== entry);
        reject(new ClusterError('NOT_READY', `pull: gave up waiting for version ${min} (shard at ${this.currentVersion})`));
      });
    });
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => this.currentVersion >= w.min);
    this.waiters = this.waiters.filter((w) => this.currentVersion < w.min);
    for (const w of ready) w.resolve();
  }
}
