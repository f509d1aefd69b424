/**
 * Membership: the job's worker slots and what each worker last reported
 * (join, heartbeat, leave, lost after silence), with read-only views. The
 * Coordinator's state (coordinator-state.ts) builds on it; every change
 * notifies the listeners (the chief's loop wakes on them).
 */
import type { HeartbeatRequest } from '@tamp/proto/tamp/v1/coordinator';
import { ClusterError } from '@tamp/core';
import { PhiAccrualDetector } from './failure-detector.js';
import { PresenceLedger } from './presence.js';
import { workerId } from './job-config.js';
import { type JobPoint, WorkerFaults, type WorkerRecoveryRecord } from './worker-faults.js';

export type WorkerState = 'joined' | 'lost' | 'left' | 'finished';

/** One worker slot as the Coordinator knows it (a read-only view). */
export interface WorkerRecord {
  /** The id the worker gave (its own identity). */
  readonly clientId: string;
  /** The id the parameter servers know it by: worker-<taskIndex>. */
  readonly workerId: string;
  readonly taskIndex: number;
  readonly state: WorkerState;
  readonly lastHeartbeat: number;
  readonly localStep: bigint;
  readonly epoch: number;
  readonly loss: number;
  readonly samples: bigint;
  /** The worker's own training time (s), from its first step. */
  readonly seconds: number;
  /** Where those seconds went (the worker's own measure): computing gradients, waiting for pushes, waiting for pulls. */
  readonly computeSeconds: number;
  readonly pushWaitSeconds: number;
  readonly pullWaitSeconds: number;
  /** --wire auto: the codecs the worker chose and why ('' otherwise). */
  readonly wireChoice: string;
  readonly backend: string;
  readonly joins: number;
  /** The generation of the slot token the worker holds (its join count, continued across a chief restart). */
  readonly generation: number;
}

/** The time split a heartbeat or Leave may carry (absent from callers that do not measure it). */
export type TimeSplit = Partial<Pick<HeartbeatRequest, 'computeSeconds' | 'pushWaitSeconds' | 'pullWaitSeconds' | 'wireChoice'>>;

type Slot = { -readonly [K in keyof WorkerRecord]: WorkerRecord[K] };

/** What a slot's earlier processes counted: a restarted worker counts from zero, and its counts continue these. */
interface Carried {
  readonly steps: bigint;
  readonly samples: bigint;
  readonly seconds: number;
  readonly computeSeconds: number;
  readonly pushWaitSeconds: number;
  readonly pullWaitSeconds: number;
}

const NOTHING_CARRIED: Carried = { steps: 0n, samples: 0n, seconds: 0, computeSeconds: 0, pushWaitSeconds: 0, pullWaitSeconds: 0 };

/** A worker's own counts (a heartbeat or its Leave), added to what its slot's earlier processes counted. */
function setCounts(r: Slot, c: { localStep: bigint; samples: bigint; seconds: number } & TimeSplit, carried: Carried): void {
  r.localStep = carried.steps + c.localStep;
  r.samples = carried.samples + c.samples;
  r.seconds = carried.seconds + c.seconds;
  if (c.computeSeconds !== undefined) r.computeSeconds = carried.computeSeconds + c.computeSeconds;
  if (c.pushWaitSeconds !== undefined) r.pushWaitSeconds = carried.pushWaitSeconds + c.pushWaitSeconds;
  if (c.pullWaitSeconds !== undefined) r.pullWaitSeconds = carried.pullWaitSeconds + c.pullWaitSeconds;
  if (c.wireChoice !== undefined && c.wireChoice !== '') r.wireChoice = c.wireChoice;
}

export interface MembershipOptions {
  readonly jobId: string;
  readonly numWorkers: number;
  /**
   * A worker silent for this long may be marked lost: the floor of the
   * phi-accrual detector (failure-detector.ts), whose ceiling is 3× it.
   */
  readonly heartbeatTimeoutMs: number;
  /** The interval workers heartbeat at (default a tenth of the timeout). */
  readonly heartbeatIntervalMs?: number;
  /**
   * A joined worker whose every Presence call to the chief closed (its
   * process died and the operating system closed its connection) and that
   * has neither opened another nor heartbeat within this long is lost,
   * without waiting out the heartbeat timeout. Undefined: only the
   * heartbeats judge (ARCHITECTURE.md, "Faults").
   */
  readonly disconnectGraceMs?: number;
  /** Epochs each worker runs: a worker that finished has completed them all. */
  readonly epochs: number;
  /**
   * async and ssp: a worker's step is its own count of batches, from this
   * step (the job's start or its checkpoint's), so a restarted process's
   * count continues its predecessors'. Undefined (sync): a worker's step is
   * the cluster's.
   */
  readonly ownStepsFrom?: number;
  readonly log?: (message: string) => void;
}

