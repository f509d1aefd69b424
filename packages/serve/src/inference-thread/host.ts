/**
 * The event loop's side of the inference thread (thread.ts): models on tfjs
 * devices load and run there, so parsing and answering requests overlaps the
 * batch that computes. WebGPU models stay on this thread: their compute is on
 * the GPU and already asynchronous, and Dawn's driver search sets process
 * environment variables a worker thread cannot set for the process.
 */
import { Worker } from 'node:worker_threads';
import { ERROR_CODES, type ErrorCode, TampError, errorMessage } from '@tamp/core';
import type { DeviceRequest, InferenceModel, ModelInfo } from '@tamp/webgpu';
import { loadModel } from '@tamp/webgpu/node';
import type { FromThread, ToThread } from './messages.js';

/** What `tamp serve` needs of a model, wherever it runs. */
export interface HostedModel {
  info(): ModelInfo;
  /** Samples laid out one after another in; outputs the same way out. */
  run(input: Float32Array): Promise<Float32Array>;
  /** Batches worth sending at once: 2 on the inference thread (the next waits there, ready), 1 here. */
  readonly concurrency: number;
  dispose(): void;
}

type Pending = { resolve: (m: FromThread) => void; reject: (e: Error) => void };
type Request = ToThread extends infer T ? (T extends { id: number } ? Omit<T, 'id'> : never) : never;

/** One worker thread for all of a server's tfjs models (they computed one at a time on one thread before, too). */
export class InferenceThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;

  constructor(private readonly log: (m: string) => void) {}

  private start(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(new URL('./bootstrap.mjs', import.meta.url));
    worker.on('message', (m: FromThread) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m);
    });
    worker.on('error', (e) => this.failAll(`the inference thread failed: ${errorMessage(e)}`));
    worker.on('exit', (code) => this.failAll(`the inference thread exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  private failAll(why: string): void {
    if (this.dead !== undefined) return;
    this.log(why);
    // A server fault, not the request's: answered as an internal error (500), the reason in the log.
    this.dead = new Error(why);
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
  }

  private request(m: Request, transfer: ArrayBuffer[] = []): Promise<FromThread> {
    if (this.dead !== undefined) return Promise.reject(this.dead);
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...m, id } as ToThread, transfer);
    }).then((reply) => {
      const r = reply as FromThread;
      if (r.type !== 'error') return r;
      throw r.code !== undefined && r.code in ERROR_CODES ? new TampError(r.code as ErrorCode, r.message) : new Error(`inference thread: ${r.message}`);
    });
  }

  async load(path: string, device: DeviceRequest): Promise<HostedModel> {
    const loaded = await this.request({ type: 'load', path, device });
    // The thread answers a load with `loaded` or an error (thrown above).
    if (loaded.type !== 'loaded') throw new Error(`inference thread: answered a load with ${loaded.type}`);
    const { model, info } = loaded;
    let disposed = false;
    return {
      info: () => info,
      concurrency: 2,
      run: async (input) => {
        // Transferred, so it must own its whole buffer (a view of a request body would take the body with it).
        const own = input.byteOffset === 0 && input.byteLength === input.buffer.byteLength ? input : input.slice();
        const r = await this.request({ type: 'run', model, input: own }, [own.buffer as ArrayBuffer]);
        if (r.type !== 'ran') throw new Error(`inference thread: answered a run with ${r.type}`);
        return r.output;
      },
      dispose: () => {
        if (disposed || this.dead !== undefined) return;
        disposed = true;
        this.worker?.postMessage({ type: 'dispose', model } satisfies ToThread);
      },
    };
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.dead ??= new Error('the server is closing');
    if (worker !== undefined) await worker.terminate();
  }
}

/** A model on this thread, as the server uses it. */
export function hostedHere(model: InferenceModel): HostedModel {
  return { info: () => model.info(), concurrency: 1, run: async (input) => (await model.predict(input)).data, dispose: () => model.dispose() };
}

/**
 * Load a model where it should run: tfjs devices on the inference thread,
 * WebGPU here. `auto` loads on the thread and comes back here if it chose WebGPU.
 */
export async function loadHosted(path: string, device: DeviceRequest, thread: InferenceThread | undefined): Promise<HostedModel> {
  if (thread === undefined || device === 'webgpu') return warmHere(await loadModel(path, { device }));
  const hosted = await thread.load(path, device);
  if (hosted.info().device !== 'webgpu') return hosted;
  hosted.dispose();
  return warmHere(await loadModel(path, { device: 'webgpu' }));
}

async function warmHere(model: InferenceModel): Promise<HostedModel> {
  try {
    await model.warmup(1);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return hostedHere(model);
}
