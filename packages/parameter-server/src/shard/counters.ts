/** A shard's counters: changed only by the shard's own methods; readers get snapshots (ShardStatus). */

export interface ShardCounters {
  /** Optimizer steps applied. */
  readonly applied: bigint;
  /** Pushes already taken (retries), answered without applying. */
  readonly duplicate: bigint;
  /** sync: gradients that came after their step was applied (backup workers). */
  readonly dropped: bigint;
  /** Pushes refused (invalid, unknown worker, ahead of the step). */
  readonly refused: bigint;
  /**
   * Updates that would have made a variable or slot non-finite: async and
   * ssp pushes refused, sync steps skipped (nothing changed but the version).
   */
  readonly nonFinite: bigint;
  /** ssp: pulls held at the staleness gate. */
  readonly pullsWaited: bigint;
  /** ssp: the largest lead over the slowest live worker a pull was answered at. */
  readonly maxLead: bigint;
  /** Tensor payload bytes (as encoded on the wire) of complete workers' pushes, and how many. */
  readonly pushBytes: bigint;
  readonly pushesReceived: bigint;
  /** Tensor payload bytes sent in answer to workers' pulls (not the chief's), and how many. */
  readonly pullBytes: bigint;
  readonly pullsServed: bigint;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class CounterSet {
  private readonly c: Mutable<ShardCounters> = { applied: 0n, duplicate: 0n, dropped: 0n, refused: 0n, nonFinite: 0n, pullsWaited: 0n, maxLead: 0n, pushBytes: 0n, pushesReceived: 0n, pullBytes: 0n, pullsServed: 0n };

  applied(): void {
    this.c.applied += 1n;
  }

  duplicate(): void {
    this.c.duplicate += 1n;
  }

  dropped(): void {
    this.c.dropped += 1n;
  }

  refused(): void {
    this.c.refused += 1n;
  }

  nonFinite(): void {
    this.c.nonFinite += 1n;
  }

  pullWaited(): void {
    this.c.pullsWaited += 1n;
  }

  lead(lead: bigint): void {
    if (lead > this.c.maxLead) this.c.maxLead = lead;
  }

  pushReceived(bytes: number): void {
    this.c.pushBytes += BigInt(bytes);
    this.c.pushesReceived += 1n;
  }

  pullServed(bytes: number): void {
    this.c.pullBytes += BigInt(bytes);
    this.c.pullsServed += 1n;
  }

  snapshot(): ShardCounters {
    return Object.freeze({ ...this.c });
  }
}