/** Mean of the workers' latest finite, positive losses (NaN before any). */
export function meanLoss(losses: readonly number[]): number {
  const finite = losses.filter((l) => Number.isFinite(l) && l > 0);
  return finite.length === 0 ? NaN : finite.reduce((a, b) => a + b, 0) / finite.length;
}

export class Membership {
  private readonly slots: Array<Slot | undefined>;
  private readonly listeners = new Set<() => void>();
  /** What each slot's holder presented at Join (a digest), by task index. */
  private readonly keys = new Map<number, string>();
  /** Each slot's failure detector, by task index (a new one per join). */
  private readonly detectors = new Map<number, PhiAccrualDetector>();
  /**
   * After a chief restart (rebuildFromShards): the newest token generation
   * the parameter servers saw per slot, and the slots whose holder has not
   * yet shown its token to this chief (adopt() takes them).
   */
  private floors: number[] = [];
  private readonly unconfirmed = new Set<number>();
  /** Slots rebuilt or adopted after a chief restart, whose holder's client id this chief has not learnt (a Join tells it). */
  private readonly anonymous = new Set<number>();
  private rebuilt = false;
  /** Per slot, what its earlier processes counted (a Join of a slot held before sets it). */
  private readonly carried = new Map<number, Carried>();
  /** Each slot's Presence calls, and when its last one closed (presence.ts). */
  private readonly presences: PresenceLedger;
  protected readonly log: (message: string) => void;
  /** Each worker fault, found to ended (report.json `recoveries`). */
  private readonly faults: WorkerFaults;

  constructor(readonly options: MembershipOptions) {
    this.slots = new Array<Slot | undefined>(options.numWorkers).fill(undefined);
    this.log = options.log ?? (() => {});
    this.faults = new WorkerFaults(() => this.jobPoint(), this.log);
    this.presences = new PresenceLedger(options.disconnectGraceMs);
  }

  /** The step and restore generation a worker fault is recorded at (CoordinatorState knows them). */
  protected jobPoint(): JobPoint {
    return { step: 0n, generation: 0n };
  }

  /** One entry per worker fault (report.json `recoveries`, worker-faults.ts). */
  get workerRecoveries(): WorkerRecoveryRecord[] {
    return this.faults.records;
  }

