/**
 * The chief's report.json: the one-process report's fields (core's
 * TrainReport: testAccuracy or mAP, validation score, history, samples/s,
 * ...) plus what only a cluster has: workers, lost workers, dropped
 * gradients, ssp waits and the checkpoints written. README.md lists the
 * fields; add to them, never rename.
 */
import { join } from 'node:path';
import type { Evaluation } from '@tamp/core';
import { type TrainReport, atomicWriteFile, testFields, validationFields } from '@tamp/core/node';
import type { ShardStatusResponse } from '@tamp/proto/tamp/v1/parameter_server';
import type { WorkerRecord } from './membership.js';
import { type TrainingSettings, jobAdamCorrection, jobMomentumCorrection } from './job-config.js';
import type { RecoveryRecord } from './shard-recovery.js';
import type { ChiefRecoveryRecord } from './chief-rejoin.js';
import type { WorkerRecoveryRecord } from './worker-faults.js';
import type { BatchClaims } from './batch-claims.js';

/** One entry of report.json `recoveries`, by `role` (ARCHITECTURE.md, "Faults"). */
export type JobRecoveryRecord = RecoveryRecord | ChiefRecoveryRecord | WorkerRecoveryRecord;

export interface ClusterEpochRecord {
  readonly epoch: number;
  readonly loss: number;
  /** Classifiers: validation accuracy after the epoch (the test split is scored once, at the end). */
  readonly validationAccuracy?: number;
  /** Detectors: validation mAP@0.5. */
  readonly validationMAP?: number;
  readonly samplesPerSecond: number;
  readonly globalStep: number;
}

export interface WorkerStats {
  readonly workerId: string;
  readonly backend: string;
  readonly state: string;
  readonly steps: number;
  readonly samples: number;
  readonly seconds: number;
  readonly samplesPerSecond: number;
  readonly joins: number;
  /** Where its seconds went: computing gradients (with reading them back), waiting for pushes, waiting for pulls. */
  readonly computeSeconds: number;
  readonly pushWaitSeconds: number;
  readonly pullWaitSeconds: number;
  /** --wire auto: the codecs this worker chose after measuring its link, and why. */
  readonly wireChoice?: string;
}

export interface ChiefReport extends Omit<TrainReport, 'history'> {
  readonly jobId: string;
  readonly history: readonly ClusterEpochRecord[];
  /** Per worker: its steps and samples, and its own training time and rate (a straggler shows here; the job's rate is all samples over the longest time). */
  readonly workerStats: readonly WorkerStats[];
  readonly lostWorkers: number;
  /** sync with backup workers: late gradients the servers dropped. */
  readonly droppedGradients: number;
  readonly backupWorkers: number;
  readonly staleness: number;
  /** ssp: pulls that waited for the slowest worker, and the largest lead allowed. */
  readonly sspWaits: number;
  readonly maxLead: number;
  readonly checkpoints: readonly string[];
  /** The checkpoint this run resumed from, if any. */
  readonly resumedFrom: string | undefined;
  /** The job's wire codecs (--wire-push, --wire-pull). */
  readonly wirePush: string;
  readonly wirePull: string;
  /**
   * Top-k's DGC momentum correction: true when the workers keep the momentum and the parameter servers
   * apply plain SGD to their top-k pushes (momentum optimizer with topk:F, or auto when a worker picks top-k); why, either way.
   */
  readonly wireMomentumCorrection: boolean;
  readonly wireMomentumCorrectionWhy: string;
  /**
   * Top-k's Adam correction: true when the workers keep Adam's moments and push the top-k of Adam's
   * accumulated direction, which the parameter servers apply with plain SGD (adam with topk:F, or auto); why, either way.
   */
  readonly wireAdamCorrection: boolean;
  readonly wireAdamCorrectionWhy: string;
  /** False under --wire-no-feedback: int8, int4 and top-k forgot what they dropped (a measurement setting). */
  readonly wireErrorFeedback: boolean;
  /** True under --wire-sparse-biases: top-k sparsified biases too (by default it sends them whole). */
  readonly wireSparseBiases: boolean;
  /** Tensor bytes one worker step sends (its push, all shards) and receives (its pull), as encoded on the wire: the shards' counts over their pushes and pulls. */
  readonly pushBytesPerStep: number;
  readonly pullBytesPerStep: number;
  /**
   * Updates the parameter servers refused because they would have made a
   * variable or optimizer slot non-finite (async/ssp: pushes; sync: skipped
   * steps), as the shards count them (a restarted server's count starts again).
   */
  readonly nonFiniteUpdates: number;
  /** One entry per fault the job survived (a parameter server restored from a checkpoint, the chief restarted and took over, a worker lost or gone and whether it came back). */
  readonly recoveries: readonly JobRecoveryRecord[];
  /**
   * async/ssp (absent in sync, whose batches go by step): the job's planned
   * batches, those trained (this run and the checkpoint it resumed from),
   * those never trained (planned − trained: 0 unless the job ended without
   * workers to train them), and those a lost worker had claimed and the
   * others trained instead (batch-claims.ts).
   */
  readonly batchesPlanned?: number;
  readonly batchesTrained?: number;
  readonly batchesLost?: number;
  readonly batchesReassigned?: number;
}

/** The final model's scores. */
export interface FinalEvaluation {
  readonly test: Evaluation;
  readonly validation: Evaluation;
}

