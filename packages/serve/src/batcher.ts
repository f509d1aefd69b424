/**
 * Dynamic batching, as Triton's `dynamic_batching`: requests for one model
 * version wait in a bounded queue; a batch runs as soon as it holds
 * `maxBatchSize` samples or the oldest request has waited `maxQueueDelayMs`,
 * whichever comes first, and one batch runs at a time (the device is busy
 * anyway), unless the runner takes more: a runner on another thread takes a
 * second batch, but only a full one, so the thread finds its next batch waiting
 * instead of idling while this thread answers the last. Over capacity a request is refused at once (`QueueFullError`)
 * rather than queued without end; a request whose deadline passes while it
 * waits is answered with `DeadlineError` and never reaches the model.
 */
import { TampError } from '@tamp/core';

export interface BatchRunner {
  /** Run `batch` samples laid out one after another; returns the outputs the same way. */
  run(input: Float32Array, batch: number): Promise<Float32Array>;
  readonly inputSize: number;
  readonly outputSize: number;
  /** Batches it may hold at once (default 1); beyond the first, only full ones are sent. */
  readonly concurrency?: number;
}

export interface BatcherOptions {
  /** Most samples in one batch (1: no batching). */
  readonly maxBatchSize: number;
  /** How long the first request of a batch may wait for others. */
  readonly maxQueueDelayMs: number;
  /** Most samples waiting; beyond it requests are refused at once. */
  readonly maxQueueSize: number;
}

export interface BatchStats {
  readonly batches: number;
  readonly samples: number;
  readonly refused: number;
  readonly expired: number;
}

/** The queue is full: answered as HTTP 503 / gRPC UNAVAILABLE. */
export class QueueFullError extends TampError {
  constructor(message: string) {
    super('OVERLOADED', message);
  }
}

/** The request's deadline passed before it ran: HTTP 504 / gRPC DEADLINE_EXCEEDED. */
export class DeadlineError extends TampError {
  constructor(message: string) {
    super('DEADLINE_EXCEEDED', message);
  }
}

interface Pending {
  timer?: NodeJS.Timeout;
  readonly input: Float32Array;
  readonly samples: number;
  readonly deadline: number;
  readonly enqueued: number;
  readonly resolve: (r: { output: Float32Array; queueMs: number; batch: number }) => void;
  readonly reject: (e: Error) => void;
}

export class Batcher {
  private readonly queue: Pending[] = [];
  private queued = 0;
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private stats = { batches: 0, samples: 0, refused: 0, expired: 0 };

  constructor(
    private readonly runner: BatchRunner,
    readonly options: BatcherOptions,
  ) {}

  /** Queue `samples` samples; resolves with their outputs, the time they waited and the batch they ran in. */
  submit(input: Float32Array, samples: number, deadline = Infinity): Promise<{ output: Float32Array; queueMs: number; batch: number }> {
    if (this.queued + samples > this.options.maxQueueSize) {
      this.stats.refused++;
      return Promise.reject(new QueueFullError(`the server is at capacity (${this.queued} samples queued, at most ${this.options.maxQueueSize}): retry later`));
    }
    return new Promise((resolve, reject) => {
      const enqueued = performance.now();
      const pending: Pending = {
        input,
        samples,
        deadline,
        enqueued,
        resolve: (r) => {
          clearTimeout(pending.timer);
          resolve(r);
        },
        reject: (e: Error) => {
          clearTimeout(pending.timer);
          reject(e);
        },
      };
      // A deadline is honoured while the request waits, not only when its batch forms.
      if (Number.isFinite(deadline)) pending.timer = setTimeout(() => this.expire(pending), Math.max(0, deadline - enqueued));
      this.queue.push(pending);
      this.queued += samples;
      this.schedule();
    });
  }

  /** How many samples wait now. */
  depth(): number {
    return this.queued;
  }

  counts(): BatchStats {
    return { ...this.stats };
  }

  private expire(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i === -1) return; // already running: it will be answered
    this.queue.splice(i, 1);
    this.queued -= p.samples;
    this.stats.expired++;
    p.reject(new DeadlineError(`the request's deadline passed after ${Math.round(performance.now() - p.enqueued)} ms in the queue`));
  }

  private schedule(): void {
    if (this.running >= (this.runner.concurrency ?? 1) || this.queue.length === 0) return;
    const first = this.queue[0] as Pending;
    const waited = performance.now() - first.enqueued;
    const full = this.queued >= this.options.maxBatchSize;
    // While a batch runs, another goes only when full: a partial one would only wait behind it, smaller.
    if (this.running > 0 && !full) return;
    if (full || waited >= this.options.maxQueueDelayMs) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      void this.runBatch();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, this.options.maxQueueDelayMs - waited);
    }
  }

  private take(): Pending[] {
    const now = performance.now();
    const taken: Pending[] = [];
    let samples = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0] as Pending;
      if (next.deadline <= now) {
        this.queue.shift();
        this.queued -= next.samples;
        this.stats.expired++;
        next.reject(new DeadlineError(`the request's deadline passed after ${Math.round(now - next.enqueued)} ms in the queue`));
        continue;
      }
      // A request larger than a whole batch still runs, alone.
      if (taken.length > 0 && samples + next.samples > this.options.maxBatchSize) break;
      this.queue.shift();
      this.queued -= next.samples;
      taken.push(next);
      samples += next.samples;
    }
    return taken;
  }

  private async runBatch(): Promise<void> {
    const taken = this.take();
    if (taken.length === 0) return;
    this.running++;
    const samples = taken.reduce((s, p) => s + p.samples, 0);
    const started = performance.now();
    try {
      let input: Float32Array;
      if (taken.length === 1) input = (taken[0] as Pending).input;
      else {
        input = new Float32Array(samples * this.runner.inputSize);
        let o = 0;
        for (const p of taken) {
          input.set(p.input, o);
          o += p.input.length;
        }
      }
      const output = await this.runner.run(input, samples);
      this.stats.batches++;
      this.stats.samples += samples;
      let o = 0;
      for (const p of taken) {
        const n = p.samples * this.runner.outputSize;
        p.resolve({ output: output.subarray(o, o + n), queueMs: started - p.enqueued, batch: samples });
        o += n;
      }
    } catch (e) {
      for (const p of taken) p.reject(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.running--;
      this.schedule();
    }
  }
}
