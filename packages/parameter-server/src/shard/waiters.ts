/**
 * Requests waiting on a shard's state (a pull for a version, ssp's gate):
 * each names the condition it waits for, and every change that may satisfy
 * one calls wake(), which re-checks them all.
 */
import { ClusterError } from '@tamp/core/base';

interface Waiter {
  readonly ready: () => boolean;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export class Waiters {
  private list: Waiter[] = [];

  /** Resolve once `ready()` holds; reject with NOT_READY (`why()`) if the signal aborts first. */
  until(ready: () => boolean, signal: AbortSignal | undefined, why: () => string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const entry = { ready, resolve, reject };
      this.list.push(entry);
      signal?.addEventListener('abort', () => {
        this.list = this.list.filter((w) => w !== entry);
        reject(new ClusterError('NOT_READY', why()));
      });
    });
  }

  /** Reject every waiting request with `error` (the shard was restored: what they wait for may never come). */
  rejectAll(error: Error): void {
    const list = this.list;
    this.list = [];
    for (const w of list) w.reject(error);
  }

  wake(): void {
    const ready = this.list.filter((w) => w.ready());
    if (ready.length === 0) return;
    this.list = this.list.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}
