/**
 * The chief: initialises the parameter servers from the model (zoo or
 * model.json) or from a checkpoint, runs the Coordinator, keeps the servers
 * told which workers are alive, runs checkpoint barriers, evaluates on the
 * validation split after each epoch, and scores the final model on the test
 * and validation splits for the report.
 *
 * `Chief` names each of these steps so a test can call them one at a time;
 * `runChief` (what `tamp chief` calls) runs them in order.
 */
import { join } from 'node:path';
import { ClusterError, errorMessage } from '@tamp/core';
import { describeScore, lastValidation, saveLayersModel } from '@tamp/core/node';
import type { ShardStatusResponse } from '@tamp/proto/tamp/v1/parameter_server';
import { ParameterClient, ShardClient } from '@tamp/parameter-server';
import { checkpointsRoot, restoreTensors } from './checkpoints.js';
import { ChiefCheckpoints } from './chief-checkpoints.js';
import { ChiefEvaluation } from './chief-evaluation.js';
import { type ChiefJob, type ChiefOptions, claimsFor, jobConfigFor, planChiefJob } from './chief-job.js';
import { type RunningCoordinator, startCoordinator } from './coordinator.js';
import type { CoordinatorState } from './coordinator-state.js';
import { encodeJobConfig, jobAdamCorrection, jobMomentumCorrection, jobWire } from './job-config.js';
import { type ChiefReport, type ClusterEpochRecord, type FinalEvaluation, type JobRecoveryRecord, buildReport, describeBatches, writeReport } from './report.js';
import { RecoveryJournal } from './recovery-journal.js';
import { type RecoveryRecord, ShardWatch, announceRecoveries, recoverShards } from './shard-recovery.js';
import { type ChiefRecoveryRecord, Takeover, isRunningJob, probeShards } from './chief-rejoin.js';
import { type ChainLink, ReplicaChain } from './replica-chain.js';
import { locateChain } from './replica-rejoin.js';
import { failOver } from './replica-failover.js';
import { CHIEF_SECRET_KEY, INSECURE, newSecret } from '@tamp/rpc';

const DEFAULT_JOIN_TIMEOUT_MS = 300_000;
/** A worker whose Presence call closed is dropped after this long unless it comes back (Membership.presence). */
const DEFAULT_DISCONNECT_GRACE_MS = 1_000;
const DEFAULT_PEER_TIMEOUT_MS = 60_000;

export class Chief {
  readonly params: ParameterClient;
  readonly log: (message: string) => void;
  /** Epoch records so far (a resumed job continues the checkpoint's). */
  readonly history: ClusterEpochRecord[];
  /** Manifests of the checkpoints this run wrote (and, a restarted chief, those found under --out). */
  readonly checkpoints: string[];
  /** Checkpoint barriers served, and their files written in the background (chief-checkpoints.ts). */
  private readonly ckpt: ChiefCheckpoints;
  /** Faults survived (report.json `recoveries`). */
  readonly recoveries: Array<RecoveryRecord | ChiefRecoveryRecord> = [];
  /** Every shard's status, asked on each pass; one that came back without its state is restored (shard-recovery.ts). */
  readonly watch: ShardWatch;
  private readonly interval: number;
  private coordinator: RunningCoordinator | undefined;
  private announced = '';
  private started = 0;
  /** Since when every worker has been lost (undefined while one is not). */
  private allLostSince: number | undefined;
  /** The validation score of each epoch, and the final scores (chief-evaluation.ts). */
  private readonly evaluation: ChiefEvaluation;
  private wake: () => void = () => {};
  /** The job's chief secret (ChiefOptions.chiefSecret). */
  private readonly secret: string;
  /** A restarted chief: taking its running job over (chief-rejoin.ts). */
  private readonly takeover: Takeover | undefined;
  /** --ps-replicas 1: where each shard's primary and backup live (replica-chain.ts). */
  readonly chain: ReplicaChain | undefined;
  /** report.json `recoveries` as written so far, for a chief that takes the job over after this one (recovery-journal.ts). */
  private readonly journal: RecoveryJournal;
  /** A restarted chief: the recoveries the job's earlier chiefs recorded. */
  private earlierRecoveries: readonly JobRecoveryRecord[] = [];