  /** Called after every membership or barrier change. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  protected changed(): void {
    for (const l of this.listeners) l();
  }

  /**
   * A worker takes a slot. `key` (a digest of what the worker presented,
   * role-auth.ts's WORKER_KEY_KEY) binds the slot: while it is live, only a
   * Join with the same key takes it back (a restarted worker under a
   * launcher, which keeps its key); another is refused as NOT_READY
   * (retried) until the slot is declared lost, so a foreign client cannot
   * take a live worker's place.
   */
  join(clientId: string, requestedIndex: number, backend: string, now = Date.now(), key = ''): WorkerRecord {
    const n = this.options.numWorkers;
    let index = -1;
    if (requestedIndex >= 0) {
      if (requestedIndex >= n) throw new ClusterError('CLUSTER_CONFIG', `join: task index ${requestedIndex} is out of range: the job has ${n} workers (0..${n - 1})`);
      const current = this.slots[requestedIndex];
      if (current !== undefined && current.clientId !== clientId && !this.anonymous.has(requestedIndex) && (current.state === 'joined' || current.state === 'finished')) {
        throw new ClusterError('CLUSTER_CONFIG', `join: task index ${requestedIndex} is held by "${current.clientId}"; give each worker its own --index`);
      }
      index = requestedIndex;
    } else {
      index = this.slots.findIndex((s) => s !== undefined && s.clientId === clientId);
      if (index === -1) index = this.slots.findIndex((s) => s === undefined);
      if (index === -1) index = this.slots.findIndex((s) => s?.state === 'lost' || s?.state === 'left');
      if (index === -1) throw new ClusterError('CLUSTER_CONFIG', `join: all ${n} worker slots of the job are taken`);
    }
    const previous = this.slots[index];
    if (previous?.state === 'finished') {
      throw new ClusterError('CLUSTER_CONFIG', `join: worker ${index} already finished its share of the job`);
    }
    if (previous?.state === 'joined' && this.keys.get(index) !== key) {
      throw new ClusterError('NOT_READY', `join: worker slot ${index} is held by a live worker; it can be taken once the chief declares that worker lost`);
    }
    const record: Slot = {
      clientId,
      workerId: workerId(index),
      taskIndex: index,
      state: 'joined',
      lastHeartbeat: now,
      localStep: previous?.localStep ?? 0n,
      epoch: previous?.epoch ?? 0,
      loss: previous?.loss ?? 0,
      samples: previous?.samples ?? 0n,
      seconds: previous?.seconds ?? 0,
      computeSeconds: previous?.computeSeconds ?? 0,
      pushWaitSeconds: previous?.pushWaitSeconds ?? 0,
      pullWaitSeconds: previous?.pullWaitSeconds ?? 0,
      wireChoice: previous?.wireChoice ?? '',
      backend,
      joins: (previous?.joins ?? 0) + 1,
      // Above every token the parameter servers may have seen for the slot (a restarted chief's floor).
      generation: Math.max(previous?.generation ?? 0, this.floors[index] ?? 0) + 1,
    };
    this.slots[index] = record;
    this.unconfirmed.delete(index);
    this.anonymous.delete(index);
    this.keys.set(index, key);
    this.presences.clear(index);
    // A new process counts from zero; the slot's counts go on from its predecessors' (report.json workerStats).
    if (previous !== undefined) {
      const from = this.options.ownStepsFrom;
      this.carried.set(index, {
        steps: from === undefined ? 0n : previous.localStep > BigInt(from) ? previous.localStep - BigInt(from) : 0n,
        samples: previous.samples,
        seconds: previous.seconds,
        computeSeconds: previous.computeSeconds,
        pushWaitSeconds: previous.pushWaitSeconds,
        pullWaitSeconds: previous.pullWaitSeconds,
      });
    }
    const { heartbeatTimeoutMs, heartbeatIntervalMs } = this.options;
    this.detectors.set(index, new PhiAccrualDetector({ timeoutMs: heartbeatTimeoutMs, expectedIntervalMs: heartbeatIntervalMs ?? heartbeatTimeoutMs / 10 }, now));
    // A new process in a slot held before: a restart (of a lost or gone worker, or one the detector had not noticed yet).
    if (previous !== undefined) this.faults.back(index, 'restarted', previous.lastHeartbeat, now);
    this.changed();
    // Logged after the listeners ran (the chief writes its recoveries there): what reads the line sees them written.
    this.log(`${record.workerId} (${clientId}, ${backend}) ${record.joins > 1 ? 'rejoined' : 'joined'}`);
    return record;
  }

  /**
   * A restarted chief rebuilds the slots from what the parameter servers
   * know (ARCHITECTURE.md, "Faults"): `generations`, the newest slot-token
   * generation each worker used there, and `live`, the workers they waited
   * for. A worker they saw gets its slot back, joined if live (its failure
   * detector starts now, so one that died meanwhile is found lost in the
   * usual time) and lost otherwise; its counts come with its first heartbeat.
   * A worker they never saw keeps an empty slot (it may still Join).
   */
  rebuildFromShards(live: readonly string[], generations: ReadonlyMap<string, number>, now = Date.now()): void {
    this.rebuilt = true;
    this.floors = this.slots.map((_, i) => generations.get(workerId(i)) ?? 0);
    this.floors.forEach((generation, index) => {
      if (generation === 0 || this.slots[index] !== undefined) return;
      this.slots[index] = this.emptySlot(index, live.includes(workerId(index)) ? 'joined' : 'lost', generation, now);
      this.unconfirmed.add(index);
    });
    this.changed();
  }

  /**
   * After a chief restart: a call from worker `id` whose token `verify`
   * accepts takes its slot, when this chief has not yet seen the slot's
   * holder and the token is no older than any the parameter servers saw
   * (so only a worker the previous chief admitted, holding the slot's newest
   * token, resumes without a Join). `key` binds the slot as a Join would.
   */
  adopt(id: string, verify: (workerId: string) => number | undefined, key: string | undefined, now = Date.now()): void {
    if (!this.rebuilt) return;
    const m = /^worker-(\d{1,5})$/.exec(id);
    const index = m !== null ? Number(m[1]) : -1;
    if (index < 0 || index >= this.options.numWorkers || id !== workerId(index)) return;
    const current = this.slots[index];
    if (current !== undefined && !this.unconfirmed.has(index)) return;
    const generation = verify(workerId(index));
    if (generation === undefined || generation < (current?.generation ?? this.floors[index] ?? 0)) return;
    this.slots[index] = { ...(current ?? this.emptySlot(index, 'joined', generation, now)), generation, joins: Math.max(current?.joins ?? 0, generation) };
    this.unconfirmed.delete(index);
    if (key !== undefined) this.keys.set(index, key);
    this.log(`${workerId(index)} resumed with this chief (its slot token of generation ${generation})`);
    this.changed();
  }

