/**
 * The ParameterServer service's replication methods (--ps-replicas 1,
 * chain replication as in Li et al., OSDI 2014; ARCHITECTURE.md, "Faults"):
 * ReplicaHost (start a backup service for another shard in this process),
 * ReplicaAttach (a primary starts forwarding to its backup), ReplicaApply (a
 * backup takes one forwarded update) and ReplicaPromote (a backup becomes
 * its shard's primary). All are the chief's (its secret), ReplicaApply
 * included: a primary sends it with the secret its own server knows.
 */
import type {
  ParameterServerServer,
  ReplicaApplyRequest,
  ReplicaApplyResponse,
  ReplicaAttachRequest,
  ReplicaAttachResponse,
  ReplicaHostRequest,
  ReplicaHostResponse,
  ReplicaPromoteRequest,
  ReplicaPromoteResponse,
} from '@tamp/proto/tamp/v1/parameter_server';
import { ClusterError, InvalidArgumentError, TensorAssembler, partKey } from '@tamp/core/base';
import { type RpcClientOptions, type serviceHandlers, CHIEF_SECRET_KEY, INSECURE } from '@tamp/rpc';
import type { ShardAuthority } from './authority.js';
import { ReplicaForwarder } from './replica-forwarder.js';
import type { SeenPush } from './shard/replication.js';
import type { Shard } from './shard.js';
import { messageChunks } from './wire/fast-codec.js';

export interface ReplicaContext {
  readonly shard: Shard;
  readonly authority: ShardAuthority;
  readonly jobId: string;
  /** This server's transport settings (the same security serves as a client's). */
  readonly rpc: RpcClientOptions['security'];
  /** The checkpoint root the first Assign fixed (a backup is given the same). */
  checkpointRoot(): string | undefined;
  /** Start (or find) the backup service of shard `index` in this process; its port. */
  hostBackup(index: number, chiefSecret: string): Promise<number>;
  readonly log: (message: string) => void;
}

type ReplicaMethods = Pick<ParameterServerServer, 'replicaHost' | 'replicaAttach' | 'replicaApply' | 'replicaPromote'> & {
  /** Where this shard forwards its updates ('' when it has no backup): ShardStatus's replica_backup_address. */
  readonly backupAddress: () => string;
};

export function replicaHandlers(rpc: ReturnType<typeof serviceHandlers>, ctx: ReplicaContext): ReplicaMethods {
  const { shard, authority, log } = ctx;
  let forwarder: ReplicaForwarder | undefined;

  const replicaHost = rpc.unary<ReplicaHostRequest, ReplicaHostResponse>('replicaHost', async (req, caller) => {
    authority.requireChief(caller, 'replicaHost');
    if (req.shardIndex === shard.index && shard.initialized && !shard.isBackup) {
      throw new ClusterError('REPLICA_CONFIG', `replicaHost: parameter server ${shard.index} is shard ${req.shardIndex}'s primary; its backup must live on another parameter server`);
    }
    // requireChief passed, so the secret is known.
    return { port: await ctx.hostBackup(req.shardIndex, authority.chiefSecret as string) };
  });

  const replicaAttach = rpc.unary<ReplicaAttachRequest, ReplicaAttachResponse>('replicaAttach', async (req, caller) => {
    authority.requireChief(caller, 'replicaAttach');
    if (!shard.initialized) throw new ClusterError('NOT_READY', `replicaAttach: shard ${shard.index} has not been assigned yet`);
    if (shard.isBackup) throw new ClusterError('REPLICA_CONFIG', `replicaAttach: this is a backup of shard ${shard.index}; attach a backup to its primary`);
    const previous = forwarder;
    if (req.backupAddress === '') {
      forwarder = undefined;
      shard.replicateTo(undefined);
      previous?.close();
      log(`shard ${shard.index}: replication off (no backup)`);
      return { version: 0n };
    }
    const next = new ReplicaForwarder({
      address: req.backupAddress,
      jobId: ctx.jobId,
      rpc: { security: ctx.rpc ?? INSECURE, metadata: { [CHIEF_SECRET_KEY]: authority.chiefSecret as string } },
      checkpointRoot: ctx.checkpointRoot() ?? '',
      parts: () => new Map(shard.partList.map((p) => [partKey(p.name, p.sliceStart), p])),
      log,
      onDeposed: () => shard.depose(),
    });
    forwarder = next;
    // Taken in this turn: nothing applied can fall between the copy and the first record.
    const copy = shard.replicateTo(next);
    // Pushes waiting for the old backup now wait for the new one to hold their versions.
    previous?.close(next);
    if (copy === undefined) throw new Error('replicaAttach: an initialised shard always has a state to copy');
    await next.start(copy);
    log(`shard ${shard.index}: backup at ${req.backupAddress} holds version ${copy.version}; forwarding every update to it`);
    return { version: copy.version };
  });

  const replicaApply = rpc.clientStream<ReplicaApplyRequest, ReplicaApplyResponse>('replicaApply', (caller) => {
    let first: ReplicaApplyRequest | undefined;
    const seen: SeenPush[] = [];
    const assembler = new TensorAssembler();
    return {
      onMessage(msg, isFirst) {
        if (isFirst) {
          authority.requireChief(caller, 'replicaApply');
          // Fencing: a promoted backup takes no more updates from the primary it replaced (it may be alive after all).
          if (!shard.isBackup) throw new ClusterError('REPLICA_CONFIG', `replicaApply: shard ${shard.index} here is a primary now (promoted); it takes no forwarded updates`);
          first = msg;
          for (const p of msg.seen) seen.push({ workerId: p.workerId, step: p.step });
        }
        for (const chunk of messageChunks(msg)) assembler.add(chunk);
        if (first !== undefined && assembler.tensorCount > first.tensorCount) throw new InvalidArgumentError(`replicaApply: more than the ${first.tensorCount} tensors declared`);
        if (assembler.receivedBytes > 2 * shard.bytes + 64 * 1024) throw new InvalidArgumentError(`replicaApply: ${assembler.receivedBytes} bytes exceed twice the shard's ${shard.bytes} bytes`);
      },
      onEnd() {
        if (first === undefined) throw new InvalidArgumentError('replicaApply: empty stream');
        if (!shard.isBackup) throw new ClusterError('REPLICA_CONFIG', `replicaApply: shard ${shard.index} here is a primary now (promoted); it takes no forwarded updates`);
        const tensors = assembler.finish();
        const version = shard.applyReplicated({ version: first.version, skip: first.skip, grads: undefined, corrected: undefined, seen }, tensors);
        return { version };
      },
    };
  });

  const replicaPromote = rpc.unary<ReplicaPromoteRequest, ReplicaPromoteResponse>('replicaPromote', (req, caller) => {
    authority.requireChief(caller, 'replicaPromote');
    if (shard.isBackup) {
      shard.promote(req.liveWorkerIds);
      log(`shard ${shard.index}: backup promoted to primary at version ${shard.version}`);
    }
    return { version: shard.version };
  });

  return { replicaHost, replicaAttach, replicaApply, replicaPromote, backupAddress: () => forwarder?.address ?? '' };
}
