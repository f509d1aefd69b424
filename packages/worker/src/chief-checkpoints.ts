/**
 * The chief's checkpoints (ARCHITECTURE.md, "@tamp/worker"): at a barrier
 * the shards copy their state in memory and the workers are released; the
 * files are written while they train, and the manifest once every file is
 * durable. One checkpoint's files at a time, so pruning never meets a
 * folder still being written.
 */
import { join } from 'node:path';
import { errorMessage } from '@tamp/core';
import type { ParameterClient } from '@tamp/parameter-server';
import { type CopiedCheckpoint, commitCheckpoint, copyCheckpoint, pruneCheckpoints } from './checkpoints.js';
import type { ChiefJob, ChiefOptions } from './chief-job.js';
import type { CoordinatorState } from './coordinator-state.js';
import type { ClusterEpochRecord } from './report.js';

export interface ChiefCheckpointContext {
  readonly options: ChiefOptions;
  readonly job: ChiefJob;
  readonly params: ParameterClient;
  /** Epoch records so far: a manifest takes a copy at its barrier. */
  readonly history: readonly ClusterEpochRecord[];
  readonly log: (message: string) => void;
  readonly state: () => CoordinatorState;
  /** async/ssp after a shard restore: the shards' versions may differ at a barrier (shard-recovery.ts). */
  readonly versionsMayDiffer: () => boolean;
}

export class ChiefCheckpoints {
  /** Manifests of the checkpoints this chief wrote (a restarted chief's list starts with those found under --out). */
  readonly written: string[] = [];
  /** The last checkpoint released at its barrier whose files are still being written (resolves once its manifest is, or its failure logged). */
  private pending: Promise<unknown> = Promise.resolve();

  constructor(private readonly c: ChiefCheckpointContext) {}

  /**
   * Serve the checkpoint barrier: when every training worker waits, the
   * shards copy their state and the workers are released; the files are
   * written while they train, and the manifest once every file is durable
   * (committed() waits for it). Returns the manifest's path, or undefined
   * (no barrier ready, or the copy failed: the workers train on without it).
   */
  async serveBarrier(): Promise<string | undefined> {
    const state = this.c.state();
    const step = state.barrierStep;
    if (!state.barrierReady || step === undefined) return undefined;
    try {
      await this.pending;
      const copied = await this.copy(step);
      // The shards hold copies: training goes on while they write, and the manifest follows (commit).
      const file = join(copied.dir, 'manifest.json');
      state.releaseBarrier({ complete: true, manifest: file });
      this.pending = this.commit(copied).catch((error: unknown) => {
        this.c.log(`checkpoint at step ${step} was not written: ${errorMessage(error)}; the one before stays the newest, training goes on`);
      });
      return file;
    } catch (error) {
      this.c.log(`checkpoint at step ${step} failed: ${errorMessage(error)}; training on without it`);
      state.releaseBarrier({ complete: false, manifest: '' });
      return undefined;
    }
  }

  /** Every checkpoint a barrier released has its manifest written, or its failure logged. */
  async committed(): Promise<void> {
    await this.pending;
  }

  /** A checkpoint written whole before returning (the last one, at the end of training). */
  async writeNow(step: number): Promise<string> {
    await this.pending;
    return this.commit(await this.copy(step));
  }

  /** The shards copy their state for checkpoint `step` (copyCheckpoint); the manifest's fields are taken now, at the barrier. */
  private copy(step: number): Promise<CopiedCheckpoint> {
    const { options, job, params } = this.c;
    const state = this.c.state();
    return copyCheckpoint(
      params,
      options.out,
      {
        jobId: options.jobId,
        training: job.training,
        numWorkers: options.numWorkers,
        checkpointEvery: job.checkpointEvery,
        variables: job.specs,
        history: [...this.c.history],
        samples: (job.restored?.manifest.samples ?? 0) + Number(state.samples),
        ...(state.claims !== undefined ? { batches: state.claims.progress } : {}),
      },
      step,
      { versionsMayDiffer: this.c.versionsMayDiffer() },
    );
  }

  /** Once every shard's file is written: the manifest, pruning, and the checkpoint counted. */
  private async commit(copied: CopiedCheckpoint): Promise<string> {
    const file = await commitCheckpoint(this.c.params, copied);
    pruneCheckpoints(this.c.options.out);
    this.written.push(file);
    this.c.state().checkpointWritten(copied.step);
    this.c.log(`checkpoint at step ${copied.step}: ${file}`);
    return file;
  }
}
