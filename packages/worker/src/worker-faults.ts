/**
 * A worker's faults, as report.json `recoveries` lists them (ARCHITECTURE.md,
 * "Faults"): one entry per fault, from the moment the chief finds it (its
 * failure detector suspects the worker, its connection closed and it did not
 * come back within the disconnect grace, the worker Leaves with an error, or a
 * new process Joins its slot before the detector noticed) to the worker being
 * live again (its next heartbeat, or a Join of its slot), or never.
 *
 * Membership (membership.ts) calls these at its transitions; the clock is the
 * caller's (`now`), so unit tests drive it with synthetic times. Counted in the
 * chief's recovery metrics with a `cause` label from a fixed set
 * (WorkerOutcome), never a free text, so the label stays bounded.
 */
import { recoveryMetrics } from './shard-recovery.js';

/** How a worker's fault ended; the `cause` label of tamp_recoveries_total{role="worker"}. */
export type WorkerOutcome = 'restarted' | 'came back' | 'not back';

/** report.json `recoveries`: a worker found lost (or gone), and whether it came back. */
export interface WorkerRecoveryRecord {
  readonly role: 'worker';
  readonly index: number;
  /** What happened, for people: how it was found ("lost: silent for 10.4 s", "left: …") and how it ended. */
  readonly cause: string;
  /** How it ended: a new process took its slot ("restarted"), it heartbeat again ("came back": a false suspicion), or "not back" by the report. */
  readonly outcome: WorkerOutcome;
  /** Seconds from its last heartbeat to the chief finding the fault (the silence when suspected). */
  readonly detectedAfterSeconds: number;
  /** Seconds from that last heartbeat to the worker live again; null when it never came back. */
  readonly resumedAfterSeconds: number | null;
  /**
   * Updates undone on the parameter servers: always 0. A worker's fault undoes
   * nothing: sync steps go on with the others (a late gradient is counted in
   * report.json `droppedGradients`), async/ssp lose only the step it was computing,
   * never applied, and a restarted worker continues at the cluster's step.
   */
  readonly stepsLost: 0;
  /** The global step when it was live again (null: never). */
  readonly restoredStep: number | null;
  /** Where it took the weights it continued with (null: never came back). */
  readonly restoredFrom: 'parameter servers' | null;
  /** The job's restore generation when it was live again (when found, if never). */
  readonly generation: number;
}

/** Where the job was at an instant (CoordinatorState supplies it). */
export interface JobPoint {
  readonly step: bigint;
  readonly generation: bigint;
}

interface Fault {
  readonly index: number;
  /** Its last heartbeat before the silence (ms). */
  readonly since: number;
  readonly found: string;
  readonly detectedAfterSeconds: number;
  readonly foundAt: JobPoint;
  ended?: { outcome: Exclude<WorkerOutcome, 'not back'>; at: number; point: JobPoint };
}

const OUTCOME_TEXT: Readonly<Record<WorkerOutcome, string>> = {
  restarted: 'restarted',
  'came back': 'came back by itself (a false suspicion)',
  'not back': 'not back',
};

export class WorkerFaults {
  /** Every fault so far, in the order found. */
  private readonly faults: Fault[] = [];

  constructor(
    private readonly point: () => JobPoint,
    private readonly log: (message: string) => void,
  ) {
    // Registered with the chief's state (only the chief holds one), so its /metrics shows them from the start.
    recoveryMetrics();
  }

  /** Worker `index`, last heard at `lastHeard`, was found lost at `now` (`how`, when not by its silence alone). */
  lost(index: number, lastHeard: number, now: number, how?: string): void {
    this.open(index, lastHeard, now, `lost: ${how !== undefined ? `${how}, ` : ''}silent for ${seconds(lastHeard, now).toFixed(1)} s`);
  }

  /** Worker `index` left before finishing (`reason`, its error). */
  left(index: number, lastHeard: number, now: number, reason: string): void {
    this.open(index, lastHeard, now, `left: ${reason.length > 160 ? `${reason.slice(0, 160)}…` : reason}`);
  }

  /**
   * Worker `index` is live again at `now`: `restarted` (a Join of its slot) or
   * `came back` (a heartbeat, or a finished Leave, from a slot marked lost).
   * A Join of a slot with no open fault is a restart the failure detector had
   * not noticed yet: found and ended at once, its silence since `lastHeard`.
   */
  back(index: number, outcome: Exclude<WorkerOutcome, 'not back'>, lastHeard: number, now: number): void {
    let fault = this.faults.find((f) => f.index === index && f.ended === undefined);
    if (fault === undefined) {
      if (outcome !== 'restarted') return;
      fault = this.open(index, lastHeard, now, `restarted before it was found lost (silent for ${seconds(lastHeard, now).toFixed(1)} s)`);
    }
    const point = this.point();
    fault.ended = { outcome, at: now, point };
    const record = toRecord(fault);
    const m = recoveryMetrics();
    m.recoveries.inc({ role: 'worker', cause: outcome });
    m.seconds.observe({ role: 'worker', phase: 'resumed' }, record.resumedAfterSeconds ?? 0);
    m.stepsLost.inc({ role: 'worker' }, 0);
    this.log(
      `recovery: worker ${index} (${record.cause}): found after ${record.detectedAfterSeconds.toFixed(1)} s of silence, live again after ${(record.resumedAfterSeconds ?? 0).toFixed(1)} s at step ${point.step}, 0 steps lost`,
    );
  }

  /** One record per fault, in the order found; those not ended are "not back". */
  get records(): WorkerRecoveryRecord[] {
    return this.faults.map(toRecord);
  }

  private open(index: number, lastHeard: number, now: number, found: string): Fault {
    const fault: Fault = { index, since: lastHeard, found, detectedAfterSeconds: seconds(lastHeard, now), foundAt: this.point() };
    this.faults.push(fault);
    recoveryMetrics().seconds.observe({ role: 'worker', phase: 'detected' }, fault.detectedAfterSeconds);
    return fault;
  }
}

function seconds(from: number, to: number): number {
  return Math.max(0, to - from) / 1000;
}

function toRecord(f: Fault): WorkerRecoveryRecord {
  const outcome = f.ended?.outcome ?? 'not back';
  const point = f.ended?.point ?? f.foundAt;
  return {
    role: 'worker',
    index: f.index,
    // A restart found by the Join itself already says so.
    cause: f.found.startsWith('restarted') ? f.found : `${f.found}; ${OUTCOME_TEXT[outcome]}`,
    outcome,
    detectedAfterSeconds: f.detectedAfterSeconds,
    resumedAfterSeconds: f.ended === undefined ? null : seconds(f.since, f.ended.at),
    stepsLost: 0,
    restoredStep: f.ended === undefined ? null : Number(point.step),
    restoredFrom: f.ended === undefined ? null : 'parameter servers',
    generation: Number(point.generation),
  };
}
