/**
 * One parameter-server shard's configuration, as the chief sets it with
 * Assign: the one domain type behind ShardClient.assign, the gRPC
 * AssignRequest (converted in @tamp/parameter-server's wire/shard-config.ts)
 * and Shard.assign.
 */
import { InvalidArgumentError } from '../errors.js';
import type { OptimizerSettings } from '../train/optimizer-settings.js';
import type { WireCodec } from '../codec/compression/wire-codec.js';
import type { ConsistencyMode } from './consistency.js';

/** Id the chief reads shards with (evaluation, the final model, checkpoints); never a worker's id. */
export const CHIEF_READER_ID = 'chief';

/** Name of the pseudo-tensor an Assign carries optimizer state shared by all variables in (Adam's β powers). */
export const OPTIMIZER_STATE_TENSOR = ':optimizer';

export interface ShardConfig {
  /** Which shard of the placement this configures. */
  readonly shardIndex: number;
  readonly optimizer: OptimizerSettings;
  /** Version (updates applied) to start from: 0 for a new job, the checkpoint's on resume. */
  readonly version: bigint;
  readonly mode: ConsistencyMode;
  /** sync: gradients per step when every worker is alive (workers less backups). */
  readonly syncReplicas: number;
  /** ssp: how many steps a worker may run ahead of the slowest. */
  readonly staleness: number;
  /** Workers whose pushes the shard accepts. */
  readonly workerIds: readonly string[];
  /** Step every worker starts at (non-zero after a resume). */
  readonly workerStep?: bigint;
  /** The job's gradient codec (default fp32): the shard refuses pushes in any other. */
  readonly wirePush?: WireCodec;
  /** The job's parameter codec (default fp32): workers' pulls may ask for it or for fp32. */
  readonly wirePull?: WireCodec;
  /** `--wire auto`: each worker picks fp32, fp16, int8 or int4 (top-k pushes on a very slow link) for itself; the shard takes any of them (wirePush/wirePull are unused). */
  readonly wireAuto?: boolean;
  /**
   * Deep Gradient Compression's momentum correction (ARCHITECTURE.md, the wire section): the optimizer
   * is momentum SGD and the push codec top-k (or auto), so workers keep the momentum and may push
   * momentum-corrected gradients, which the shard applies with plain SGD at the same learning rate.
   */
  readonly momentumCorrection?: boolean;
  /**
   * The Adam correction (ARCHITECTURE.md, the wire section): the optimizer is Adam and the push
   * codec top-k (or auto), so workers keep Adam's moments and may push the top-k of Adam's
   * accumulated direction (marked adam_corrected), which the shard applies with plain SGD at the
   * same learning rate; other pushes get the shard's Adam as usual.
   */
  readonly adamCorrection?: boolean;
  /**
   * The job's restore generation (ARCHITECTURE.md, "Faults"): bumped by the
   * chief each time it restores parameter servers from a checkpoint; the
   * shard then refuses requests of older generations (ROLLED_BACK). 0 or
   * absent: never restored.
   */
  readonly restoreGeneration?: bigint;
}

/** Most workers a job may have (bounds every per-worker table a shard keeps). */
export const MAX_WORKERS = 4096;
/** What a worker id looks like (the chief names them worker-<i>); bounded, so ids never grow logs or tables. */
const WORKER_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Refuse a configuration no shard can run, with an InvalidArgumentError saying what to change. */
export function checkShardConfig(config: ShardConfig, what = 'assign'): void {
  if (config.workerIds.length === 0) throw new InvalidArgumentError(`${what}: the job has no workers`);
  if (config.workerIds.length > MAX_WORKERS) throw new InvalidArgumentError(`${what}: ${config.workerIds.length} workers; at most ${MAX_WORKERS}`);
  if (!config.workerIds.every((id) => WORKER_ID.test(id) && id !== CHIEF_READER_ID) || new Set(config.workerIds).size !== config.workerIds.length) {
    throw new InvalidArgumentError(`${what}: worker ids must be distinct, 1-64 letters, digits, '.', '_' or '-', and not "${CHIEF_READER_ID}"`);
  }
  const o = config.optimizer;
  if (![o.learningRate, o.momentum, o.beta1, o.beta2, o.epsilon, o.initialAccumulatorValue].every(Number.isFinite)) {
    throw new InvalidArgumentError(`${what}: the optimizer's settings must be finite numbers`);
  }
  if (config.mode === 'sync' && (config.syncReplicas < 1 || config.syncReplicas > config.workerIds.length)) {
    throw new InvalidArgumentError(`${what}: sync needs 1..${config.workerIds.length} replicas per step, got ${config.syncReplicas}`);
  }
  if (config.momentumCorrection === true && (o.name !== 'momentum' || (config.wireAuto !== true && config.wirePush?.kind !== 'topk'))) {
    throw new InvalidArgumentError(`${what}: momentum correction needs the momentum optimizer and a top-k (or auto) push codec, got ${o.name} with ${config.wireAuto === true ? 'auto' : (config.wirePush?.kind ?? 'fp32')}`);
  }
  if (config.adamCorrection === true && (o.name !== 'adam' || (config.wireAuto !== true && config.wirePush?.kind !== 'topk'))) {
    throw new InvalidArgumentError(`${what}: Adam correction needs the adam optimizer and a top-k (or auto) push codec, got ${o.name} with ${config.wireAuto === true ? 'auto' : (config.wirePush?.kind ?? 'fp32')}`);
  }
  if (config.wirePull?.kind === 'topk') throw new InvalidArgumentError(`${what}: parameters cannot be pulled as top-k; use fp32, fp16, int8 or int4`);
}
