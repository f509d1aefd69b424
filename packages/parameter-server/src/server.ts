/**
 * The gRPC ParameterServer service over one Shard. Handlers are written
 * through @tamp/rpc's wrappers (header check, errors to statuses).
 */
import {
  type AssignRequest,
  type AssignResponse,
  type CheckpointWriteWaitRequest,
  type CheckpointWriteWaitResponse,
  type ParameterServerServer,
  type PullRequest,
  type PullResponse,
  type PushRequest,
  type PushResponse,
  type SaveShardRequest,
  type SaveShardResponse,
  type ShardStatusRequest,
  type HostedReplica,
  type ShardStatusResponse,
  type ShutdownRequest,
  type ShutdownResponse,
  type UpdateMembershipRequest,
  type UpdateMembershipResponse,
} from '@tamp/proto/tamp/v1/parameter_server';
import { Codec, DType, type TensorChunk } from '@tamp/proto/tamp/v1/tensor';
import {
  CHIEF_READER_ID,
  ClusterError,
  CodecError,
  InvalidArgumentError,
  TensorAssembler,
  type WireCodecKind,
  codecKindOf,
  encodeTensorMessages,
  encodedTensorChunks,
  groupChunks,
  isDeltaPull,
} from '@tamp/core/base';
import { type RpcServerOptions, type Server, serviceHandlers, startServer } from '@tamp/rpc';
import { ShardAuthority } from './authority.js';
import { checkCheckpointRoot, saveDirectory } from './checkpoint-location.js';
import { CheckpointWrites } from './checkpoint-writes.js';
import { assignByteLimit, checkPullRequest, checkPushMeta } from './request-bounds.js';
import { FastParameterServerService, encodePullResponse, messageChunks } from './wire/fast-codec.js';
import { type PushMeta, Shard } from './shard.js';
import { shardConfigFromProto } from './wire/shard-config.js';
import { shardFileName, writeShardCheckpoint } from './checkpoint.js';
import { join } from 'node:path';
import { shardMetrics } from './metrics.js';
import { FILE_DESCRIPTOR_SET_BASE64 } from '@tamp/proto/tamp/v1/descriptor_set';
import { replicaHandlers } from './replica-service.js';

export interface ParameterServerOptions {
  readonly jobId: string;
  /** This server's shard index. */
  readonly index: number;
  readonly host?: string;
  /** 0: any free port. */
  readonly port?: number;
  readonly log?: (message: string) => void;
  /** How long a pull may wait for a version (ms). */
  readonly pullWaitMs?: number;
  /** Called after answering a Shutdown request from the chief. */
  readonly onShutdown?: (reason: string) => void;
  /** Called when an Assign has been applied (health turns SERVING then). */
  readonly onAssigned?: () => void;
  /** Transport settings (credentials, interceptors). */
  readonly rpc?: RpcServerOptions;
  /**
   * The chief's job secret, when the server is told it (TAMP_CHIEF_SECRET;
   * the launcher sets it): only calls carrying it may use the chief-only
   * methods. Without it the first Assign that succeeds fixes it (authority.ts).
   */
  readonly chiefSecret?: string;
  /** Most bytes a first Assign may carry (default MAX_ASSIGN_BYTES); a later one is bounded by the assigned shard's own size. */
  readonly maxAssignBytes?: number;
  /** --ps-replicas 1: start (or find) a backup service of shard `index` in this process (startParameterServer gives it); its port. */
  readonly hostBackup?: (index: number, chiefSecret: string) => Promise<number>;
  /** --ps-replicas 1, a parameter server's own service: the replicas of other shards its process hosts (ShardStatus tells the chief). */
  readonly hostedReplicas?: () => HostedReplica[];
}

export interface RunningParameterServer {
  readonly port: number;
  /** The plaintext health-only port, when options.rpc.healthPort asked for one. */
  readonly healthPort?: number;
  readonly shard: Shard;
  readonly server: Server;
  close(): Promise<void>;
}