  private emptySlot(index: number, state: WorkerState, generation: number, now: number): Slot {
    this.anonymous.add(index);
    const { heartbeatTimeoutMs, heartbeatIntervalMs } = this.options;
    this.detectors.set(index, new PhiAccrualDetector({ timeoutMs: heartbeatTimeoutMs, expectedIntervalMs: heartbeatIntervalMs ?? heartbeatTimeoutMs / 10 }, now));
    // Its client id, backend and counts are unknown until it calls: its heartbeats bring the counts.
    return {
      clientId: workerId(index),
      workerId: workerId(index),
      taskIndex: index,
      state,
      lastHeartbeat: now,
      localStep: 0n,
      epoch: 0,
      loss: 0,
      samples: 0n,
      seconds: 0,
      computeSeconds: 0,
      pushWaitSeconds: 0,
      pullWaitSeconds: 0,
      wireChoice: '',
      backend: '',
      joins: generation,
      generation,
    };
  }

  protected find(clientOrWorkerId: string, what: string): Slot {
    const r = this.slots.find((s) => s !== undefined && (s.clientId === clientOrWorkerId || s.workerId === clientOrWorkerId));
    if (r === undefined) {
      const id = JSON.stringify(clientOrWorkerId.slice(0, 64));
      throw new ClusterError('UNKNOWN_WORKER', `${what}: worker ${id} has not joined this job; call Join first`);
    }
    return r;
  }

  /** The slot a client id or worker id names (a read-only view), as find() resolves it. */
  slot(clientOrWorkerId: string, what: string): WorkerRecord {
    return this.find(clientOrWorkerId, what);
  }

  /** A worker's progress. (The request's `accuracy` is not kept: workers do not measure it.) */
  heartbeat(req: Pick<HeartbeatRequest, 'workerId' | 'localStep' | 'epoch' | 'loss' | 'samples' | 'seconds'> & Partial<Pick<HeartbeatRequest, 'chiefRejoinBackend'>> & TimeSplit, now = Date.now()): WorkerRecord {
    const r = this.find(req.workerId, 'heartbeat');
    if (r.state === 'finished' || r.state === 'left') {
      // A heartbeat sent before the worker's Leave but answered after it: the
      // Leave's final counts stand.
      r.lastHeartbeat = now;
      return r;
    }
    this.detectors.get(r.taskIndex)?.heartbeat(now);
    // A heartbeat after its Presence call closed: the process lives (that connection broke, not the worker).
    this.presences.clear(r.taskIndex);
    if (r.state === 'lost') {
      // It came back before anyone took its place: it simply continues.
      r.state = 'joined';
      this.log(`${r.workerId} is back`);
      this.faults.back(r.taskIndex, 'came back', r.lastHeartbeat, now);
    }
    r.lastHeartbeat = now;
    r.epoch = req.epoch;
    r.loss = req.loss;
    setCounts(r, req, this.carried.get(r.taskIndex) ?? NOTHING_CARRIED);
    // A slot rebuilt after a chief restart learns its backend here (its Join went to the previous chief).
    if (r.backend === '' && req.chiefRejoinBackend !== undefined) r.backend = req.chiefRejoinBackend;
    this.changed();
    return r;
  }

  leave(id: string, finished: boolean, reason: string, final?: { localStep: bigint; samples: bigint; seconds: number } & TimeSplit, now = Date.now()): void {
    const r = this.find(id, 'leave');
    // Finished while marked lost: it was alive (a false suspicion). Gone with an error from a live slot: a fault.
    if (finished && r.state === 'lost') this.faults.back(r.taskIndex, 'came back', r.lastHeartbeat, now);
    if (!finished && r.state === 'joined') this.faults.left(r.taskIndex, r.lastHeartbeat, now, reason);
    if (final !== undefined && (final.localStep > 0n || final.samples > 0n)) setCounts(r, final, this.carried.get(r.taskIndex) ?? NOTHING_CARRIED);
    r.state = finished ? 'finished' : 'left';
    if (finished) r.epoch = Math.max(r.epoch, this.options.epochs);
    this.log(`${r.workerId} ${finished ? 'finished' : `left (${reason})`}`);
    this.changed();
  }

