/**
 * The chief's and the workers' training metrics (prom-client, in @tamp/rpc's
 * process registry, so `--metrics-port` serves them beside the RPC
 * metrics). Every value is read at scrape time (collect callbacks) from
 * state the chief and the training loop keep anyway: the Coordinator's
 * state for the chief, a `WorkerLoopStats` the loop updates for a worker.
 * Labels: a worker's task index, a worker or job state, a step phase; never
 * ids or steps. ARCHITECTURE.md (@tamp/worker) lists the names.
 */
import { rpcMetrics } from '@tamp/rpc';
import { Counter, Gauge } from 'prom-client';
import type { CoordinatorState } from './coordinator-state.js';
import type { WorkerState } from './membership.js';

const registers = [rpcMetrics.registry];

// ---- chief ----

/** The Coordinator's state of the latest chief started in this process. */
let chief: CoordinatorState | undefined;

let chiefRegistered = false;

/**
 * Serve this Coordinator's state as the chief's metrics (the latest one
 * started wins). The metrics are registered on the first call, so other
 * roles' processes do not show empty chief metrics.
 */
export function trackCoordinator(state: CoordinatorState): void {
  chief = state;
  if (!chiefRegistered) registerChiefMetrics();
  chiefRegistered = true;
}

function chiefGauge(name: string, help: string, read: (s: CoordinatorState) => number | bigint): Gauge {
  return new Gauge({
    name,
    help,
    registers,
    collect() {
      if (chief !== undefined) this.set(Number(read(chief)));
    },
  });
}

function chiefCounter(name: string, help: string, read: (s: CoordinatorState) => number | bigint): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect() {
      if (chief === undefined) return;
      this.reset();
      this.inc(Number(read(chief)));
    },
  });
}

const WORKER_STATES: readonly WorkerState[] = ['joined', 'lost', 'left', 'finished'];
const JOB_STATES = ['running', 'finishing', 'done', 'failed'] as const;

