/**
 * What the chief tells every worker at Join: the training configuration,
 * the model's topology (so workers need no model file), the placement and
 * the parameter servers. Sent as JSON: it is large and grows with features.
 */
import { type AdamCorrection, ClusterError, type ConsistencyMode, type MomentumCorrection, type OptimizerSettings, type Placement, type WireCodec, dgcAdamCorrection, dgcMomentumCorrection, parseWireCodec } from '@tamp/core';

export interface TrainingSettings {
  readonly model: string;
  readonly dataset: string;
  readonly epochs: number;
  readonly epochSize?: number;
  readonly batchSize: number;
  readonly optimizer: OptimizerSettings;
  readonly mode: ConsistencyMode;
  readonly staleness: number;
  readonly backupWorkers: number;
  readonly seed: number;
  /**
   * The job's wire codecs (core's parseWireCodec names: fp32, fp16, int8,
   * topk:F; both 'auto' under --wire auto: each worker measures its link and
   * picks), fixed by the chief; absent in a job from before codecs: fp32.
   * warmupSteps: top-k's warm-up from dense (default 5% of a worker's steps);
   * errorFeedback false: int8 and top-k forget what they round away (to measure what it buys);
   * clipNorm: top-k's local clipping of each worker's whole gradient;
   * sparseBiases true: top-k sparsifies biases too (by default they go whole, to measure what that buys);
   * momentumCorrection false: top-k leaves the momentum on the servers (core's dgcMomentumCorrection says when it is on);
   * adamCorrection false: top-k leaves both of Adam's moments on the servers (core's dgcAdamCorrection says when it is on).
   */
  readonly wire?: {
    readonly push: string;
    readonly pull: string;
    readonly warmupSteps?: number;
    readonly errorFeedback?: boolean;
    readonly clipNorm?: number;
    readonly sparseBiases?: boolean;
    readonly momentumCorrection?: boolean;
    readonly adamCorrection?: boolean;
  };
}

export interface JobConfig {
  readonly jobId: string;
  readonly training: TrainingSettings;
  /** tfjs LayersModel topology (model.toJSON), from which workers build the model. */
  readonly modelTopology: unknown;
  readonly numWorkers: number;
  readonly psAddresses: readonly string[];
  readonly placement: Placement;
  readonly heartbeatIntervalMs: number;
  /** Step every worker starts at: 0, or the step of the checkpoint resumed. */
  readonly startStep: number;
  /** A checkpoint barrier every this many steps of each worker (0: only at the end). */
  readonly checkpointEvery: number;
}

/** The job's codecs as the shards and workers use them (fp32 for a job from before codecs), and whether top-k's momentum or Adam correction is on. */
export function jobWire(t: TrainingSettings): { wirePush: WireCodec; wirePull: WireCodec; wireAuto?: true; momentumCorrection?: true; adamCorrection?: true } {
  const codecs: { wirePush: WireCodec; wirePull: WireCodec; wireAuto?: true } =
    t.wire?.push === 'auto'
      ? { wirePush: { kind: 'fp32' }, wirePull: { kind: 'fp32' }, wireAuto: true }
      : { wirePush: parseWireCodec(t.wire?.push ?? 'fp32', 'push'), wirePull: parseWireCodec(t.wire?.pull ?? 'fp32', 'pull') };
  return { ...codecs, ...(jobMomentumCorrection(t).on ? { momentumCorrection: true as const } : {}), ...(jobAdamCorrection(t).on ? { adamCorrection: true as const } : {}) };
}

/** DGC's momentum correction for this job (core's dgcMomentumCorrection): on, or why not. */
export function jobMomentumCorrection(t: TrainingSettings): MomentumCorrection {
  return dgcMomentumCorrection(t.optimizer, jobPush(t), t.wire?.momentumCorrection === false);
}

/** The job's push codec, or 'auto'. */
function jobPush(t: TrainingSettings): WireCodec | 'auto' {
  return t.wire?.push === 'auto' ? 'auto' : parseWireCodec(t.wire?.push ?? 'fp32', 'push');
}

/** Top-k's Adam correction for this job (core's dgcAdamCorrection): on, or why not. */
export function jobAdamCorrection(t: TrainingSettings): AdamCorrection {
  return dgcAdamCorrection(t.optimizer, jobPush(t), t.wire?.adamCorrection === false);
}

export function workerId(taskIndex: number): string {
  return `worker-${taskIndex}`;
}

export function encodeJobConfig(config: JobConfig): string {
  return JSON.stringify(config);
}

export function decodeJobConfig(json: string): JobConfig {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new ClusterError('CLUSTER_CONFIG', 'the chief sent a job configuration that is not JSON', { cause: error });
  }
  const c = value as Partial<JobConfig>;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.jobId !== 'string' ||
    typeof c.training !== 'object' ||
    !Array.isArray(c.psAddresses) ||
    typeof c.placement !== 'object' ||
    typeof c.numWorkers !== 'number'
  ) {
    throw new ClusterError('CLUSTER_CONFIG', 'the chief sent an incomplete job configuration; run the same Tamp version in every role');
  }
  return c as JobConfig;
}