/** The service's full name: its health status is reported under it. */
export const PARAMETER_SERVER_SERVICE = 'tamp.v1.ParameterServer';

/** Bytes a push may carry beyond the shard's variables (headers are not counted; this is slack for safety). */
const PUSH_SLACK_BYTES = 64 * 1024;

export function parameterServerService(shard: Shard, options: ParameterServerOptions): ParameterServerServer {
  const hostBackup = options.hostBackup;
  const log = options.log ?? (() => {});
  const rpc = serviceHandlers({ jobId: options.jobId, log });
  const pullWaitMs = options.pullWaitMs ?? 600_000;
  const shardBytes = () => shard.bytes;
  const authority = new ShardAuthority(options.chiefSecret);
  // Fixed by the first Assign (the chief's <out>/checkpoints); SaveShard takes no path.
  let checkpointRoot: string | undefined;
  const writes = new CheckpointWrites(log);

  const pull = rpc.serverStream<PullRequest, PullResponse>('pull', async (req, out, caller) => {
    authority.requireReader(caller, req.workerId, 'pull');
    shard.checkReader(req.workerId);
    shard.checkServing(req.workerId, 'pull');
    shard.checkGeneration(req.workerId, req.restoreGeneration, 'pull');
    checkPullRequest(shard, req);
    const kind = pullCodecKind(req.codec);
    shard.checkPullCodec(kind);
    if (shard.pullMayWait(req.workerId, req.minVersion)) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), pullWaitMs);
      out.signal.addEventListener('abort', () => abort.abort(), { once: true });
      try {
        await shard.beforePull(req.workerId, req.step, req.minVersion, abort.signal);
      } finally {
        clearTimeout(timer);
      }
      // A restore while it waited rejects the wait; checked again for one that landed as it resolved.
      shard.checkGeneration(req.workerId, req.restoreGeneration, 'pull');
    }
    // Encode the whole snapshot now, while no update can interleave: the
    // encoded messages are the snapshot (no separate copy of the variables).
    const version = shard.version;
    let pullSeq = 0n;
    let groups: TensorChunk[][];
    if (isDeltaPull(kind)) {
      const delta = shard.deltaPull(req.workerId, req.names, req.basePull, kind);
      pullSeq = delta.seq;
      groups = groupChunks(delta.tensors.flatMap((t) => encodedTensorChunks(t)));
    } else {
      // checkPullCodec left fp32, fp16 or the job's own pull codec; only top-k carries a parameter, and it is never a pull codec.
      groups = encodeTensorMessages(shard.liveParts(req.names), undefined, kind === 'fp32' || kind === 'topk' ? undefined : { kind });
    }
    if (req.workerId !== CHIEF_READER_ID) shard.recordPullBytes(groups.reduce((n, g) => n + g.reduce((m, c) => m + c.payload.length, 0), 0));
    const messages = groups.map(([chunk, ...moreChunks]) => encodePullResponse({ version, pullSeq, chunk, moreChunks }));
    for (const message of messages) {
      if (out.cancelled) return;
      await out.write(message as unknown as PullResponse);
    }
  });

  const push = rpc.clientStream<PushRequest, PushResponse>('push', (caller) => {
    let meta: PushMeta | undefined;
    let generation = 0n;
    // Past validation the shard's consistency policy counts its own refusals.
    let handedToShard = false;
    // Made at the first message, once the shard (and so the job's push codec) is known.
    let assembler = new TensorAssembler();
    return {
      onMessage(msg, first) {
        if (first) {
          if (!shard.initialized) throw new ClusterError('NOT_READY', `push: parameter server shard ${shard.index} has not been initialised by the chief yet`);
          assembler = new TensorAssembler({ accept: shard.pushCodecs });
          meta = { workerId: msg.workerId, step: msg.step, basedOnVersion: msg.basedOnVersion, batchSize: msg.batchSize, tensorCount: msg.tensorCount, momentumCorrected: msg.momentumCorrected, adamCorrected: msg.adamCorrected };
          authority.requireWorker(caller, meta.workerId, 'push');
          shard.checkServing(meta.workerId, 'push');
          if (!shard.workerIds.includes(meta.workerId)) {
            throw new ClusterError('UNKNOWN_WORKER', `push: worker "${meta.workerId}" is not part of this job (known: ${shard.workerIds.join(', ')})`);
          }
          // The generation first: a push from before a restore names versions the restored shard no longer has.
          generation = msg.restoreGeneration;
          shard.checkGeneration(meta.workerId, generation, 'push');
          checkPushMeta(shard, meta);
        }
        for (const chunk of messageChunks(msg)) assembler.add(chunk);
        if (meta !== undefined && assembler.tensorCount > meta.tensorCount) {
          throw new InvalidArgumentError(`push: the stream carries more than the ${meta.tensorCount} tensors its first message declared`);
        }
        if (assembler.receivedBytes > shardBytes() + PUSH_SLACK_BYTES) {
          throw new InvalidArgumentError(`push: ${assembler.receivedBytes} bytes exceed the shard's ${shardBytes()} bytes of variables`);
        }
      },
      onEnd() {
        if (meta === undefined) throw new InvalidArgumentError('push: empty stream (no header, no gradients)');
        // Again at the end: the chief may have restored the shard while the stream came in.
        shard.checkGeneration(meta.workerId, generation, 'push');
        const grads = shard.validatePush(meta, assembler.finish());
        shard.recordPushBytes(assembler.receivedBytes);
        handedToShard = true;
        return shard.acceptPush(meta, grads);
      },
      onRefused() {
        if (!handedToShard) shard.recordRefused();
      },
    };
  });

  const shardStatus = rpc.unary<ShardStatusRequest, ShardStatusResponse>('shardStatus', (_req, caller) => {
    // Before the chief's first Assign it says only that the shard waits for one (the chief polls it to find the server up).
    if (authority.bound) authority.requireMember(caller, shard.workerIds, 'shardStatus');
    // Only the chief learns the workers' token generations (a restarted chief continues from them).
    return {
      ...statusOf(shard),
      chiefRejoinSlots: authority.isChief(caller) ? authority.slotGenerations() : [],
      replicaBackupAddress: replica.backupAddress(),
      hostedReplicas: options.hostedReplicas?.() ?? [],
    };
  });

  const assign = rpc.clientStream<AssignRequest, AssignResponse>('assign', (caller) => {
    let first: AssignRequest | undefined;
    let root = '';
    const limit = assignByteLimit(shard, options.maxAssignBytes);
    const assembler = new TensorAssembler();
    return {
      onMessage(msg, isFirst) {
        if (isFirst) {
          authority.requireChief(caller, 'assign', true);
          if (msg.shardIndex !== shard.index) {
            throw new ClusterError('CLUSTER_CONFIG', `assign: shard ${msg.shardIndex}'s variables reached parameter server ${shard.index}; check the order of the ps addresses`);
          }
          root = checkCheckpointRoot(msg.checkpointRoot, 'assign');
          if (checkpointRoot !== undefined && root !== checkpointRoot) {
            throw new InvalidArgumentError('assign: the checkpoint root was fixed by the first Assign and cannot change');
          }
          first = msg;
        }
        for (const chunk of messageChunks(msg)) assembler.add(chunk);
        if (first !== undefined && assembler.tensorCount > first.tensorCount) {
          throw new InvalidArgumentError(`assign: the stream carries more than the ${first.tensorCount} tensors its first message declared`);
        }
        if (assembler.receivedBytes > limit) throw new InvalidArgumentError(`assign: ${assembler.receivedBytes} bytes exceed the ${limit} bytes a shard of this server may hold`);
      },
      onEnd() {
        if (first === undefined) throw new InvalidArgumentError('assign: empty stream');
        const tensors = assembler.finish();
        if (tensors.length !== first.tensorCount) throw new InvalidArgumentError(`assign: the stream ended after ${tensors.length} of ${first.tensorCount} tensors`);
        const config = shardConfigFromProto(first);
        // Again at the end: another Assign may have bound the chief's secret meanwhile.
        authority.requireChief(caller, 'assign', true);
        shard.assign(config, tensors);
        authority.bindAfterAssign(caller);
        checkpointRoot ??= root;
        log(`shard ${shard.index}: assigned ${shard.partList.length} variable part(s) at version ${shard.version}, ${config.optimizer.name} (${shard.kernels} update loops), ${config.mode}`);
        options.onAssigned?.();
        return { version: shard.version };
      },
    };
  });

  const saveShard = rpc.unary<SaveShardRequest, SaveShardResponse>('saveShard', (req, caller) => {
    authority.requireChief(caller, 'saveShard');
    if (req.background) {
      // Copied now, written in the background (checkpoint-writes.ts): checkpointWriteWait tells when.
      const copied = writes.start(shard, saveDirectory(checkpointRoot, req.directory, req.step), req.step);
      return { file: copied.file, bytes: BigInt(copied.bytes), crc32: 0, version: copied.version };
    }
    const saved = writeShardCheckpoint(shard, saveDirectory(checkpointRoot, req.directory, req.step));
    log(`shard ${shard.index}: checkpoint of version ${shard.version} (step ${req.step}) in ${saved.file}`);
    return { file: saved.file, bytes: BigInt(saved.bytes), crc32: saved.crc32, version: shard.version };
  });

  const checkpointWriteWait = rpc.unary<CheckpointWriteWaitRequest, CheckpointWriteWaitResponse>('checkpointWriteWait', async (req, caller) => {
    authority.requireChief(caller, 'checkpointWriteWait');
    const written = await writes.wait(join(saveDirectory(checkpointRoot, req.directory, req.step), shardFileName(shard.index)));
    return { file: written.file, bytes: BigInt(written.bytes), crc32: written.crc32, version: written.version };
  });

  const updateMembership = rpc.unary<UpdateMembershipRequest, UpdateMembershipResponse>('updateMembership', (req, caller) => {
    authority.requireChief(caller, 'updateMembership');
    shard.setLive(req.liveWorkerIds);
    return { version: shard.version };
  });

  const shutdown = rpc.unary<ShutdownRequest, ShutdownResponse>('shutdown', (req, caller) => {
    authority.requireChief(caller, 'shutdown');
    // The reason is the chief's own text; cut short so a log line stays a line.
    const reason = req.reason.slice(0, 500);
    log(`shard ${shard.index}: shutdown requested by the chief (${JSON.stringify(reason)})`);
    // Runs after the wrapper has answered (it answers a plain value at once).
    setImmediate(() => options.onShutdown?.(reason));
    return { version: shard.version };
  });

  const replica = replicaHandlers(rpc, {
    shard,
    authority,
    jobId: options.jobId,
    rpc: options.rpc?.security,
    checkpointRoot: () => checkpointRoot,
    hostBackup: (index, secret) => {
      if (hostBackup === undefined) throw new ClusterError('REPLICA_CONFIG', 'replicaHost: this server was started without replica hosting');
      return hostBackup(index, secret);
    },
    log,
  });
  const { backupAddress: _, ...replicaMethods } = replica;
  return { pull, push, shardStatus, assign, saveShard, shutdown, updateMembership, checkpointWriteWait, ...replicaMethods };
}

