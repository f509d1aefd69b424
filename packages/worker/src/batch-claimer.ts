/**
 * A worker's side of the batch claims (async, ssp; batch-claims.ts is the
 * chief's): the blocks it claimed, what it trains next, and the batches whose
 * pushes settled, reported with its next claim. It claims the next block
 * while the second-to-last batch of the current one trains, and takes the
 * answer a step later, so the claim's round trip to the chief (longer while
 * the chief scores an epoch) stays off the training loop's path.
 */
import { BatchRanges } from './batch-ranges.js';
import type { CoordinatorClient } from './coordinator-client.js';

/** Batches per claim: small, so a lost worker leaves little behind and the last blocks spread over the workers. */
export const CLAIM_BLOCK = 4;

export type NextBatch =
  | { readonly kind: 'batch'; readonly batch: number }
  /** Settle the pushes and wait at this checkpoint's barrier. */
  | { readonly kind: 'checkpoint'; readonly step: number }
  /** No batch is free now (the others hold the rest): settle, wait a little, claim again. */
  | { readonly kind: 'wait' }
  | { readonly kind: 'finished' };

export class BatchClaimer {
  /** Claimed batches not yet trained, in the order claimed ([start, end) ranges). */
  private readonly queue: Array<[number, number]> = [];
  /** What the last claim said instead of batches (consumed by advance). */
  private signal: NextBatch | undefined;
  /** Batches whose pushes settled since the last report. */
  private readonly settled = new BatchRanges();
  /** A claim started ahead of need (afterHead), taken before anything else reads the queue or claims. */
  private ahead: Promise<void> | undefined;

  constructor(
    private readonly chief: Pick<CoordinatorClient, 'claimBatches'>,
    private readonly workerId: string,
    private readonly blockSize = CLAIM_BLOCK,
  ) {}

  /** The push of `batch` settled (applied, or refused by a restored shard after the others applied it). */
  done(batch: number): void {
    this.settled.add(batch, batch + 1);
  }

  /** What to do now; claims when nothing is queued. Call it only with no push in flight (the claim says this worker holds nothing). */
  async head(): Promise<NextBatch> {
    const first = this.queue[0];
    if (first !== undefined) return { kind: 'batch', batch: first[0] };
    await this.takeAhead();
    if (this.queue.length === 0 && this.signal === undefined) await this.claim(this.blockSize, true);
    return this.current();
  }

  /**
   * What comes after the head batch. With two batches left it starts the
   * next block's claim without waiting for it; with one, it takes that
   * claim's answer (or claims now, if none was started).
   */
  async afterHead(): Promise<NextBatch> {
    const [first, second] = this.queue;
    if (first !== undefined && first[1] - first[0] > 1) {
      if (first[1] - first[0] === 2 && second === undefined && this.signal === undefined && this.ahead === undefined) {
        this.ahead = this.claim(this.blockSize, false);
        // Observed now, rethrown where it is taken: a failure meanwhile is not an unhandled rejection.
        this.ahead.catch(() => undefined);
      }
      return { kind: 'batch', batch: first[0] + 1 };
    }
    if (second !== undefined) return { kind: 'batch', batch: second[0] };
    await this.takeAhead();
    if (this.queue.length < (first === undefined ? 1 : 2) && this.signal === undefined) await this.claim(this.blockSize, false);
    const after = this.queue[first === undefined ? 0 : 1];
    return after !== undefined ? { kind: 'batch', batch: after[0] } : (this.signal ?? { kind: 'wait' });
  }

  /** Drop the head (the batch was pushed, or the signal acted on). */
  advance(): void {
    const first = this.queue[0];
    if (first === undefined) this.signal = undefined;
    else if (first[1] - first[0] > 1) first[0]++;
    else this.queue.shift();
  }

  /** Report the settled batches without claiming (before a checkpoint barrier, with nothing in flight). */
  async report(): Promise<void> {
    await this.takeAhead();
    await this.claim(0, true, false);
  }

  /** Wait for the claim started ahead, if any (its failure is thrown here). */
  private async takeAhead(): Promise<void> {
    const ahead = this.ahead;
    if (ahead === undefined) return;
    this.ahead = undefined;
    await ahead;
  }

  private current(): NextBatch {
    const first = this.queue[0];
    return first !== undefined ? { kind: 'batch', batch: first[0] } : (this.signal ?? { kind: 'wait' });
  }

  private async claim(count: number, idle: boolean, keep = true): Promise<void> {
    const reported = this.settled.toArray();
    const c = await this.chief.claimBatches(this.workerId, count, reported, idle);
    // Batches that settled while the claim was under way are reported next time.
    for (const [s, e] of reported) this.settled.remove(s, e);
    if (!keep) return;
    if (c.end > c.start) this.queue.push([c.start, c.end]);
    else this.signal = c.finished ? { kind: 'finished' } : c.checkpointStep > 0 ? { kind: 'checkpoint', step: c.checkpointStep } : { kind: 'wait' };
  }
}