  /**
   * `running`: the parameter servers' statuses when they already hold this
   * job (a restarted chief): it takes the job over instead of assigning it;
   * with --ps-replicas 1, each shard's from where it lives now, and the chain
   * read back from them (replica-rejoin.ts).
   */
  constructor(
    readonly options: ChiefOptions,
    readonly job: ChiefJob,
    running?: { readonly statuses: readonly ShardStatusResponse[]; readonly chain?: readonly ChainLink[] },
  ) {
    this.log = options.log ?? (() => {});
    this.interval = options.heartbeatIntervalMs ?? 1_000;
    this.secret = options.chiefSecret !== undefined && options.chiefSecret !== '' ? options.chiefSecret : newSecret();
    const rpc = { security: options.security ?? INSECURE, metadata: { [CHIEF_SECRET_KEY]: this.secret } };
    this.params = new ParameterClient(options.psAddresses, job.placement, options.jobId, { rpc });
    this.chain = options.psReplicas === 1 ? new ReplicaChain(options.psAddresses, this.params, options.jobId, rpc, this.log) : undefined;
    this.history = [...(job.restored?.manifest.history ?? [])];
    this.watch = new ShardWatch(this.params, options.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS, this.log);
    this.takeover = running !== undefined ? new Takeover(running.statuses, options.out, options.jobId, this.log) : undefined;
    // Above any generation an earlier chief gave the workers: its own start, or an earlier takeover's time plus its failovers.
    if (running?.chain !== undefined) this.chain?.adopt(running.chain, BigInt(Date.now()));
    this.journal = new RecoveryJournal(options.out, options.jobId, this.log);
    this.ckpt = new ChiefCheckpoints({
      options,
      job,
      params: this.params,
      history: this.history,
      log: this.log,
      state: () => this.state,
      versionsMayDiffer: () => job.training.mode !== 'sync' && (this.recoveries.length > 0 || this.earlierRecoveries.some((r) => r.role !== 'worker')),
    });
    this.checkpoints = this.ckpt.written;
    this.evaluation = new ChiefEvaluation(job, this.params, this.history, this.log);
  }

  /**
   * Wait for the parameter servers; check the options and load what the job
   * needs (see planChiefJob); nothing is started yet. Servers that already
   * hold the job mean this chief restarted: it will take the job over
   * (rejoining), and --out holds the job's own checkpoints, kept.
   */
  static async create(options: ChiefOptions): Promise<Chief> {
    const log = options.log ?? (() => {});
    const secret = options.chiefSecret !== undefined && options.chiefSecret !== '' ? options.chiefSecret : newSecret();
    let statuses = await probeShards(options.psAddresses, options.jobId, secret, options.security);
    const running = isRunningJob(statuses);
    // --ps-replicas 1: a shard a failover moved lives on its promoted backup; the chain comes back from the servers.
    let chain: ChainLink[] | undefined;
    if (running && options.psReplicas === 1) {
      const located = await locateChain(options.psAddresses, statuses, async (address) => (await probeShards([address], options.jobId, secret, options.security))[0] as ShardStatusResponse);
      ({ statuses, links: chain } = located);
    }
    if (running) log(`the parameter servers already hold job "${options.jobId}" (shard 0 at version ${statuses[0]?.version ?? 0n}): this chief restarted and takes the running job over`);
    return new Chief({ ...options, chiefSecret: secret }, await planChiefJob(options, log, { rejoin: running }), running ? { statuses, ...(chain !== undefined ? { chain } : {}) } : undefined);
  }

  /** Whether this chief takes over a running job (it restarted) rather than starting it. */
  get rejoining(): boolean {
    return this.takeover !== undefined;
  }

  /** Start the shards, or take them over (a restarted chief: the checkpoints and epoch records so far come back from --out). */
  async startOrAdoptShards(): Promise<void> {
    if (this.takeover !== undefined) {
      this.takeover.adoptShards(this.watch, this.history, this.checkpoints);
      this.earlierRecoveries = this.journal.earlier();
    } else {
      this.journal.clear();
      await this.startShards();
    }
  }

