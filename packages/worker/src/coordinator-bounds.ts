/**
 * Range checks of what workers send the Coordinator, against the job,
 * before a number drives a loop (the chief evaluates once per finished
 * epoch) or is kept (ARCHITECTURE.md, "Security").
 */
import { InvalidArgumentError } from '@tamp/core';
import type { ClaimBatchesRequest, HeartbeatRequest, JoinRequest } from '@tamp/proto/tamp/v1/coordinator';
import type { BatchRange } from './batch-ranges.js';
import type { CoordinatorOptions } from './coordinator-state.js';

/** Longest client id or backend name kept (they appear in logs and JobStatus). */
const MAX_NAME_CHARS = 128;
/** Counters beyond this are not a real worker's (2^53: exact as a JavaScript number). */
const MAX_COUNT = 2n ** 53n;

export function checkJoin(req: Pick<JoinRequest, 'workerId' | 'backend' | 'taskIndex'>): void {
  if (req.workerId.length === 0 || req.workerId.length > MAX_NAME_CHARS) throw new InvalidArgumentError(`join: the worker id must be 1..${MAX_NAME_CHARS} characters`);
  if (req.backend.length > MAX_NAME_CHARS) throw new InvalidArgumentError(`join: the backend name is longer than ${MAX_NAME_CHARS} characters`);
  if (req.taskIndex < -1) throw new InvalidArgumentError(`join: task index ${req.taskIndex}; give 0..N-1, or -1 to let the chief choose`);
}

/** A heartbeat's (or a leave's) progress: within the job's epochs and steps, finite numbers. */
export function checkProgress(
  req: Pick<HeartbeatRequest, 'localStep' | 'epoch' | 'loss' | 'samples' | 'seconds'>,
  job: Pick<CoordinatorOptions, 'epochs' | 'totalSteps'>,
  what: string,
): void {
  if (req.epoch > job.epochs) throw new InvalidArgumentError(`${what}: epoch ${req.epoch} is beyond the job's ${job.epochs} epochs`);
  if (job.totalSteps !== undefined && req.localStep > BigInt(job.totalSteps)) {
    throw new InvalidArgumentError(`${what}: step ${req.localStep} is beyond the job's ${job.totalSteps} steps`);
  }
  if (req.samples > MAX_COUNT) throw new InvalidArgumentError(`${what}: ${req.samples} samples is not a count a worker reaches`);
  // A diverged loss may be NaN or Infinity (the mean skips it); a negative one is not a loss.
  if (req.loss < 0) throw new InvalidArgumentError(`${what}: a negative loss (${req.loss})`);
  if (!Number.isFinite(req.seconds) || req.seconds < 0) throw new InvalidArgumentError(`${what}: seconds must be a finite, non-negative number`);
}

/** A heartbeat's account of the chief's silence (chief-rejoin.ts): finite, non-negative, noticed no later than answered. */
export function checkChiefSilence(req: Pick<HeartbeatRequest, 'chiefRejoinNoticedSeconds' | 'chiefRejoinSilentSeconds' | 'chiefRejoinBackend'>): void {
  if (req.chiefRejoinBackend.length > MAX_NAME_CHARS) throw new InvalidArgumentError(`heartbeat: the backend name is longer than ${MAX_NAME_CHARS} characters`);
  const { chiefRejoinNoticedSeconds: noticed, chiefRejoinSilentSeconds: silent } = req;
  if (!Number.isFinite(noticed) || !Number.isFinite(silent) || noticed < 0 || silent < 0 || noticed > silent) {
    throw new InvalidArgumentError('heartbeat: the chief-silence seconds must be finite, non-negative, and noticed no later than answered');
  }
}

/** Most batches one claim hands out, and most done ranges one claim reports (a worker reports a few per block). */
const MAX_CLAIM = 1024;
const MAX_DONE_RANGES = 4096;

/** A claim: a bounded count, and done ranges inside the job's batches; returns the ranges as numbers. */
export function checkClaim(req: Pick<ClaimBatchesRequest, 'count' | 'done'>, totalBatches: number): BatchRange[] {
  if (req.count > MAX_CLAIM) throw new InvalidArgumentError(`claimBatches: ${req.count} batches at once; ask for at most ${MAX_CLAIM}`);
  if (req.done.length > MAX_DONE_RANGES) throw new InvalidArgumentError(`claimBatches: ${req.done.length} done ranges at once; report at most ${MAX_DONE_RANGES}`);
  return req.done.map((r) => {
    if (r.start >= r.end || r.end > BigInt(totalBatches)) throw new InvalidArgumentError(`claimBatches: done range [${r.start}, ${r.end}) is empty or outside the job's ${totalBatches} batches`);
    return [Number(r.start), Number(r.end)] as const;
  });
}