function statusOf(shard: Shard): ShardStatusResponse {
  return {
    shardIndex: shard.index,
    version: shard.version,
    variables: shard.partList.map((p) => ({
      name: p.name,
      shape: [...p.shape],
      dtype: DType.D_TYPE_FLOAT32,
      sliceStart: BigInt(p.sliceStart),
      sliceLength: BigInt(p.sliceLength),
    })),
    optimizer: shard.optimizerName ?? '',
    pushesApplied: shard.counters.applied,
    pushesDuplicate: shard.counters.duplicate,
    pushesDropped: shard.counters.dropped,
    pushesRefused: shard.counters.refused,
    initialized: shard.initialized,
    pullsWaited: shard.counters.pullsWaited,
    maxLead: shard.counters.maxLead,
    liveWorkerIds: [...shard.liveWorkers],
    pushBytes: shard.counters.pushBytes,
    pushesReceived: shard.counters.pushesReceived,
    pullBytes: shard.counters.pullBytes,
    pullsServed: shard.counters.pullsServed,
    pushesNonFinite: shard.counters.nonFinite,
    restoreGeneration: shard.restoreGeneration,
    chiefRejoinSlots: [],
    replicaBackupAddress: '',
    hostedReplicas: [],
  };
}

/** The codec a pull asks for; one this Tamp does not know is CODEC_UNSUPPORTED. */
function pullCodecKind(codec: Codec): WireCodecKind {
  try {
    return codecKindOf(codec, 'pull');
  } catch {
    throw new CodecError('CODEC_UNSUPPORTED', `pull: codec ${Codec[codec] ?? codec} is not one this Tamp knows; run the same Tamp version in every role`);
  }
}

