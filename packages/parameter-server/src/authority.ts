/**
 * Who may call what on a parameter server (ARCHITECTURE.md, "Security").
 * Transport security (TLS, mutual TLS, the bearer token) admits members of
 * the cluster; this decides their role:
 * - chief-only methods (Assign, SaveShard, Shutdown, UpdateMembership, and
 *   pulls as the chief's reader id) need the chief's secret (`tamp-chief-secret`);
 * - a worker's Pull and Push need its slot token (`tamp-worker-token`), which
 *   only the chief can issue, for the worker id the request names; a token of
 *   an older join of the slot is refused once a newer one was seen;
 * - ShardStatus needs either.
 * The secret is pinned from the server's own configuration (TAMP_CHIEF_SECRET,
 * which the launcher sets) or, when none is given, taken from the first
 * Assign that succeeds: until then only Assign and ShardStatus are answered.
 */
import { CHIEF_READER_ID, ClusterError } from '@tamp/core/base';
import { CHIEF_SECRET_KEY, type CallInfo, WORKER_TOKEN_KEY, sameSecret, verifySlotToken } from '@tamp/rpc';

function denied(what: string, why: string): ClusterError {
  return new ClusterError('PERMISSION_DENIED', `${what}: ${why}`);
}

export class ShardAuthority {
  private secret: string | undefined;
  /** The newest slot-token generation seen per worker id (bounded: ids come from the assigned configuration). */
  private readonly newest = new Map<string, number>();

  constructor(pinned?: string) {
    this.secret = pinned !== undefined && pinned !== '' ? pinned : undefined;
  }

  /** Whether a chief secret is known (pinned, or bound by an Assign). */
  get bound(): boolean {
    return this.secret !== undefined;
  }

  /** The chief's secret (undefined until pinned or bound): a primary sends it to its backup, a hosted backup is pinned to it. */
  get chiefSecret(): string | undefined {
    return this.secret;
  }

  /** Whether the call carries the chief's secret (an unbound server knows no chief yet: false). */
  isChief(caller: CallInfo): boolean {
    return this.secret !== undefined && sameSecret(caller.metadata(CHIEF_SECRET_KEY), this.secret);
  }

  /** Refuse a chief-only method to anyone but the chief. An Assign on an unbound server may proceed: `bindAfterAssign` binds its secret. */
  requireChief(caller: CallInfo, what: string, assign = false): void {
    if (this.secret === undefined && assign) {
      if (caller.metadata(CHIEF_SECRET_KEY) === undefined) throw denied(what, 'the chief sends its job secret with every call; this call carried none');
      return;
    }
    // Unassigned and no secret pinned: nothing to protect yet, and the chief retries (a restarted server waits for its Assign).
    if (this.secret === undefined) throw new ClusterError('NOT_READY', `${what}: this parameter server has not been assigned by the chief yet`);
    if (!this.isChief(caller)) throw denied(what, 'only the chief of this job may call this (its job secret was missing or wrong)');
  }

  /** The first Assign succeeded: its secret is the chief's from now on. */
  bindAfterAssign(caller: CallInfo): void {
    this.secret ??= caller.metadata(CHIEF_SECRET_KEY);
  }

  /** Refuse a call as `workerId` without that worker's current slot token. */
  requireWorker(caller: CallInfo, workerId: string, what: string): void {
    if (this.secret === undefined) throw new ClusterError('NOT_READY', `${what}: this parameter server has not been assigned by the chief yet`);
    const generation = verifySlotToken(this.secret, workerId, caller.metadata(WORKER_TOKEN_KEY));
    if (generation === undefined) throw denied(what, `no valid slot token for worker "${workerId}": a worker sends the token the chief gave it at Join`);
    const newest = this.newest.get(workerId) ?? 0;
    if (generation < newest) throw denied(what, `the slot token of worker "${workerId}" was superseded by a newer Join of its slot`);
    this.newest.set(workerId, generation);
  }

  /** The newest slot-token generation accepted from each worker (ShardStatus tells the chief: a restarted one continues from them). */
  slotGenerations(): Array<{ workerId: string; generation: number }> {
    return [...this.newest].map(([workerId, generation]) => ({ workerId, generation }));
  }

  /** A reader: the chief under its reader id, a worker under its own. */
  requireReader(caller: CallInfo, readerId: string, what: string): void {
    if (readerId === CHIEF_READER_ID) this.requireChief(caller, what);
    else this.requireWorker(caller, readerId, what);
  }

  /** The chief, or any of `workerIds` with its token. */
  requireMember(caller: CallInfo, workerIds: readonly string[], what: string): void {
    if (this.isChief(caller)) return;
    const secret = this.secret;
    const token = caller.metadata(WORKER_TOKEN_KEY);
    if (secret !== undefined && token !== undefined && workerIds.some((id) => verifySlotToken(secret, id, token) !== undefined)) return;
    throw denied(what, 'only the chief or a worker of this job (with the token the chief gave it) may call this');
  }
}