  /**
   * A Presence call of `workerId` holding a token of `generation` opened
   * (`open` true) or closed (the connection under it closed: the worker's
   * process died, or that connection broke). When the slot's last call of
   * its current generation closes, the disconnect grace starts (checkLost).
   */
  presence(workerId: string, generation: number, open: boolean, now = Date.now()): void {
    const r = this.find(workerId, 'presence');
    if (open) this.presences.opened(r.taskIndex, generation);
    else this.presences.closedCall(r.taskIndex, generation, r.state === 'joined' && r.generation === generation, now);
  }

  /**
   * Mark as lost the workers whose connection closed and that did not come
   * back within the disconnect grace, and those their failure detector
   * suspects (silent past the timeout and improbably late for their own
   * heartbeat history, or silent for 3× the timeout); returns them. A lost
   * worker that heartbeats again is back (heartbeat()).
   */
  checkLost(now = Date.now()): WorkerRecord[] {
    const lost: WorkerRecord[] = [];
    for (const r of this.slots) {
      if (r?.state !== 'joined') continue;
      const detector = this.detectors.get(r.taskIndex);
      const closedFor = this.presences.expired(r.taskIndex, r.generation, now);
      if (closedFor !== undefined) {
        r.state = 'lost';
        lost.push(r);
        this.presences.clear(r.taskIndex);
        this.faults.lost(r.taskIndex, r.lastHeartbeat, now, 'its connection to the chief closed');
        this.log(`${r.workerId} lost: its connection to the chief closed ${closedFor} ms ago and it has not come back (last heartbeat ${now - r.lastHeartbeat} ms ago)`);
      } else if (detector?.suspect(now) === true) {
        r.state = 'lost';
        lost.push(r);
        this.faults.lost(r.taskIndex, r.lastHeartbeat, now);
        const phi = detector.phi(now);
        this.log(`${r.workerId} lost: no heartbeat for ${now - r.lastHeartbeat} ms (phi ${Number.isFinite(phi) ? phi.toFixed(1) : 'inf'}, its heartbeats came every ${Math.round(detector.meanMs)} ± ${Math.round(detector.stdDeviationMs)} ms)`);
      }
    }
    if (lost.length > 0) this.changed();
    return lost;
  }

  /** When the disconnect grace of a closed Presence ends next (undefined: none pending). */
  nextDisconnectDeadline(): number | undefined {
    return this.presences.nextDeadline();
  }

  /** Mean of the workers' latest losses. */
  get loss(): number {
    return meanLoss(this.workers.map((w) => w.loss));
  }

  /** Workers the parameter servers should wait for: still training, or expected to join. */
  get liveWorkerIds(): string[] {
    return this.slots.flatMap((s, i) => (s === undefined ? [workerId(i)] : s.state === 'joined' ? [s.workerId] : []));
  }

  get workers(): WorkerRecord[] {
    return this.slots.filter((s): s is Slot => s !== undefined);
  }

  get allJoinedOnce(): boolean {
    return this.slots.every((s) => s !== undefined);
  }

  /** Workers still training. */
  get active(): WorkerRecord[] {
    return this.workers.filter((w) => w.state === 'joined');
  }

  /** Every slot has finished, or is lost/left with no one training any more. */
  get trainingOver(): boolean {
    return this.allJoinedOnce && this.active.length === 0;
  }

  /** Every worker joined once and none finished: all were lost or left. */
  get allLost(): boolean {
    return this.allJoinedOnce && this.workers.every((w) => w.state === 'lost' || w.state === 'left');
  }

  /** Epochs completed by the slowest worker still training (or all, when none is). */
  get completedEpochs(): number {
    const relevant = this.workers.filter((w) => w.state === 'joined' || w.state === 'finished');
    return relevant.length === 0 ? 0 : Math.min(...relevant.map((w) => w.epoch));
  }

  get samples(): bigint {
    return this.workers.reduce((n, w) => n + w.samples, 0n);
  }

  /**
   * Training throughput: all samples over the longest worker's own training
   * time (the workers train side by side), so start-up and the chief's
   * evaluations do not count.
   */
  get samplesPerSecond(): number {
    const seconds = Math.max(0, ...this.workers.map((w) => w.seconds));
    return seconds > 0 ? Number(this.samples) / seconds : 0;
  }
}
