import { isRetryable } from './status.js';

export interface RetryOptions {
  /** Give up once the next attempt would start after this long (ms). */
  readonly deadlineMs: number;
  /** Give up after this many attempts (default: as many as the deadline allows). */
  readonly maxAttempts?: number;
  /** First wait between attempts (ms, default 50); doubles each time. */
  readonly baseDelayMs?: number;
  /** Longest wait between attempts (ms, default 1,000). */
  readonly maxDelayMs?: number;
  /** Before each wait: the error, the attempt that failed (1-based) and the wait (ms). */
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  readonly signal?: AbortSignal;
  /**
   * Jitter: each wait is the backoff delay less up to this fraction of it, at
   * random (default 0.5, "equal jitter"), so clients that failed together do
   * not retry together.
   */
  readonly jitter?: number;
  /** The random source for the jitter, in [0, 1) (default Math.random; tests fix it). */
  readonly random?: () => number;
}

/**
 * Retry `fn` while it fails with a retryable status (UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED), with exponential backoff, until the
 * deadline or the attempt limit, each wait jittered. Only idempotent calls are retried: pushes
 * are, by (worker id, step).
 */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const started = Date.now();
  let delay = options.baseDelayMs ?? 50;
  const maxDelay = options.maxDelayMs ?? 1_000;
  const maxAttempts = options.maxAttempts ?? Infinity;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const wait = delay * (1 - jitter * random());
      if (!isRetryable(error) || attempt >= maxAttempts || Date.now() - started + wait > options.deadlineMs || options.signal?.aborted === true) throw error;
      options.onRetry?.(error, attempt, wait);
      await new Promise((resolve) => setTimeout(resolve, wait));
      delay = Math.min(maxDelay, delay * 2);
    }
  }
}
