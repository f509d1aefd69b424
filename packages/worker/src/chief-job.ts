/**
 * What the chief decides before anything starts: the options it runs with,
 * the checkpoint it resumes from (if any), the training settings, the
 * dataset, the model and its placement over the parameter servers, and the
 * step counts the job's progress and checkpoints follow.
 */
import { join } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { type BackendRequest, ClusterError, type Dataset, type SelectedBackend, stepsPerEpoch } from '@tamp/core';
import { checkOutputFolder, checkTask, createOrLoadModel, epochLimit, loadDataset, useBackend } from '@tamp/core/node';
import { type Placement, type VariableSpec, placeVariables } from '@tamp/parameter-server';
import { type CheckpointManifest, type RestoredState, findLatestCheckpoint } from './checkpoints.js';
import { type JobConfig, type TrainingSettings, workerId } from './job-config.js';
import { variableSpecs, variableValues } from './model-state.js';
import type { CoordinatorOptions } from './coordinator-state.js';
import type { RpcSecurity } from '@tamp/rpc';
import { checkResumeSettings, prepareOutFolder } from './out-folder.js';
import { checkPsReplicas } from './replica-chain.js';

export interface ChiefOptions {
  readonly jobId: string;
  /** Transport security of the coordinator and of the shard clients (default: plaintext). */
  readonly security?: RpcSecurity;
  /** Also serve the coordinator's health service alone, in plaintext, on this port (RpcServerOptions.healthPort). */
  readonly healthPort?: number;
  readonly host?: string;
  readonly port?: number;
  readonly psAddresses: readonly string[];
  readonly numWorkers: number;
  /** Required unless resuming (a checkpoint brings its own). */
  readonly training?: TrainingSettings;
  readonly out: string;
  /** Continue from the latest complete checkpoint under this folder (a previous --out). */
  readonly resume?: string;
  /** A new job may delete the results (checkpoints, model, report.json) another left in --out; without it they are refused. */
  readonly overwrite?: boolean;
  /** A checkpoint every this many steps of each worker (default: one epoch; 0: only at the end). */
  readonly checkpointEvery?: number;
  /** Backend for the chief's own evaluation. */
  readonly backend?: BackendRequest;
  readonly heartbeatIntervalMs?: number;
  /** A worker silent this long is dropped from barriers (default 10 s). */
  readonly heartbeatTimeoutMs?: number;
  /**
   * A worker whose connection to the chief closed (its process died) and that
   * neither reconnected nor heartbeat within this long is dropped, before its
   * heartbeat timeout (default 1 s; Infinity: heartbeats alone judge).
   */
  readonly disconnectGraceMs?: number;
  /** Fail when not every worker has joined by then. */
  readonly joinTimeoutMs?: number;
  /**
   * When every worker is lost, wait this long for one to come back (a lost
   * worker that heartbeats again, or a restarted one) before failing the job
   * (default 3× the heartbeat timeout).
   */
  readonly lostGraceMs?: number;
  /** Fail the job once parameter server 0 has not answered for this long (ms, default 60 s). */
  readonly peerTimeoutMs?: number;
  /**
   * The job's chief secret (role-auth.ts in @tamp/rpc): sent with every call to
   * the parameter servers, which refuse chief-only methods without it, and the
   * key of the workers' slot tokens. Default: a fresh random one; the CLI
   * reads TAMP_CHIEF_SECRET, which a launcher shares with its parameter servers.
   */
  readonly chiefSecret?: string;
  /** `--ps-replicas`: 0 (default) or 1, a backup of every shard on the next parameter server (replica-chain.ts). */
  readonly psReplicas?: number;
  readonly log?: (message: string) => void;
  readonly onListening?: (port: number) => void;
  readonly onProgress?: (p: ChiefProgress) => void;
}

export interface ChiefProgress {
  readonly globalStep: number;
  readonly totalSteps: number;
  readonly epoch: number;
  readonly epochs: number;
  readonly samplesPerSecond: number;
  readonly loss: number;
  /** Classifiers: the last evaluated epoch's validation accuracy. */
  readonly validationAccuracy?: number;
  /** Detectors: the last evaluated epoch's validation mAP@0.5. */
  readonly validationMAP?: number;
}

export interface ChiefJob {
  readonly training: TrainingSettings;
  readonly restored: RestoredState | undefined;
  readonly dataset: Dataset;
  /** The chief's own backend, for its evaluations. */
  readonly backend: SelectedBackend;
  /** The chief's copy of the model: initial values, and the model it evaluates and saves. */
  readonly model: LayersModel;
  readonly specs: readonly VariableSpec[];
  readonly placement: Placement;
  /** Whole variables the shards start from: the model's, or the checkpoint's. */
  readonly initial: ReadonlyMap<string, Float32Array>;
  readonly workerIds: readonly string[];
  /** Step every worker starts at (0, or the checkpoint's). */
  readonly startStep: number;
  /** Steps of one worker per epoch, and in the whole job. */
  readonly stepsPerWorkerEpoch: number;
  readonly stepsEach: number;
  /** Steps the whole job takes: sync applies one step for all workers. */
  readonly totalSteps: number;
  readonly checkpointEvery: number;
}