  /** Every fault the job survived so far: the earlier chiefs' (a restarted chief), then this chief's own, then the workers'. */
  get allRecoveries(): JobRecoveryRecord[] {
    return [...this.earlierRecoveries, ...this.recoveries, ...(this.coordinator?.state.workerRecoveries ?? [])];
  }

  /** This chief's parameter-server recoveries: saved to `<out>/recoveries.json` first, then counted and logged (so the log line implies the record). */
  private record(records: readonly RecoveryRecord[]): void {
    if (records.length === 0) return;
    this.recoveries.push(...records);
    this.persistRecoveries();
    announceRecoveries(records, this.log);
  }

  /** Keep `<out>/recoveries.json` current (written only when the list changed). */
  private persistRecoveries(): void {
    if (this.coordinator !== undefined) this.journal.save(this.allRecoveries);
  }

  /** The Coordinator's state (after startCoordinator). */
  get state(): CoordinatorState {
    // Internal invariant: runChief starts the Coordinator before any step that reads it;
    // only a test calling the steps out of order gets here.
    if (this.coordinator === undefined) throw new Error('chief: startCoordinator() has not run');
    return this.coordinator.state;
  }

  /** Start shards: wait until every parameter server answers, then Assign each its placed parts, the optimizer and the mode. */
  async startShards(): Promise<void> {
    const { training: t, restored } = this.job;
    this.log(`initialising ${this.params.shards.length} parameter server(s) with ${this.job.specs.length} variables (${t.optimizer.name}, ${t.mode}, push ${t.wire?.push ?? 'fp32'}, pull ${t.wire?.pull ?? 'fp32'})`);
    const correction = jobMomentumCorrection(t);
    if (t.wire?.push === 'auto' || t.wire?.push.startsWith('topk') === true) {
      this.log(`top-k momentum correction ${correction.on ? 'on' : 'off'}: ${correction.why}`);
      const adam = jobAdamCorrection(t);
      this.log(`top-k Adam correction ${adam.on ? 'on' : 'off'}: ${adam.why}`);
    }
    await Promise.all(
      this.params.shards.map(async (shard, i) => {
        await shard.waitReachable(120_000);
        await shard.assign(
          {
            shardIndex: i,
            optimizer: t.optimizer,
            version: restored?.version ?? 0n,
            mode: t.mode,
            syncReplicas: this.options.numWorkers - t.backupWorkers,
            staleness: t.staleness,
            workerIds: this.job.workerIds,
            workerStep: BigInt(this.job.startStep),
            ...jobWire(t),
          },
          restored !== undefined ? restoreTensors(restored, this.params, i, t.optimizer) : this.params.partsFor(i, this.job.initial),
          checkpointsRoot(this.options.out),
        );
        this.watch.healthy(i, restored?.version ?? 0n);
      }),
    );
    await this.chain?.setup();
  }

  /** Serve the Coordinator (workers may join from now on); returns its port. */
  async startCoordinator(): Promise<number> {
    const { options, job, chain } = this;
    this.coordinator = await startCoordinator({
      jobId: options.jobId,
      numWorkers: options.numWorkers,
      jobConfigJson: encodeJobConfig(jobConfigFor(options, job, this.interval)),
      psAddresses: options.psAddresses,
      ...(chain !== undefined ? { placement: () => ({ addresses: chain.addresses(), generation: chain.generation }) } : {}),
      heartbeatIntervalMs: this.interval,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 10_000,
      ...(options.disconnectGraceMs !== Infinity ? { disconnectGraceMs: options.disconnectGraceMs ?? DEFAULT_DISCONNECT_GRACE_MS } : {}),
      rpc: { security: options.security ?? INSECURE, ...(options.healthPort !== undefined ? { healthPort: options.healthPort } : {}) },
      chiefSecret: this.secret,
      epochs: job.training.epochs,
      totalSteps: job.totalSteps,
      ...(job.training.mode !== 'sync' ? { ownStepsFrom: job.startStep } : {}),
      log: this.log,
      ...claimOptions(claimsFor(options, job, this.takeover?.newestManifest())),
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(this.takeover !== undefined ? { prepare: (state: CoordinatorState) => this.takeover?.rebuild(state) } : {}),
    });
    options.onListening?.(this.coordinator.port);
    // Wake the loop at once when membership or a checkpoint barrier changes (workers wait at barriers for it).
    // The recoveries are written at once: a worker's fault ends on a Join or a heartbeat, and a chief killed
    // right after must not take its record along (recovery-journal.ts).
    this.coordinator.state.onChange(() => {
      this.persistRecoveries();
      this.wake();
    });
    this.started = Date.now();
    this.evaluation.start();
    return this.coordinator.port;
  }

