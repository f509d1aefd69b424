/**
 * The models a server holds, by name and version. A version is loaded and
 * warmed before it becomes visible, and a version that is replaced or
 * unloaded is disposed only after the requests already using it finish, so
 * a reload never fails a request (Triton's poll mode unloads first).
 */
import { TampError } from '@tamp/core';
import type { DeviceRequest, ModelInfo } from '@tamp/webgpu';
import { Batcher, type BatcherOptions } from './batcher.js';
import { type HostedModel, InferenceThread, loadHosted } from './inference-thread/host.js';

export type Task = 'classification' | 'detection';

export class ServedModel {
  private inflight = 0;
  private drained: (() => void) | undefined;
  readonly info: ModelInfo;
  readonly task: Task;
  readonly batcher: Batcher;
  readonly loadedAt = new Date();

  constructor(
    readonly name: string,
    readonly version: string,
    readonly path: string,
    readonly model: HostedModel,
    batching: BatcherOptions,
  ) {
    this.info = model.info();
    const i = this.info;
    this.task = i.meta.task === 'detection' || (i.outputShape.length === 3 && i.inputShape.length === 3 && i.inputShape[2] === 3) ? 'detection' : 'classification';
    const inputSize = i.inputShape.reduce((a, b) => a * b, 1);
    const outputSize = i.outputShape.reduce((a, b) => a * b, 1);
    this.batcher = new Batcher({ inputSize, outputSize, run: (input) => model.run(input), concurrency: model.concurrency }, batching);
  }

  /** Run `fn` while this version is held: disposal waits for it. */
  async use<T>(fn: (m: ServedModel) => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await fn(this);
    } finally {
      this.inflight--;
      if (this.inflight === 0) this.drained?.();
    }
  }

  /** Dispose once every request using this version has finished. */
  async retire(): Promise<void> {
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.model.dispose();
  }
}

export class ModelNotLoadedError extends TampError {
  constructor(message: string) {
    super('MODEL_NOT_LOADED', message);
  }
}

export interface StoreOptions {
  readonly device: DeviceRequest;
  readonly batching: BatcherOptions;
  /**
   * Run tfjs models (WASM, CPU) on a worker thread, so requests are read and answered while a batch computes.
   * Default: when batching (`maxBatchSize` > 1); unbatched, one message per request costs more than it overlaps.
   */
  readonly inferenceThread?: boolean;
  readonly log: (message: string) => void;
}

/** Versions sort numerically when they are numbers (Triton's convention), else as text. */
function compareVersions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  return Number.isInteger(na) && Number.isInteger(nb) ? na - nb : a.localeCompare(b);
}

export class ModelStore {
  private readonly models = new Map<string, Map<string, ServedModel>>();
  /** Loads in progress, so readiness can say "loading" and a second load of the same version waits for the first. */
  private readonly loading = new Map<string, Promise<ServedModel>>();

  /** Where tfjs models run (undefined: on the event loop's thread). */
  private readonly thread: InferenceThread | undefined;

  constructor(readonly options: StoreOptions) {
    this.thread = (options.inferenceThread ?? options.batching.maxBatchSize > 1) ? new InferenceThread(options.log) : undefined;
  }

  /** Load `path` as `name` version `version`, warm it, then make it visible (replacing that version if it was loaded). */
  async load(name: string, version: string, path: string): Promise<ServedModel> {
    const key = `${name}/${version}`;
    const pending = this.loading.get(key);
    if (pending !== undefined) await pending.catch(() => undefined);
    const job = (async () => {
      // Loaded and warmed where it will run.
      const model = await loadHosted(path, this.options.device, this.thread);
      try {
        return new ServedModel(name, version, path, model, this.options.batching);
      } catch (e) {
        model.dispose();
        throw e;
      }
    })();
    this.loading.set(key, job);
    try {
      const served = await job;
      const versions = this.models.get(name) ?? new Map<string, ServedModel>();
      const old = versions.get(version);
      versions.set(version, served);
      this.models.set(name, versions);
      this.options.log(`loaded ${name} version ${version} from ${path} on ${served.info.device}${old !== undefined ? ' (replacing the earlier load)' : ''}`);
      if (old !== undefined) await old.retire();
      return served;
    } finally {
      if (this.loading.get(key) === job) this.loading.delete(key);
    }
  }

  /** Unload one version, or every version of a model; in-flight requests finish first. */
  async unload(name: string, version?: string): Promise<void> {
    const versions = this.models.get(name);
    if (versions === undefined) throw new ModelNotLoadedError(`model "${name}" is not loaded`);
    const gone = version === undefined ? [...versions.values()] : [versions.get(version)].filter((v): v is ServedModel => v !== undefined);
    if (gone.length === 0) throw new ModelNotLoadedError(`model "${name}" has no version "${version}" (loaded: ${[...versions.keys()].join(', ')})`);
    for (const v of gone) versions.delete(v.version);
    if (versions.size === 0) this.models.delete(name);
    await Promise.all(gone.map((v) => v.retire()));
    this.options.log(`unloaded ${name} ${version !== undefined ? `version ${version}` : '(every version)'}`);
  }

  /** A loaded version; without a version, the latest. */
  get(name: string, version?: string): ServedModel {
    const versions = this.models.get(name);
    if (versions === undefined || versions.size === 0) {
      throw new ModelNotLoadedError(`model "${name}" is not loaded${this.models.size > 0 ? ` (loaded: ${[...this.models.keys()].join(', ')})` : ''}`);
    }
    if (version === undefined) return versions.get(this.versions(name).at(-1) as string) as ServedModel;
    const v = versions.get(version);
    if (v === undefined) throw new ModelNotLoadedError(`model "${name}" has no version "${version}" (loaded: ${this.versions(name).join(', ')})`);
    return v;
  }

  has(name: string, version?: string): boolean {
    const versions = this.models.get(name);
    return versions !== undefined && (version === undefined ? versions.size > 0 : versions.has(version));
  }

  names(): string[] {
    return [...this.models.keys()].sort();
  }

  versions(name: string): string[] {
    return [...(this.models.get(name)?.keys() ?? [])].sort(compareVersions);
  }

  isLoading(name: string): boolean {
    return [...this.loading.keys()].some((k) => k.startsWith(`${name}/`));
  }

  all(): ServedModel[] {
    return [...this.models.values()].flatMap((v) => [...v.values()]);
  }

  async close(): Promise<void> {
    const all = this.all();
    this.models.clear();
    await Promise.all(all.map((m) => m.retire()));
    await this.thread?.close();
  }
}
