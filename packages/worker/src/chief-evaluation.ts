/**
 * The chief's scoring (part of chief.ts's Chief): for each epoch every
 * worker still training has completed, the model pulled from the shards is
 * scored on the validation split, as one-process training does; at the end
 * the final model is scored on the test and validation splits. On a small
 * machine this evaluation competes with the workers. It runs on the chief's
 * event loop, so it yields after every batch (SCORING): the workers' batch
 * claims and heartbeats are answered between batches, not after the split.
 */
import { type EvaluationOptions, evaluateModel, recalibrateBatchNorm, recalibrationBatches } from '@tamp/core';
import { describeScore } from '@tamp/core/node';
import { CHIEF_READER_ID, type ParameterClient } from '@tamp/parameter-server';
import type { ChiefJob } from './chief-job.js';
import type { CoordinatorState } from './coordinator-state.js';
import { setVariables } from './model-state.js';
import type { ClusterEpochRecord, FinalEvaluation } from './report.js';

/** Batches of 50 samples (a detector's usual batch; LeNet-300-100's take a few ms on two shared cores), the chief's event loop free between them. */
const SCORING: EvaluationOptions = { batchSize: 50, between: () => new Promise((resolve) => setImmediate(resolve)) };

export class ChiefEvaluation {
  private epochStart = { time: 0, samples: 0n };

  /** `history`: the job's epoch records so far (a resumed job continues the checkpoint's), appended to here. */
  constructor(
    private readonly job: ChiefJob,
    private readonly params: ParameterClient,
    private readonly history: ClusterEpochRecord[],
    private readonly log: (message: string) => void,
  ) {}

  /** Training starts now: the first epoch's samples/s counts from here. */
  start(now = Date.now()): void {
    this.epochStart = { time: now, samples: 0n };
  }

  /** Score each finished epoch not yet scored, record it in `history` and in `state`; the records added. */
  async epochs(state: CoordinatorState): Promise<ClusterEpochRecord[]> {
    const added: ClusterEpochRecord[] = [];
    // Workers about to wait at a checkpoint barrier would wait for the evaluation too: serve the barrier first.
    if (state.checkpointImminent) return added;
    while (state.completedEpochs > this.history.length) {
      const epoch = this.history.length + 1;
      await this.pullModel();
      const validation = await evaluateModel(this.job.model, this.job.dataset.validation, SCORING);
      const now = Date.now();
      const samples = state.samples;
      const record: ClusterEpochRecord = {
        epoch,
        loss: state.loss,
        ...(validation.task === 'detection' ? { validationMAP: validation.score } : { validationAccuracy: validation.score }),
        samplesPerSecond: Number(samples - this.epochStart.samples) / Math.max(1e-3, (now - this.epochStart.time) / 1000),
        globalStep: Number(state.globalStep),
      };
      this.epochStart = { time: now, samples };
      this.history.push(record);
      added.push(record);
      state.epochEvaluated(epoch, validation);
      this.log(`epoch ${epoch}/${this.job.training.epochs}: loss ${record.loss.toFixed(4)}, ${describeScore(validation, 'validation')}, global step ${record.globalStep}`);
    }
    return added;
  }

  /** The final model (pulled from the shards) on the test and validation splits. */
  async final(): Promise<FinalEvaluation> {
    await this.pullModel();
    const test = await evaluateModel(this.job.model, this.job.dataset.test, SCORING);
    const validation = await evaluateModel(this.job.model, this.job.dataset.validation, SCORING);
    return { test, validation };
  }

  /** The shards' weights into the chief's model, with batch-norm statistics that match them. */
  private async pullModel(): Promise<void> {
    const { values } = await this.params.pullAll(CHIEF_READER_ID);
    setVariables(this.job.model, values);
    // Batch-norm statistics are not on the parameter servers: recompute them (precise BN; ARCHITECTURE.md, @tamp/worker). No-op without batch norm.
    const t = this.job.training;
    await recalibrateBatchNorm(this.job.model, recalibrationBatches(this.job.dataset.train, { batchSize: t.batchSize, seed: t.seed }));
  }
}