function registerChiefMetrics(): void {
  new Gauge({
    name: 'tamp_chief_workers',
    help: 'Worker slots by state: joined (live), lost (silent past the failure detector), left (gave up), finished',
    labelNames: ['state'],
    registers,
    collect() {
      if (chief === undefined) return;
      const counts = new Map<string, number>(WORKER_STATES.map((s) => [s, 0]));
      for (const w of chief.workers) counts.set(w.state, (counts.get(w.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'tamp_chief_job_state',
    help: "1 for the job's current state (running, finishing, done, failed), 0 for the others",
    labelNames: ['state'],
    registers,
    collect() {
      if (chief === undefined) return;
      for (const state of JOB_STATES) this.set({ state }, chief.jobState === state ? 1 : 0);
    },
  });
  chiefGauge('tamp_chief_live_workers', 'Workers the chief counts as training (what the parameter servers wait for)', (s) => s.liveWorkerIds.length);
  chiefGauge('tamp_chief_global_step', "The parameter servers' version as the chief last read it (shard 0)", (s) => s.globalStep);
  chiefGauge('tamp_chief_total_steps', 'Steps the whole job takes', (s) => s.totalSteps);
  chiefGauge('tamp_chief_epochs_evaluated', 'The last epoch the chief scored on the validation split', (s) => s.epoch);
  chiefGauge('tamp_chief_validation_accuracy', "Classifiers: the last evaluated epoch's validation accuracy (0 before any)", (s) => s.validationAccuracy);
  chiefGauge('tamp_chief_validation_map', "Detectors: the last evaluated epoch's validation mAP@0.5 (0 before any)", (s) => s.validationMAP);
  chiefGauge('tamp_chief_loss', "Mean of the workers' latest training losses", (s) => (Number.isFinite(s.loss) ? s.loss : 0));
  chiefGauge('tamp_chief_samples_per_second', "The job's training rate (all workers' samples over the longest training time)", (s) => s.samplesPerSecond);
  chiefCounter('tamp_chief_samples_total', 'Samples the workers reported trained in this run', (s) => s.samples);
  chiefGauge('tamp_chief_checkpoint_step', 'The step of the last complete checkpoint written in this run (0 before any)', (s) => s.checkpointStep);
  chiefCounter('tamp_chief_checkpoints_total', 'Checkpoints written in this run', (s) => s.checkpointsWritten);
  chiefCounter('tamp_chief_checkpoint_barriers_total', 'Checkpoint barriers released (written or abandoned)', (s) => s.barrierWaits.released);
  chiefCounter(
    'tamp_chief_checkpoint_barrier_wait_seconds_total',
    "Seconds from each checkpoint barrier's first worker arriving to its release (the others catching up, then the checkpoint written)",
    (s) => s.barrierWaits.seconds,
  );
}

// ---- worker ----

/** Where a worker's step time goes (the training loop's phases). */
export const STEP_PHASES = ['set_weights', 'compute', 'readback', 'push_wait', 'pull_wait', 'checkpoint_wait'] as const;
export type StepPhase = (typeof STEP_PHASES)[number];

/** What a worker's training loop counts; the metrics read it at scrape time. */
export class WorkerLoopStats {
  /** Gradients computed and handed to the comm thread. */
  steps = 0;
  /** The step the worker is at (what its heartbeats report). */
  step = 0;
  samples = 0;
  dropped = 0;
  loss = NaN;
  /** Training time so far (s). */
  seconds = 0;
  readonly phaseSeconds: Record<StepPhase, number> = { set_weights: 0, compute: 0, readback: 0, push_wait: 0, pull_wait: 0, checkpoint_wait: 0 };
}

/** Per task index, the latest loop started in this process. */
const loops = new Map<number, WorkerLoopStats>();
let workerRegistered = false;

/** Stats for worker `taskIndex`'s loop, served as its metrics (registered on the first call, as the chief's). */
export function trackWorkerLoop(taskIndex: number): WorkerLoopStats {
  const stats = new WorkerLoopStats();
  if (!workerRegistered) registerWorkerMetrics();
  workerRegistered = true;
  loops.set(taskIndex, stats);
  return stats;
}

function workerCounter(name: string, help: string, read: (s: WorkerLoopStats) => number): void {
  new Counter({
    name,
    help,
    labelNames: ['worker'],
    registers,
    collect() {
      this.reset();
      for (const [i, s] of loops) this.inc({ worker: String(i) }, read(s));
    },
  });
}

function workerGauge(name: string, help: string, read: (s: WorkerLoopStats) => number): void {
  new Gauge({
    name,
    help,
    labelNames: ['worker'],
    registers,
    collect() {
      this.reset();
      for (const [i, s] of loops) this.set({ worker: String(i) }, read(s));
    },
  });
}

function registerWorkerMetrics(): void {
  workerCounter('tamp_worker_steps_total', 'Gradients this worker computed and pushed, by task index', (s) => s.steps);
  workerGauge('tamp_worker_step', 'The step the worker is at (as its heartbeats report it), by task index', (s) => s.step);
  workerCounter('tamp_worker_samples_total', 'Samples this worker trained on (sync: not counting gradients dropped as late), by task index', (s) => s.samples);
  workerGauge('tamp_worker_samples_per_second', "This worker's training rate since its first step, by task index", (s) => (s.seconds > 0 ? s.samples / s.seconds : 0));
  workerCounter('tamp_worker_dropped_gradients_total', 'sync: gradients the servers dropped as late, by task index', (s) => s.dropped);
  workerGauge('tamp_worker_loss', "The loss of the worker's last step, by task index", (s) => (Number.isFinite(s.loss) ? s.loss : 0));
  new Counter({
    name: 'tamp_worker_step_phase_seconds_total',
    help: 'Where step time went, by task index and phase: set_weights, compute (gradients), readback (gradients to the CPU), push_wait (for a push slot or, in sync, the step), pull_wait (for the next parameters), checkpoint_wait (at the chief\'s barrier)',
    labelNames: ['worker', 'phase'],
    registers,
    collect() {
      this.reset();
      for (const [i, s] of loops) for (const phase of STEP_PHASES) this.inc({ worker: String(i), phase }, s.phaseSeconds[phase]);
    },
  });
}
