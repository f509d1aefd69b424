/**
 * The chief's record of each worker slot's Presence calls (coordinator.proto;
 * ARCHITECTURE.md, "Faults"): how many are open for the slot's current token
 * generation, and when the last one closed. A slot whose calls all closed,
 * with no new call, heartbeat or Join since, is due to be found lost once
 * the disconnect grace has passed (Membership.checkLost). Counting per
 * generation means a replaced connection (a new call before the old one's
 * close is seen), or an older process's call closing after a restart's
 * Join, starts no grace. No clock inside: callers pass `now`.
 */
export class PresenceLedger {
  /** Open calls per slot, of the generation they hold. */
  private readonly open = new Map<number, { generation: number; count: number }>();
  /** Slots whose last call closed: when, and of which generation. */
  private readonly closed = new Map<number, { at: number; generation: number }>();

  /** `graceMs` undefined: closed calls start no grace (only the heartbeats judge). */
  constructor(private readonly graceMs: number | undefined) {}

  /** A call of slot `index` holding a token of `generation` opened. */
  opened(index: number, generation: number): void {
    const current = this.open.get(index);
    this.open.set(index, { generation, count: (current?.generation === generation ? current.count : 0) + 1 });
    this.closed.delete(index);
  }

  /** A call of slot `index` holding a token of `generation` closed; `joined`: the slot is joined with that generation, so its grace starts when this was its last call. */
  closedCall(index: number, generation: number, joined: boolean, now: number): void {
    const current = this.open.get(index);
    if (current === undefined || current.generation !== generation || current.count === 0) return; // an older process's call
    this.open.set(index, { generation, count: current.count - 1 });
    if (current.count === 1 && joined) this.closed.set(index, { at: now, generation });
  }

  /** Slot `index` showed life another way (a heartbeat), or has a new process (a Join), or was found lost: no grace pending. */
  clear(index: number): void {
    this.closed.delete(index);
  }

  /** Milliseconds since slot `index` (of `generation`) closed its last call, once the grace has passed; undefined otherwise. */
  expired(index: number, generation: number, now: number): number | undefined {
    const c = this.closed.get(index);
    if (this.graceMs === undefined || c === undefined || c.generation !== generation || now - c.at < this.graceMs) return undefined;
    return now - c.at;
  }

  /** When the earliest pending grace ends (undefined: none). */
  nextDeadline(): number | undefined {
    const grace = this.graceMs;
    if (grace === undefined || this.closed.size === 0) return undefined;
    return Math.min(...[...this.closed.values()].map((c) => c.at + grace));
  }
}
