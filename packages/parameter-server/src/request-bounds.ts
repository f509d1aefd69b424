/**
 * Range checks of a request's numbers against the shard before they drive a
 * wait, a loop or an allocation (ARCHITECTURE.md, "Security"): a declared
 * count or size from the wire is only believed up to what the assigned
 * shard can legitimately need.
 */
import { InvalidArgumentError } from '@tamp/core/base';
import type { PullRequest } from '@tamp/proto/tamp/v1/parameter_server';
import { OPTIMIZER_SLOTS } from './optimizers/optimizer.js';
import type { PushMeta, Shard } from './shard.js';

/** Most bytes a first Assign may carry: the largest WebAssembly arena a shard uses (2 GiB). */
export const MAX_ASSIGN_BYTES = 2 ** 31;
/** Largest batch a push may say it stands for. */
export const MAX_BATCH_SIZE = 1 << 24;
/** Slack for the optimizer-state tensor and headers. */
const SLACK_BYTES = 64 * 1024;
const MAX_SLOTS = Math.max(...Object.values(OPTIMIZER_SLOTS).map((s) => s.length));

/**
 * Bytes an Assign may carry: once assigned, the shard's own variables with
 * every optimizer slot (a restore carries them); before, `max`.
 */
export function assignByteLimit(shard: Shard, max = MAX_ASSIGN_BYTES): number {
  return shard.bytes === 0 ? max : Math.min(max, shard.bytes * (1 + MAX_SLOTS) + SLACK_BYTES);
}

/** A push's first message: counts and versions the shard can hold. */
export function checkPushMeta(shard: Shard, meta: PushMeta): void {
  const parts = shard.partList.length;
  if (meta.tensorCount < 1 || meta.tensorCount > parts) throw new InvalidArgumentError(`push: ${meta.tensorCount} tensors declared; shard ${shard.index} holds ${parts}`);
  if (meta.batchSize < 1 || meta.batchSize > MAX_BATCH_SIZE) throw new InvalidArgumentError(`push: batch size ${meta.batchSize} is out of range (1..${MAX_BATCH_SIZE})`);
  if (meta.basedOnVersion > shard.version) {
    throw new InvalidArgumentError(`push: based on version ${meta.basedOnVersion}, which shard ${shard.index} (at ${shard.version}) has not reached`);
  }
}

/** A pull: at most the shard's parts by name, and a version a live worker can bring about. */
export function checkPullRequest(shard: Shard, req: Pick<PullRequest, 'names' | 'minVersion'>): void {
  const parts = shard.partList.length;
  if (req.names.length > parts) throw new InvalidArgumentError(`pull: ${req.names.length} names asked for; shard ${shard.index} holds ${parts} parts`);
  // A sync worker waits for the step it is about to take: at most one update per worker ahead.
  const reachable = shard.version + BigInt(shard.workerIds.length) + 1n;
  if (req.minVersion > reachable) throw new InvalidArgumentError(`pull: min_version ${req.minVersion} is beyond any version shard ${shard.index} (at ${shard.version}) can reach soon`);
}
