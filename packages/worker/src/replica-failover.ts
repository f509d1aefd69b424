/**
 * One pass of the chief's failover (--ps-replicas 1; ARCHITECTURE.md,
 * "Faults"): from the shards' statuses, the processes whose primaries died
 * (a status call failed, or the process came back empty), their backups
 * promoted with nothing rolled back, a recovery record per shard moved,
 * then new backups caught up where a process answers again.
 */
import type { ReplicaChain } from './replica-chain.js';
import { type RecoveryRecord, type ShardSight, type ShardWatch, recoveryMetrics } from './shard-recovery.js';

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
  const m = recoveryMetrics();
  for (const r of records) {
    m.recoveries.inc({ role: r.role, cause: r.cause });
    m.seconds.observe({ role: r.role, phase: 'detected' }, r.detectedAfterSeconds);
    m.seconds.observe({ role: r.role, phase: 'resumed' }, r.resumedAfterSeconds);
    m.stepsLost.inc({ role: r.role }, 0);
    log(`recovery: ps shard ${r.index} (failover): detected after ${r.detectedAfterSeconds.toFixed(1)} s, backup promoted after ${r.resumedAfterSeconds.toFixed(1)} s at version ${r.restoredStep}, 0 steps lost`);
  }
  if (chain.links.some((l) => l.backup === undefined)) await chain.catchUp();
  return { records, moved };
}
