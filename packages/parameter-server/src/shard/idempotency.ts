/**
 * Which (worker id, step) pushes a shard has taken, so a retried push is
 * applied once. Each worker keeps a window of recent steps; older ones count
 * as seen (a worker never retries that far back).
 */

/** How many past steps per worker are remembered; older ones count as duplicates. */
const SEEN_WINDOW = 4096n;

class SeenSteps {
  private max = -1n;
  private readonly recent = new Set<bigint>();

  has(step: bigint): boolean {
    return step <= this.max - SEEN_WINDOW || this.recent.has(step);
  }

  steps(): Iterable<bigint> {
    return this.recent;
  }

  add(step: bigint): void {
    this.recent.add(step);
    if (step > this.max) this.max = step;
    if (this.recent.size > Number(SEEN_WINDOW)) {
      for (const s of this.recent) if (s <= this.max - SEEN_WINDOW) this.recent.delete(s);
    }
  }
}

export class SeenPushes {
  private readonly byWorker = new Map<string, SeenSteps>();

  has(workerId: string, step: bigint): boolean {
    return this.byWorker.get(workerId)?.has(step) === true;
  }

  add(workerId: string, step: bigint): void {
    let s = this.byWorker.get(workerId);
    if (s === undefined) {
      s = new SeenSteps();
      this.byWorker.set(workerId, s);
    }
    s.add(step);
  }

  /** Every remembered (worker, step) (a backup's copy: retries after a failover stay duplicates). */
  *entries(): Generator<{ workerId: string; step: bigint }> {
    for (const [workerId, s] of this.byWorker) for (const step of s.steps()) yield { workerId, step };
  }
}