/** Check the options, find the checkpoint to resume, load the dataset and build the model. */
export async function planChiefJob(options: ChiefOptions, log: (message: string) => void, how: { rejoin?: boolean } = {}): Promise<ChiefJob> {
  if (options.numWorkers < 1) throw new ClusterError('CLUSTER_CONFIG', `a job needs at least one worker, got ${options.numWorkers}`);
  if (options.psAddresses.length < 1) throw new ClusterError('CLUSTER_CONFIG', 'a job needs at least one parameter server');
  checkPsReplicas(options.psReplicas ?? 0, options.psAddresses.length);

  let restored: RestoredState | undefined;
  // A restarted chief taking over its running job keeps --out as it is: it holds the job's own checkpoints (never deleted, even with --overwrite).
  if (options.resume === undefined && how.rejoin !== true) prepareOutFolder(options.out, options.overwrite === true, log);
  else checkOutputFolder(options.out);
  if (options.resume !== undefined) {
    restored = findLatestCheckpoint(options.resume, (m) => log(`warning: ${m}`));
    if (restored === undefined) throw new ClusterError('JOB_FAILED', `--resume ${options.resume}: no complete checkpoint found under ${join(options.resume, 'checkpoints')}`);
    checkResumeSettings(options.resume, restored.manifest, options.training);
    log(`resuming from ${restored.dir} (step ${restored.manifest.step} of each worker, version ${restored.version})`);
    if (restored.manifest.numWorkers !== options.numWorkers) {
      log(`warning: the checkpoint was written by ${restored.manifest.numWorkers} workers, this job has ${options.numWorkers}: data shards change`);
    }
  }
  const t: TrainingSettings | undefined = restored?.manifest.training ?? options.training;
  if (t === undefined) throw new ClusterError('CLUSTER_CONFIG', 'the chief needs training settings (--model, --dataset, ...) or --resume');
  if (t.mode === 'sync' && t.backupWorkers >= options.numWorkers) {
    throw new ClusterError('CLUSTER_CONFIG', `--backup-workers ${t.backupWorkers} leaves no worker to wait for: use fewer than --workers ${options.numWorkers}`);
  }

  const dataset = loadDataset(t.dataset);
  checkTask(t.model, dataset);
  const backend = await useBackend(options.backend ?? 'auto', { log });
  const model = await createOrLoadModel(t.model, t.seed);
  const specs = variableSpecs(model);
  const perWorker = stepsPerEpoch(dataset.train, { batchSize: t.batchSize, seed: t.seed, replica: { index: 0, count: options.numWorkers }, ...epochLimit(dataset, t.epochSize) });
  const stepsEach = perWorker * t.epochs;
  return {
    training: t,
    restored,
    dataset,
    backend,
    model,
    specs,
    placement: placeVariables(specs, options.psAddresses.length),
    initial: restored?.values ?? (await variableValues(model)),
    workerIds: Array.from({ length: options.numWorkers }, (_, i) => workerId(i)),
    startStep: restored?.manifest.step ?? 0,
    stepsPerWorkerEpoch: perWorker,
    stepsEach,
    totalSteps: t.mode === 'sync' ? stepsEach : stepsEach * options.numWorkers,
    checkpointEvery: options.checkpointEvery ?? restored?.manifest.checkpointEvery ?? perWorker,
  };
}

/** What the chief hands every worker at Join. */
export function jobConfigFor(options: ChiefOptions, job: ChiefJob, heartbeatIntervalMs: number): JobConfig {
  return {
    jobId: options.jobId,
    training: withWarmup(job.training, job.stepsEach),
    modelTopology: job.model.toJSON(null, false),
    numWorkers: options.numWorkers,
    psAddresses: options.psAddresses,
    placement: job.placement,
    heartbeatIntervalMs,
    startStep: job.startStep,
    checkpointEvery: job.checkpointEvery,
  };
}

/** Top-k's warm-up from dense, when not given: the first 5% of each worker's steps (Deep Gradient Compression warms up over its first few epochs). */
function withWarmup(t: TrainingSettings, stepsEach: number): TrainingSettings {
  if (t.wire === undefined || t.wire.warmupSteps !== undefined) return t;
  return { ...t, wire: { ...t.wire, warmupSteps: Math.ceil(0.05 * stepsEach) } };
}

/**
 * async and ssp: the batch claims' plan (batch-claims.ts) and, resuming, the
 * checkpoint's progress: its done batches, or (a checkpoint without them, or
 * of another number of workers, whose batch numbers name other data) every
 * batch before its step of every worker. `takeover`: a restarted chief's
 * newest checkpoint on disk, used the same way. sync: undefined (batches by step).
 */
export function claimsFor(options: Pick<ChiefOptions, 'numWorkers'>, job: ChiefJob, takeover?: CheckpointManifest): CoordinatorOptions['claims'] {
  if (job.training.mode === 'sync') return undefined;
  const w = options.numWorkers;
  const plan = { totalBatches: job.stepsEach * w, batchesPerEpoch: job.stepsPerWorkerEpoch * w, numWorkers: w, checkpointEvery: job.checkpointEvery };
  const idleNotLive = job.training.mode === 'ssp';
  // A restarted chief (chief-rejoin.ts) starts from the newest checkpoint on disk, as a resume
  // would: the batches reported to the crashed chief after it are handed out again (trained twice).
  const manifest = takeover ?? job.restored?.manifest;
  if (manifest === undefined) return { plan, idleNotLive };
  const recorded = manifest.batches !== undefined && manifest.numWorkers === w && manifest.batches.total === plan.totalBatches;
  const done = recorded ? (manifest.batches?.done ?? []) : [[0, Math.min(plan.totalBatches, manifest.step * w)] as const];
  return { plan, idleNotLive, resume: { progress: { done, total: plan.totalBatches }, checkpointStep: manifest.step } };
}