  /** A restarted chief's own recovery record, once the workers said how long it was silent (or at the report, at the latest). */
  private recordTakeover(final: boolean): void {
    const record = this.takeover?.record(this.state, final);
    if (record !== undefined) this.recoveries.unshift(record);
  }

  /** Wait for a membership or barrier change, or one heartbeat interval. */
  waitForChange(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = () => {};
        resolve();
      };
      const timer = setTimeout(done, this.interval);
      this.wake = done;
    });
  }

  /** One pass of the chief's loop; true when training is over. */
  async tick(): Promise<boolean> {
    await this.refreshGlobalStep();
    await this.syncMembership();
    await this.serveCheckpointBarrier();
    this.checkWorkers();
    await this.evaluateEpochs();
    this.recordTakeover(false);
    this.persistRecoveries();
    this.reportProgress();
    // Every worker lost is not the end of training: within the grace period one may come back (checkWorkers).
    return this.state.trainingOver && !this.state.allLost;
  }

  /**
   * Every shard's status: the global step from shard 0, and a server that
   * came back without its state restored from the newest checkpoint
   * (shard-recovery.ts). One silent past the peer timeout fails the job,
   * naming it.
   */
  async refreshGlobalStep(now = Date.now()): Promise<bigint> {
    const polled = await this.watch.poll(now);
    const { sights } = polled;
    let { restarted } = polled;
    const state = this.state;
    if (this.chain !== undefined) {
      // --ps-replicas 1: a primary that does not answer, or came back empty, is failed over to its backup: nothing rolled back.
      const { records, moved } = await failOver(this.chain, this.watch, sights, restarted, state, now, this.log);
      this.record(records);
      restarted = restarted.filter((i) => !moved.includes(i));
      if (this.chain.links.some((l) => l.backup === undefined)) await this.chain.catchUp();
    }
    if (restarted.length > 0 && !state.trainingOver) {
      // A lost shard with no backup left: restored from a checkpoint; the backups of the others would no longer match.
      await this.chain?.detachAll();
      const joined = state.workers.filter((w) => w.state === 'joined');
      const context = { job: this.job, out: this.options.out, params: this.params, watch: this.watch, numWorkers: this.options.numWorkers, log: this.log };
      const records = await recoverShards(
        { ...context, globalStep: state.globalStep, slowestWorkerStep: joined.length === 0 ? 0 : Math.min(...joined.map((w) => Number(w.localStep))), beginRestore: (step) => state.beginRestore(step) },
        restarted,
        now,
      );
      this.record(records);
      // An Assign makes every worker live on the shard again: tell them who is not.
      this.announced = '';
    }
    const first = sights[0];
    if (first !== undefined && 'status' in first && first.status.initialized && restarted.length === 0) state.recordGlobalStep(first.status.version);
    return state.globalStep;
  }

  /**
   * Sync membership: mark silent workers lost and, when the set of live workers
   * changed, tell every shard (UpdateMembership). Returns the set sent, or
   * undefined when nothing changed.
   */
  async syncMembership(now = Date.now()): Promise<readonly string[] | undefined> {
    this.state.checkLost(now);
    const live = this.state.liveWorkerIds;
    const key = live.join(',');
    if (key === this.announced) return undefined;
    const sent = await Promise.allSettled(this.params.shards.map((s) => s.updateMembership(live)));
    // A shard that did not answer (down, or coming back) is told on a later pass: refreshGlobalStep restores
    // one that returns without its state, and fails the job for one silent past the peer timeout.
    if (sent.every((r) => r.status === 'fulfilled')) this.announced = key;
    return live;
  }

  /** Serve the checkpoint barrier when every training worker waits (ChiefCheckpoints.serveBarrier). */
  serveCheckpointBarrier(): Promise<string | undefined> {
    return this.ckpt.serveBarrier();
  }

  /**
   * Fail the job when not every worker joined in time, or when every worker
   * has been lost for the grace period: a worker wrongly suspected (a busy
   * machine, a GC pause) heartbeats again and is back, and a crashed one may
   * be restarted, so losing them all is not yet a lost job.
   */
  checkWorkers(now = Date.now()): void {
    const state = this.state;
    const timeout = this.options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS;
    if (!state.allJoinedOnce && now - this.started > timeout) {
      throw new ClusterError('JOB_FAILED', `only ${state.workers.length} of ${this.options.numWorkers} workers joined within ${Math.round(timeout / 1000)} s`);
    }
    if (!state.allLost) {
      this.allLostSince = undefined;
      return;
    }
    const grace = this.options.lostGraceMs ?? 3 * (this.options.heartbeatTimeoutMs ?? 10_000);
    if (this.allLostSince === undefined) {
      this.allLostSince = now;
      this.log(`every worker is lost; waiting ${Math.round(grace / 1000)} s for one to come back before failing the job`);
    }
    if (now - this.allLostSince >= grace) {
      throw new ClusterError('JOB_FAILED', `every worker was lost before finishing and none came back within ${Math.round(grace / 1000)} s; see the workers' logs`);
    }
  }

  /** Score the epochs every worker still training has finished (ChiefEvaluation.epochs). */
  evaluateEpochs(): Promise<ClusterEpochRecord[]> {
    return this.evaluation.epochs(this.state);
  }

  reportProgress(): void {
    const state = this.state;
    this.options.onProgress?.({
      globalStep: Number(state.globalStep),
      totalSteps: this.job.totalSteps,
      epoch: state.completedEpochs,
      epochs: this.job.training.epochs,
      samplesPerSecond: state.samplesPerSecond,
      loss: state.loss,
      ...lastValidation(this.history),
    });
  }

  /** Training is over: the last checkpoint, the final scores, the model, report.json; then stop the servers. */
  async finish(): Promise<ChiefReport> {
    const state = this.state;
    state.finishing();
    const shards = await Promise.all(this.params.shards.map((s) => s.status()));
    state.recordGlobalStep(shards[0]?.version ?? state.globalStep);
    await this.ckpt.writeNow(this.job.stepsEach);
    const scores = await this.evaluateFinal();
    this.recordTakeover(true);
    const { training: t, dataset } = this.job;
    const modelPath = await saveLayersModel(this.job.model, join(this.options.out, 'model'), { model: t.model, dataset: t.dataset, task: dataset.kind, classNames: dataset.classNames });
    await this.awaitLateLeaves();
    const report = this.writeReport(scores, modelPath, shards);
    state.done();
    const perWorker = report.workerStats.length > 1 ? ` (${report.workerStats.map((w) => `${w.workerId} ${w.samplesPerSecond.toFixed(0)}`).join(', ')})` : '';
    this.log(`done: ${describeScore(scores.test, 'test')}, ${report.steps} steps, ${report.samplesPerSecond.toFixed(0)} samples/s${perWorker}; model in ${modelPath} (backend for evaluation: ${this.job.backend.name})`);
    if (report.batchesPlanned !== undefined) this.log(describeBatches(report));
    await this.stopShards('job done', (s, error) => this.log(`could not stop ${s}: ${errorMessage(error)}`));
    // Let the workers' next heartbeat hear "stop" before the server goes.
    await new Promise((resolve) => setTimeout(resolve, Math.min(this.interval, 500)));
    return report;
  }

  /**
   * A worker wrongly declared lost (stalled on a loaded machine) may come
   * back while the job finishes: its heartbeat makes it joined again, the
   * coordinator tells it the batches are done, and it leaves as finished.
   * Its Leave is waited for, at most one heartbeat timeout (10 s at most),
   * so the report does not catch it half-way, as "joined" after the end.
   */
  private async awaitLateLeaves(): Promise<void> {
    const until = Date.now() + Math.min(this.options.heartbeatTimeoutMs ?? 10_000, 10_000);
    while (this.state.workers.some((w) => w.state === 'joined') && Date.now() < until) await this.waitForChange();
  }

  /** The final model on the test and validation splits (ChiefEvaluation.final). */
  evaluateFinal(): Promise<FinalEvaluation> {
    return this.evaluation.final();
  }

  /** Write the report: report.json under --out, from the Coordinator's counts and the shards' final status. */
  writeReport(scores: FinalEvaluation, modelPath: string, shards: readonly ShardStatusResponse[]): ChiefReport {
    const state = this.state;
    const report = buildReport({
      jobId: this.options.jobId,
      training: this.job.training,
      dataset: { name: this.job.dataset.name, kind: this.job.dataset.kind },
      numWorkers: this.options.numWorkers,
      workers: state.workers,
      globalStep: state.globalStep,
      shards,
      priorSamples: this.job.restored?.manifest.samples ?? 0,
      samplesPerSecond: state.samplesPerSecond,
      ...scores,
      history: this.history,
      modelPath,
      checkpoints: this.checkpoints,
      resumedFrom: this.job.restored?.dir,
      recoveries: this.allRecoveries,
      claims: state.claims,
    });
    writeReport(this.options.out, report);
    return report;
  }

  /**
   * The job failed: heartbeats tell workers to stop, and the parameter servers stop too, so an orchestrator
   * sees the whole job end (`docker compose up` returns) instead of idle servers waiting forever. Their
   * state is in the last checkpoint: `tamp train --resume` continues from it.
   */
  async fail(error: unknown): Promise<void> {
    this.coordinator?.state.fail(errorMessage(error));
    await this.stopShards(`job failed: ${errorMessage(error)}`, () => undefined);
  }

  async close(): Promise<void> {
    this.params.close();
    await this.coordinator?.close();
    this.job.model.dispose();
  }

  /** Every checkpoint a barrier released has its manifest written, or its failure logged. */
  checkpointsCommitted(): Promise<void> {
    return this.ckpt.committed();
  }

  private stopShards(reason: string, onError: (address: string, error: unknown) => void): Promise<unknown> {
    // With replicas a process may serve several shards (a promoted backup) or none (a restart hosting backups only):
    // each process is told once, at its own address, and stops with every service it hosts.
    const byProcess = this.chain !== undefined ? this.options.psAddresses.map((a) => new ShardClient(a, this.options.jobId, { rpc: this.chain?.rpc ?? {} })) : undefined;
    return Promise.all(
      (byProcess ?? this.params.shards).map((s) =>
        s
          .shutdown(reason)
          .catch((error: unknown) => onError(s.address, error))
          .finally(() => byProcess !== undefined && s.close()),
      ),
    );
  }
}

/** The Coordinator's `claims` option when the job has them (exactOptionalPropertyTypes: absent, not undefined). */
function claimOptions(claims: ReturnType<typeof claimsFor>): { claims?: NonNullable<ReturnType<typeof claimsFor>> } {
  return claims !== undefined ? { claims } : {};
}

/** Run a whole job as the chief: what `tamp chief` calls. */
export async function runChief(options: ChiefOptions): Promise<ChiefReport> {
  const chief = await Chief.create(options);
  try {
    await chief.startOrAdoptShards();
    await chief.startCoordinator();
    do await chief.waitForChange();
    while (!(await chief.tick()));
    return await chief.finish();
  } catch (error) {
    await chief.fail(error);
    throw error;
  } finally {
    await chief.close();
  }
}