export async function startParameterServer(options: ParameterServerOptions): Promise<RunningParameterServer> {
  // --ps-replicas 1: backups of other shards this process hosts, each a service on a port of its own (replica-service.ts).
  const backups = new Map<number, Promise<RunningParameterServer>>();
  /** Those of `backups` listening (ShardStatus lists them). */
  const listening = new Map<number, RunningParameterServer>();
  const hostBackup = async (index: number, chiefSecret: string): Promise<number> => {
    let running = backups.get(index);
    if (running === undefined) {
      const { healthPort: _own, ...rpc } = options.rpc ?? {};
      running = startShardService(new Shard(index, 'backup'), { ...options, index, port: 0, chiefSecret, rpc, hostBackup }, 'backup of shard');
      backups.set(index, running);
      running.then(
        (r) => listening.set(index, r),
        () => backups.delete(index),
      );
    }
    return (await running).port;
  };
  const hostedReplicas = (): HostedReplica[] =>
    [...listening.entries()].map(([shardIndex, r]) => ({ shardIndex, port: r.port, promoted: !r.shard.isBackup, version: r.shard.version }));
  const primary = await startShardService(new Shard(options.index), { ...options, hostBackup, hostedReplicas }, 'parameter server');
  return {
    ...primary,
    close: async () => {
      const hosted = await Promise.allSettled([...backups.values()]);
      await Promise.all(hosted.flatMap((h) => (h.status === 'fulfilled' ? [h.value.close()] : [])));
      await primary.close();
    },
  };
}

