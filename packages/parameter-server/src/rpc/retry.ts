import { isRetryable } from './status.js';

export interface RetryOptions {
  /** Give up after this long (ms). */
  readonly deadlineMs: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly onRetry?: (error: unknown, attempt: number) => void;
  readonly signal?: AbortSignal;
}

/**
 * Retry `fn` while it fails with a retryable status (UNAVAILABLE,
 * DEADLINE_EXCEEDED), with exponential backoff, until the deadline. Only
 * idempotent calls are retried: pushes are, by (worker id, step).
 */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const started = Date.now();
  let delay = options.baseDelayMs ?? 50;
  const maxDelay = options.maxDelayMs ?? 1_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!isRetryable(error) || Date.now() - started + delay > options.deadlineMs || options.signal?.aborted === true) throw error;
      options.onRetry?.(error, attempt);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(maxDelay, delay * 2);
    }
  }
}
