/**
 * The chief's side of chain replication (--ps-replicas 1, as in Li et al.,
 * OSDI 2014; ARCHITECTURE.md, "Faults"): where each shard's primary and
 * backup live, failover when a primary's process dies (its backup promoted,
 * nothing rolled back), and catching a new backup up once a process is back.
 *
 * Shard i's backup starts on parameter server (i+1) mod P, as a second
 * ParameterServer service of that process (ReplicaHost). After a failover a
 * shard's primary is that service; the restarted process then hosts the new
 * backups of the shards that lack one.
 */
import { ClusterError, errorMessage } from '@tamp/core';
import { type ParameterClient, ReplicaClient } from '@tamp/parameter-server';
import type { RpcClientOptions } from '@tamp/rpc';

/** `--ps-replicas`: 0 (none) or 1 (one backup per shard), and a backup needs a second parameter server. */
export function checkPsReplicas(replicas: number, parameterServers: number): void {
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 1) {
    throw new ClusterError('REPLICA_CONFIG', `--ps-replicas ${replicas}: Tamp keeps 0 or 1 backup per shard; give --ps-replicas 0 or 1`);
  }
  if (replicas === 1 && parameterServers < 2) {
    throw new ClusterError('REPLICA_CONFIG', `--ps-replicas 1 needs at least 2 parameter servers (a shard's backup lives on another one); ${parameterServers} given: add parameter servers or drop --ps-replicas`);
  }
}

/** Where one shard lives: its primary (an address and the process hosting it) and its backup, if any. */
export interface ChainLink {
  primary: string;
  primaryPs: number;
  backup: { address: string; ps: number } | undefined;
}

/** What one failover did, for the recovery record. */
export interface Failover {
  /** The parameter-server process that died. */
  readonly ps: number;
  /** The shards whose backups were promoted. */
  readonly promoted: readonly number[];
  /** Their versions once promoted (nothing lost: every acknowledged update is there). */
  readonly versions: readonly bigint[];
}

/** The host part of "host:port". */
export function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':'));
}

export class ReplicaChain {
  readonly links: ChainLink[];
  /** Bumped by each failover; workers follow it through heartbeats. */
  generation = 0n;
  /** Shards whose new backup could not be placed yet (said once each). */
  private readonly waiting = new Set<number>();

  constructor(
    private readonly psAddresses: readonly string[],
    private readonly params: ParameterClient,
    private readonly jobId: string,
    /** The chief's transport settings, its secret in the metadata. */
    readonly rpc: RpcClientOptions,
    private readonly log: (message: string) => void,
    private readonly callTimeoutMs = 10_000,
    /** An attach waits for the primary's whole state to be copied to the backup. */
    private readonly copyTimeoutMs = 300_000,
  ) {
    this.links = psAddresses.map((primary, i) => ({ primary, primaryPs: i, backup: undefined }));
  }

  /** Each shard's current address, in shard order. */
  addresses(): string[] {
    return this.links.map((l) => l.primary);
  }

  private async call<T>(address: string, fn: (c: ReplicaClient) => Promise<T>, timeoutMs = this.callTimeoutMs): Promise<T> {
    const c = new ReplicaClient(address, this.jobId, this.rpc, timeoutMs);
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  }

  /**
   * A restarted chief (replica-rejoin.ts): the chain as the parameter servers
   * hold it, this chief's own client retargeted to moved shards. `generation`
   * must exceed any an earlier chief gave the workers (who follow only a
   * higher one).
   */
  adopt(links: readonly ChainLink[], generation: bigint): void {
    links.forEach((link, i) => {
      this.links[i] = { primary: link.primary, primaryPs: link.primaryPs, backup: link.backup === undefined ? undefined : { ...link.backup } };
      this.params.retarget(i, link.primary);
      this.log(`replica: shard ${i} is on parameter server ${link.primaryPs} (${link.primary}), ${link.backup !== undefined ? `its backup on parameter server ${link.backup.ps} (${link.backup.address})` : 'without a backup until one is caught up'}`);
    });
    this.generation = generation;
  }

