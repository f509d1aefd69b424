/**
 * A worker's side of a parameter-server restore (ARCHITECTURE.md, "Faults").
 *
 * The chief bumps the job's restore generation each time it restores
 * parameter servers from a checkpoint; every pull, push and checkpoint
 * barrier carries the generation the worker trains in, and a shard (or the
 * chief) of a newer generation refuses it with ROLLED_BACK, nothing applied.
 * Like a Raft term, the generation orders what would otherwise race: a
 * request made before the restore can never change restored state, however
 * late it arrives or however often it is retried. The worker then lets its
 * other requests settle (they were made in the old generation too, so each
 * ends, refused or answered from state about to be discarded), asks the
 * chief for the current generation and step, and continues from there: sync
 * rewinds to the step every shard went back to (batches are chosen by step,
 * so it replays exactly the same data), async and ssp keep their own step.
 */
import { ClusterError, TampError } from '@tamp/core';
import type { CommChannel } from './comm/channel.js';
import type { CoordinatorClient } from './coordinator-client.js';

/** A request refused because the chief restored the parameter servers since it was made. */
export function isRolledBack(error: unknown): boolean {
  return error instanceof TampError && error.code === 'ROLLED_BACK';
}

/** A rejection as an Error (the comm channel rejects with Errors only; anything else is wrapped, not lost). */
export function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/**
 * Wait for every promise to settle (none is left running in the old
 * generation); then return their values, or throw: another error first, as
 * it is the real failure, else a ROLLED_BACK one.
 */
export async function settleAll<T extends readonly unknown[]>(promises: { readonly [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  const errors = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => asError(s.reason));
  const other = errors.find((e) => !isRolledBack(e));
  if (other !== undefined) throw other;
  const first = errors[0];
  if (first !== undefined) throw first;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** How long a worker waits for the chief to announce the generation a shard already refused it with. */
const REJOIN_WAIT_MS = 60_000;

/**
 * Take the chief's current restore generation (newer than the worker's: a
 * shard only refuses with ROLLED_BACK once the chief has begun a restore)
 * and the step the shards went back to. Sets the channel's generation, so
 * every later request carries it.
 */
export async function rejoinGeneration(chief: CoordinatorClient, comm: CommChannel, id: string, log: (message: string) => void): Promise<{ generation: bigint; step: number }> {
  const started = Date.now();
  for (;;) {
    const status = await chief.jobStatus();
    if (status.restoreGeneration > comm.restoreGeneration) {
      log(`${id}: the parameter servers were restored from a checkpoint (generation ${status.restoreGeneration}, step ${status.restoreStep}); continuing from there`);
      comm.restoreGeneration = status.restoreGeneration;
      return { generation: status.restoreGeneration, step: Number(status.restoreStep) };
    }
    if (Date.now() - started > REJOIN_WAIT_MS) {
      // A shard refused this worker's generation but the chief never announced a newer one: not a state this protocol reaches.
      throw new ClusterError('JOB_FAILED', `${id}: refused as rolled back, but the chief still reports restore generation ${status.restoreGeneration}; see the chief's log`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
