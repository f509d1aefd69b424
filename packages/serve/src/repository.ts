/**
 * A model repository as Triton lays it out: DIR/<name>/<version>/model.tamp
 * (or model.json with its weights). Polled: a new or changed version is
 * loaded and warmed before anything is unloaded, and a version whose folder
 * disappears is unloaded only after its replacement serves, so requests never
 * see a gap. Triton's repository extension (index, load, unload) acts on it;
 * a model unloaded through the API stays unloaded until loaded again.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ModelNotLoadedError, type ModelStore } from './model-store.js';

const MODEL_FILES = ['model.tamp', 'model.json'];

export interface RepoEntry {
  readonly name: string;
  readonly version: string;
  readonly path: string;
  /** Changes when the file changes (mtime and size). */
  readonly signature: string;
}

export interface IndexEntry {
  readonly name: string;
  readonly version: string;
  readonly state: 'READY' | 'UNAVAILABLE' | 'LOADING';
  readonly reason: string;
}

function dirs(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name);
  } catch {
    return [];
  }
}

export function scanRepository(dir: string): RepoEntry[] {
  const found: RepoEntry[] = [];
  for (const name of dirs(dir)) {
    for (const version of dirs(join(dir, name))) {
      for (const file of MODEL_FILES) {
        const path = join(dir, name, version, file);
        try {
          const st = statSync(path);
          if (st.isFile()) {
            found.push({ name, version, path, signature: `${st.mtimeMs}:${st.size}` });
            break;
          }
        } catch {
          // Not this file name: try the next.
        }
      }
    }
  }
  return found;
}

export class ModelRepository {
  /** What is loaded from where, by "name/version": the signature it was loaded with. */
  private readonly loaded = new Map<string, string>();
  /** Versions that failed to load, with the signature that failed (retried when the file changes) and why. */
  private readonly failed = new Map<string, { signature: string; reason: string }>();
  private readonly unloadedByApi = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly store: ModelStore,
    private readonly log: (m: string) => void,
  ) {}

  /** Bring the store in line with the folder: loads first, then unloads. */
  sync(): Promise<void> {
    this.syncing ??= this.syncOnce().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const entries = scanRepository(this.dir).filter((e) => !this.unloadedByApi.has(e.name));
    for (const e of entries) {
      const key = `${e.name}/${e.version}`;
      if (this.loaded.get(key) === e.signature || this.failed.get(key)?.signature === e.signature) continue;
      try {
        await this.store.load(e.name, e.version, e.path);
        this.loaded.set(key, e.signature);
        this.failed.delete(key);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        this.failed.set(key, { signature: e.signature, reason });
        this.log(`could not load ${e.name} version ${e.version} from ${e.path}: ${reason}${this.store.has(e.name, e.version) ? ' (the loaded copy keeps serving)' : ''}`);
      }
    }
    const present = new Set(entries.map((e) => `${e.name}/${e.version}`));
    for (const key of [...this.loaded.keys()]) {
      if (present.has(key)) continue;
      const [name, version] = key.split('/') as [string, string];
      this.loaded.delete(key);
      if (this.store.has(name, version)) await this.store.unload(name, version);
    }
  }

  /** Poll every `intervalMs` (an unref'd timer: it never keeps the process alive by itself). */
  watch(intervalMs: number): void {
    this.timer = setInterval(() => void this.sync(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  index(): IndexEntry[] {
    return scanRepository(this.dir).map((e) => {
      const key = `${e.name}/${e.version}`;
      if (this.store.has(e.name, e.version)) return { name: e.name, version: e.version, state: 'READY', reason: '' };
      if (this.store.isLoading(e.name)) return { name: e.name, version: e.version, state: 'LOADING', reason: '' };
      const failed = this.failed.get(key);
      return { name: e.name, version: e.version, state: 'UNAVAILABLE', reason: failed?.reason ?? (this.unloadedByApi.has(e.name) ? 'unloaded' : '') };
    });
  }

  async load(name: string): Promise<void> {
    const entries = scanRepository(this.dir).filter((e) => e.name === name);
    if (entries.length === 0) throw new ModelNotLoadedError(`the repository ${this.dir} has no model "${name}" (expected ${name}/<version>/model.tamp or model.json)`);
    this.unloadedByApi.delete(name);
    for (const e of entries) this.loaded.delete(`${e.name}/${e.version}`);
    for (const e of entries) this.failed.delete(`${e.name}/${e.version}`);
    await this.sync();
    const failure = entries.map((e) => this.failed.get(`${e.name}/${e.version}`)).find((f) => f !== undefined);
    if (failure !== undefined && !this.store.has(name)) throw new ModelNotLoadedError(`model "${name}" failed to load: ${failure.reason}`);
  }

  async unload(name: string): Promise<void> {
    if (!this.store.has(name)) throw new ModelNotLoadedError(`model "${name}" is not loaded`);
    this.unloadedByApi.add(name);
    for (const key of [...this.loaded.keys()]) if (key.startsWith(`${name}/`)) this.loaded.delete(key);
    await this.store.unload(name);
  }
}