  /** Give every shard its backup on the next parameter server (after the shards were assigned, before any worker joins). */
  async setup(): Promise<void> {
    await Promise.all(this.links.map((_, i) => this.attachBackup(i, (i + 1) % this.psAddresses.length)));
  }

  /** Host shard `i`'s backup on process `ps` and have its primary copy its state there and forward to it. */
  private async attachBackup(i: number, ps: number): Promise<void> {
    const link = this.links[i] as ChainLink;
    const hostAddress = this.psAddresses[ps] as string;
    const port = await this.call(hostAddress, (c) => c.host(i));
    const address = `${hostOf(hostAddress)}:${port}`;
    const version = await this.call(link.primary, (c) => c.attach(address), this.copyTimeoutMs);
    link.backup = { address, ps };
    this.log(`replica: shard ${i}'s backup on parameter server ${ps} (${address}) holds version ${version}`);
  }

  /** The process hosting shard `i`'s primary. */
  primaryPs(i: number): number {
    return (this.links[i] as ChainLink).primaryPs;
  }

  /** Whether shard `i` has a backup to fail over to. */
  hasBackup(i: number): boolean {
    return this.links[i]?.backup !== undefined;
  }

  /**
   * Process `ps` died: promote the backups of the shards whose primary it
   * hosted (retargeting the chief's own client), and detach the backups it
   * hosted from their primaries, which then answer pushes unreplicated until
   * a new backup is caught up (catchUp).
   */
  async failover(ps: number, liveWorkerIds: readonly string[]): Promise<Failover> {
    const promoted: number[] = [];
    const versions: bigint[] = [];
    for (const [i, link] of this.links.entries()) {
      if (link.primaryPs !== ps || link.backup === undefined) continue;
      const backup = link.backup;
      versions.push(await this.call(backup.address, (c) => c.promote(liveWorkerIds)));
      link.primary = backup.address;
      link.primaryPs = backup.ps;
      link.backup = undefined;
      this.params.retarget(i, backup.address);
      promoted.push(i);
    }
    if (promoted.length > 0) this.generation += 1n;
    for (const [i, link] of this.links.entries()) {
      if (link.backup?.ps !== ps) continue;
      await this.call(link.primary, (c) => c.attach(''));
      link.backup = undefined;
      this.log(`replica: shard ${i}'s backup was on parameter server ${ps}; its primary runs without one until the server is back`);
    }
    return { ps, promoted, versions };
  }

  /** Before a restore from a checkpoint (no backup left for a lost shard): every primary stops forwarding; catchUp copies the restored state afresh. */
  async detachAll(): Promise<void> {
    for (const link of this.links) {
      if (link.backup === undefined) continue;
      await this.call(link.primary, (c) => c.attach('')).catch((error: unknown) => this.log(`replica: could not detach the backup of ${link.primary} (${errorMessage(error)})`));
      link.backup = undefined;
    }
  }

  /**
   * Give each shard without a backup a new one, on the first process after
   * its primary's that answers (the restarted one, usually): its primary
   * copies its current state there, then forwards as before. Returns the
   * shards caught up; one whose candidates do not answer is tried again on
   * the next call.
   */
  async catchUp(): Promise<number[]> {
    const done: number[] = [];
    const P = this.psAddresses.length;
    for (const [i, link] of this.links.entries()) {
      if (link.backup !== undefined) continue;
      for (let k = 1; k < P; k++) {
        const ps = (link.primaryPs + k) % P;
        try {
          await this.attachBackup(i, ps);
          done.push(i);
          this.waiting.delete(i);
          break;
        } catch (error) {
          if (!this.waiting.has(i)) this.log(`replica: parameter server ${ps} cannot host shard ${i}'s backup yet (${errorMessage(error)}); trying again on each pass`);
          this.waiting.add(i);
        }
      }
    }
    return done;
  }
}
