/**
 * One pass of the chief's failover (--ps-replicas 1; ARCHITECTURE.md,
 * "Faults"): from the shards' statuses, the processes whose primaries died
 * (a status call failed, or the process came back empty), their backups
 * promoted with nothing rolled back, a recovery record per shard moved
 * (the chief saves, counts and logs them, then catches new backups up where
 * a process answers again).
 */
import type { ReplicaChain } from './replica-chain.js';
import type { RecoveryRecord, ShardSight, ShardWatch } from './shard-recovery.js';

/** What the chief's state gives a failover. */
export interface FailoverState {
  readonly liveWorkerIds: readonly string[];
  readonly restoreGeneration: bigint;
}

export async function failOver(
  chain: ReplicaChain,
  watch: ShardWatch,
  sights: readonly ShardSight[],
  restarted: readonly number[],
  state: FailoverState,
  now: number,
  log: (message: string) => void,
): Promise<{ records: RecoveryRecord[]; moved: number[] }> {
  const dead = new Set<number>();
  sights.forEach((sight, i) => {
    if (chain.hasBackup(i) && ('error' in sight || restarted.includes(i))) dead.add(chain.primaryPs(i));
  });
  const records: RecoveryRecord[] = [];
  const moved: number[] = [];
  for (const ps of dead) {
    log(`parameter server ${ps} is gone; promoting the backups of its shards (nothing is rolled back)`);
    const f = await chain.failover(ps, state.liveWorkerIds);
    const resumedAt = Date.now();
    f.promoted.forEach((i, k) => {
      const seen = watch.lastSeen(i);
      const since = seen.at ?? now;
      const noticed = seen.faultySince ?? now;
      const version = f.versions[k] ?? 0n;
      watch.healthy(i, version, resumedAt);
      moved.push(i);
      records.push({
        role: 'ps',
        index: i,
        cause: 'failover',
        detectedAfterSeconds: (noticed - since) / 1000,
        resumedAfterSeconds: (resumedAt - since) / 1000,
        // Every acknowledged update was on the backup before its push was answered.
        stepsLost: 0,
        restoredStep: Number(version),
        restoredFrom: `backup of shard ${i} on parameter server ${chain.primaryPs(i)} (${chain.addresses()[i] ?? ''})`,
        generation: Number(state.restoreGeneration),
      });
    });
  }
  // Counted and logged by the chief once saved (announceRecoveries); new backups are caught up after that (ReplicaChain.catchUp).
  return { records, moved };
}