async function startShardService(shard: Shard, options: ParameterServerOptions, what: string): Promise<RunningParameterServer> {
  const host = options.host ?? '127.0.0.1';
  // Health: NOT_SERVING for the ParameterServer service until the chief's Assign lands.
  let assigned = () => {};
  const service = parameterServerService(shard, {
    ...options,
    onAssigned: () => {
      assigned();
      options.onAssigned?.();
    },
  });
  // The shard's metrics (metrics.ts): counted by an interceptor and the definition's serializers, not in the handlers.
  const metrics = shardMetrics(shard, FastParameterServerService);
  const running = await startServer(
    [{ definition: metrics.definition, implementation: service, serving: false, descriptors: FILE_DESCRIPTOR_SET_BASE64 }],
    { host, port: options.port ?? 0 },
    { ...options.rpc, interceptors: [...(options.rpc?.interceptors ?? []), metrics.interceptor] },
  );
  // No Assign can land before this line: it needs a connection, and this runs first.
  assigned = () => running.setServing(PARAMETER_SERVER_SERVICE, true);
  options.log?.(`${what} ${options.index} of job "${options.jobId}" listening on ${host}:${running.port}${running.healthPort !== undefined ? `, health (plaintext) on port ${running.healthPort}` : ''}`);
  return { port: running.port, ...(running.healthPort !== undefined ? { healthPort: running.healthPort } : {}), shard, server: running.server, close: () => running.close() };
}
