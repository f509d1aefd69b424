/**
 * The chief's failure detector for one worker: phi-accrual (Hayashibara et
 * al., "The φ Accrual Failure Detector", 2004), as Akka and Cassandra use.
 * Instead of one fixed timeout it keeps the worker's recent heartbeat
 * inter-arrival times and, for the silence so far, computes
 * φ = −log10(P(the next heartbeat arrives later than now)) under a normal
 * distribution fitted to them: a worker whose heartbeats have been late and
 * irregular (a loaded machine, GC pauses) is given longer before it is
 * suspected than one that beat like a clock.
 *
 * The configured heartbeat timeout bounds it (ARCHITECTURE.md, @tamp/worker):
 * - floor: a worker is never suspected before it has been silent for the
 *   timeout, whatever φ says (so the flag keeps its old meaning as a minimum);
 * - ceiling: a worker silent for `ceilingFactor` × the timeout (default 3) is
 *   suspected whatever its history, so a real death is always detected in
 *   bounded time.
 * Between the two, it is suspected once φ reaches the threshold (default 8,
 * Akka's: about one wrong suspicion in 10^8 under the fitted distribution).
 *
 * Written here rather than taken from npm: the packages found there are
 * unmaintained or tied to a transport; the method is a few lines, and every
 * input is a number given by the caller (no clock inside), so the unit tests
 * drive it with synthetic arrival times.
 */

export interface PhiAccrualOptions {
  /** The heartbeat timeout (ms): the floor of the silence before suspicion. */
  readonly timeoutMs: number;
  /** The interval workers heartbeat at (ms): seeds the history before any gap is seen. */
  readonly expectedIntervalMs: number;
  /** Suspect once φ reaches this (default 8). */
  readonly threshold?: number;
  /** Silence of this many timeouts is always suspected (default 3). */
  readonly ceilingFactor?: number;
  /** Inter-arrival times kept (default 100). */
  readonly windowSize?: number;
  /** The fitted distribution's smallest standard deviation (ms; default a quarter of the interval), so clock-like beats do not make φ explode at the first jitter. */
  readonly minStdDeviationMs?: number;
}

export class PhiAccrualDetector {
  private readonly intervals: number[];
  private last: number;
  readonly threshold: number;
  readonly ceilingMs: number;
  private readonly window: number;
  private readonly minStd: number;

  constructor(
    private readonly options: PhiAccrualOptions,
    /** When the worker was last heard from (its join). */
    start: number,
  ) {
    this.threshold = options.threshold ?? 8;
    this.ceilingMs = options.timeoutMs * (options.ceilingFactor ?? 3);
    this.window = options.windowSize ?? 100;
    this.minStd = options.minStdDeviationMs ?? Math.max(1, options.expectedIntervalMs / 4);
    this.intervals = [options.expectedIntervalMs];
    this.last = start;
  }

  /** A heartbeat arrived at `now`. */
  heartbeat(now: number): void {
    const gap = now - this.last;
    if (gap <= 0) return; // two answers in the same millisecond (or out of order): no new information
    this.intervals.push(gap);
    if (this.intervals.length > this.window) this.intervals.shift();
    this.last = now;
  }

  /** Milliseconds since the last heartbeat. */
  silence(now: number): number {
    return Math.max(0, now - this.last);
  }

  get meanMs(): number {
    return this.intervals.reduce((a, b) => a + b, 0) / this.intervals.length;
  }

  get stdDeviationMs(): number {
    const mean = this.meanMs;
    const variance = this.intervals.reduce((a, b) => a + (b - mean) ** 2, 0) / this.intervals.length;
    return Math.max(this.minStd, Math.sqrt(variance));
  }

  /**
   * φ for the silence at `now`: −log10 of the normal tail beyond it, with
   * the logistic approximation of the normal CDF Akka uses (accurate to
   * about 1e-4 and free of overflow for large y).
   */
  phi(now: number): number {
    const y = (this.silence(now) - this.meanMs) / this.stdDeviationMs;
    const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
    const p = y > 0 ? e / (1 + e) : 1 - 1 / (1 + e);
    return p <= 0 ? Infinity : -Math.log10(p);
  }

  /** Should the worker be declared lost at `now`? */
  suspect(now: number): boolean {
    const silence = this.silence(now);
    if (silence <= this.options.timeoutMs) return false;
    if (silence >= this.ceilingMs) return true;
    return this.phi(now) >= this.threshold;
  }
}