/** Everything the report is made of, gathered by the chief when training is over. */
export interface ReportInputs extends FinalEvaluation {
  readonly jobId: string;
  readonly training: TrainingSettings;
  readonly dataset: { readonly name: string; readonly kind: 'classification' | 'detection' };
  readonly numWorkers: number;
  readonly workers: readonly WorkerRecord[];
  /** The servers' version after training: the job's step count. */
  readonly globalStep: bigint;
  /** Every shard's status after training. */
  readonly shards: readonly ShardStatusResponse[];
  /** Samples trained on before a resumed run began. */
  readonly priorSamples: number;
  readonly samplesPerSecond: number;
  readonly history: readonly ClusterEpochRecord[];
  readonly modelPath: string;
  readonly checkpoints: readonly string[];
  readonly resumedFrom: string | undefined;
  readonly recoveries?: readonly JobRecoveryRecord[];
  /** async/ssp: the batch claims at the end. */
  readonly claims?: BatchClaims | undefined;
}

export function workerStats(w: WorkerRecord): WorkerStats {
  return {
    workerId: w.workerId,
    backend: w.backend,
    state: w.state,
    steps: Number(w.localStep),
    samples: Number(w.samples),
    seconds: w.seconds,
    samplesPerSecond: w.seconds > 0 ? Number(w.samples) / w.seconds : 0,
    joins: w.joins,
    computeSeconds: w.computeSeconds,
    pushWaitSeconds: w.pushWaitSeconds,
    pullWaitSeconds: w.pullWaitSeconds,
    ...(w.wireChoice !== '' ? { wireChoice: w.wireChoice } : {}),
  };
}

/** Bytes per worker step over every shard: each shard's bytes over its own count (every step pushes to and pulls from every shard). */
function bytesPerStep(shards: readonly ShardStatusResponse[], bytes: (s: ShardStatusResponse) => bigint, count: (s: ShardStatusResponse) => bigint): number {
  return shards.reduce((n, s) => n + (count(s) > 0n ? Number(bytes(s)) / Number(count(s)) : 0), 0);
}

export function buildReport(r: ReportInputs): ChiefReport {
  const t = r.training;
  const backends = [...new Set(r.workers.map((w) => w.backend))];
  const samples = r.workers.reduce((n, w) => n + Number(w.samples), 0);
  const correction = jobMomentumCorrection(t);
  const adamCorrection = jobAdamCorrection(t);
  return {
    jobId: r.jobId,
    model: t.model,
    dataset: r.dataset.name,
    backend: backends.length === 1 ? (backends[0] as string) : backends.join('+'),
    adapter: undefined,
    mode: t.mode,
    workers: r.numWorkers,
    ps: r.shards.length,
    epochs: t.epochs,
    batchSize: t.batchSize,
    optimizer: t.optimizer.name,
    learningRate: t.optimizer.learningRate,
    seed: t.seed,
    steps: Number(r.globalStep),
    samples: r.priorSamples + samples,
    trainSeconds: Math.max(0, ...r.workers.map((w) => w.seconds)),
    samplesPerSecond: r.samplesPerSecond,
    task: r.dataset.kind,
    ...testFields(r.test),
    ...validationFields(r.validation),
    history: r.history,
    modelPath: r.modelPath,
    workerStats: r.workers.map(workerStats),
    lostWorkers: r.workers.filter((w) => w.state === 'lost' || w.state === 'left').length,
    droppedGradients: Number(r.shards[0]?.pushesDropped ?? 0n),
    backupWorkers: t.backupWorkers,
    staleness: t.staleness,
    sspWaits: r.shards.reduce((n, s) => n + Number(s.pullsWaited), 0),
    maxLead: r.shards.reduce((n, s) => Math.max(n, Number(s.maxLead)), 0),
    checkpoints: r.checkpoints,
    resumedFrom: r.resumedFrom,
    wirePush: t.wire?.push ?? 'fp32',
    wirePull: t.wire?.pull ?? 'fp32',
    wireMomentumCorrection: correction.on,
    wireMomentumCorrectionWhy: correction.why,
    wireAdamCorrection: adamCorrection.on,
    wireAdamCorrectionWhy: adamCorrection.why,
    wireErrorFeedback: t.wire?.errorFeedback !== false,
    wireSparseBiases: t.wire?.sparseBiases === true,
    pushBytesPerStep: bytesPerStep(r.shards, (s) => s.pushBytes, (s) => s.pushesReceived),
    pullBytesPerStep: bytesPerStep(r.shards, (s) => s.pullBytes, (s) => s.pullsServed),
    // sync: each shard skips its part of a step on its own, so the most any shard skipped; async/ssp: refused pushes (parts) over all shards.
    nonFiniteUpdates:
      t.mode === 'sync' ? r.shards.reduce((n, s) => Math.max(n, Number(s.pushesNonFinite)), 0) : r.shards.reduce((n, s) => n + Number(s.pushesNonFinite), 0),
    recoveries: r.recoveries ?? [],
    ...(r.claims !== undefined
      ? { batchesPlanned: r.claims.plan.totalBatches, batchesTrained: r.claims.doneCount, batchesLost: r.claims.plan.totalBatches - r.claims.doneCount, batchesReassigned: r.claims.reassigned }
      : {}),
  };
}

/** The chief's and the summary's line on the batches (async/ssp). */
export function describeBatches(r: Pick<ChiefReport, 'batchesPlanned' | 'batchesTrained' | 'batchesLost' | 'batchesReassigned'>): string {
  const lost = r.batchesLost ?? 0;
  const reassigned = r.batchesReassigned ?? 0;
  return `batches: ${r.batchesTrained ?? 0} of ${r.batchesPlanned ?? 0} trained${reassigned > 0 ? `, ${reassigned} handed from lost workers to others` : ''}${lost > 0 ? `, ${lost} NEVER TRAINED (no worker was left to train them)` : ''}`;
}

/** Write `<out>/report.json` atomically; returns its path. */
export function writeReport(out: string, report: ChiefReport): string {
  const file = join(out, 'report.json');
  atomicWriteFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}
