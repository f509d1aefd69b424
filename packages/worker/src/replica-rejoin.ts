/**
 * A restarted chief under --ps-replicas 1 (ARCHITECTURE.md, "Faults"):
 * where each shard lives now, read back from the parameter servers. A
 * failover before the crash moved a shard to its backup, a service of
 * another process on a port of its own, which the new chief cannot know
 * from the flags; every process lists the replicas it hosts in its
 * ShardStatus (promoted or not), and every shard the backup it forwards to.
 * The chain rebuilt from them keeps the job's replication: a later failover
 * promotes the right backups, and a moved shard is not mistaken for a
 * server that lost its state (which would roll the job back to a checkpoint).
 */
import type { ShardStatusResponse } from '@tamp/proto/tamp/v1/parameter_server';
import { type ChainLink, hostOf } from './replica-chain.js';

export interface LocatedChain {
  /** Where each shard's primary and backup live, in shard order. */
  readonly links: ChainLink[];
  /** Each shard's status from where its primary lives (a moved shard's from its promoted backup). */
  readonly statuses: ShardStatusResponse[];
}

/**
 * `statuses`: each parameter server's own service's status, as the chief
 * (their hosted replicas included); `statusAt(address)` asks a promoted
 * backup's service for its status.
 */
export async function locateChain(psAddresses: readonly string[], statuses: readonly ShardStatusResponse[], statusAt: (address: string) => Promise<ShardStatusResponse>): Promise<LocatedChain> {
  const links: ChainLink[] = [];
  const located: ShardStatusResponse[] = [];
  for (const [i, own] of statuses.entries()) {
    // A backup of shard i promoted after a failover: the shard lives there (the newest, should there be two).
    let moved: { ps: number; port: number; version: bigint } | undefined;
    statuses.forEach((s, ps) => {
      for (const h of s.hostedReplicas) if (h.shardIndex === i && h.promoted && (moved === undefined || h.version > moved.version)) moved = { ps, port: h.port, version: h.version };
    });
    const primary = moved !== undefined ? `${hostOf(psAddresses[moved.ps] as string)}:${moved.port}` : (psAddresses[i] as string);
    const status = moved !== undefined ? await statusAt(primary) : own;
    links.push({ primary, primaryPs: moved?.ps ?? i, backup: backupAt(i, status.replicaBackupAddress, psAddresses, statuses) });
    located.push(status);
  }
  return { links, statuses: located };
}

/** The process hosting shard `i`'s (unpromoted) backup at `address`; undefined when there is none, or none that says so (catchUp gives it a new one). */
function backupAt(i: number, address: string, psAddresses: readonly string[], statuses: readonly ShardStatusResponse[]): ChainLink['backup'] {
  if (address === '') return undefined;
  const ps = statuses.findIndex((s, j) => s.hostedReplicas.some((h) => h.shardIndex === i && !h.promoted && `${hostOf(psAddresses[j] as string)}:${h.port}` === address));
  return ps === -1 ? undefined : { address, ps };
}
