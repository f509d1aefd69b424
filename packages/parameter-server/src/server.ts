/**
 * The gRPC ParameterServer service over one Shard.
 */
import { type Server, type ServerWritableStream, type handleClientStreamingCall, type sendUnaryData } from '@grpc/grpc-js';
import {
  type AssignRequest,
  type AssignResponse,
  type PullRequest,
  type PullResponse,
  type PushRequest,
  type PushResponse,
  type SaveShardRequest,
  type SaveShardResponse,
  type ShardStatusRequest,
  type ShardStatusResponse,
  type ShutdownRequest,
  type ShutdownResponse,
  type UpdateMembershipRequest,
  type UpdateMembershipResponse,
} from '@tamp/proto/tamp/v1/parameter_server';
import { Codec, DType } from '@tamp/proto/tamp/v1/tensor';
import {
  ClusterError,
  CodecError,
  InvalidArgumentError,
  TensorAssembler,
  encodeTensorMessages,
} from '@tamp/core';
import { checkHeader } from './rpc/header.js';
import { bindServer, createServer, shutdownServer } from './rpc/channel.js';
import { toServiceError } from './rpc/status.js';
import { FastParameterServerService, encodePullResponse, messageChunks } from './rpc/fast-codec.js';
import { type PushMeta, Shard } from './shard.js';
import { shardConfigFromProto } from './wire/shard-config.js';
import { writeShardCheckpoint } from './checkpoint.js';

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
}

export interface RunningParameterServer {
  readonly port: number;
  readonly shard: Shard;
  readonly server: Server;
  close(): Promise<void>;
}

/** Bytes a push may carry beyond the shard's variables (headers are not counted; this is slack for safety). */
const PUSH_SLACK_BYTES = 64 * 1024;

function waitDrain(call: ServerWritableStream<PullRequest, PullResponse>): Promise<void> {
  return new Promise((resolve) => call.once('drain', resolve));
}

export function parameterServerService(shard: Shard, options: ParameterServerOptions) {
  const { jobId } = options;
  const log = options.log ?? (() => {});
  const pullWaitMs = options.pullWaitMs ?? 600_000;
  const fail = (error: unknown) => toServiceError(error, log);
  const shardBytes = () => shard.bytes;

  const pull = async (call: ServerWritableStream<PullRequest, PullResponse>): Promise<void> => {
    const req = call.request;
    try {
      checkHeader(req.header, jobId, 'pull');
      shard.checkReader(req.workerId);
      if (req.codec !== Codec.CODEC_NONE) throw new CodecError('CODEC_UNSUPPORTED', `pull: codec ${Codec[req.codec] ?? req.codec} is reserved but not implemented; ask for CODEC_NONE`);
      if (shard.pullMayWait(req.workerId, req.minVersion)) {
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), pullWaitMs);
        call.once('cancelled', () => abort.abort());
        try {
          await shard.beforePull(req.workerId, req.step, req.minVersion, abort.signal);
        } finally {
          clearTimeout(timer);
        }
      }
      // Encode the whole snapshot now, while no update can interleave: the
      // encoded messages are the snapshot (no separate copy of the variables).
      const version = shard.version;
      const messages = encodeTensorMessages(shard.liveParts(req.names)).map(([chunk, ...moreChunks]) => encodePullResponse({ version, chunk, moreChunks }));
      for (const message of messages) {
        if (call.cancelled) return;
        if (!call.write(message as unknown as PullResponse)) await waitDrain(call);
      }
      call.end();
    } catch (error) {
      if (!call.cancelled) call.emit('error', fail(error));
    }
  };

  const push: handleClientStreamingCall<PushRequest, PushResponse> = (call, callback) => {
    let meta: PushMeta | undefined;
    const assembler = new TensorAssembler();
    let done = false;
    const refuse = (error: unknown) => {
      if (done) return;
      done = true;
      shard.recordRefused();
      callback(fail(error), null);
    };
    call.on('data', (msg: PushRequest) => {
      if (done) return;
      try {
        if (meta === undefined) {
          checkHeader(msg.header, jobId, 'push');
          if (!shard.initialized) throw new ClusterError('NOT_READY', `push: parameter server shard ${shard.index} has not been initialised by the chief yet`);
          meta = { workerId: msg.workerId, step: msg.step, basedOnVersion: msg.basedOnVersion, batchSize: msg.batchSize, tensorCount: msg.tensorCount };
          if (!shard.workerIds.includes(meta.workerId)) {
            throw new ClusterError('UNKNOWN_WORKER', `push: worker "${meta.workerId}" is not part of this job (known: ${shard.workerIds.join(', ')})`);
          }
        }
        for (const chunk of messageChunks(msg)) assembler.add(chunk);
        if (assembler.receivedBytes > shardBytes() + PUSH_SLACK_BYTES) {
          throw new InvalidArgumentError(`push: ${assembler.receivedBytes} bytes exceed the shard's ${shardBytes()} bytes of variables`);
        }
      } catch (error) {
        refuse(error);
      }
    });
    call.on('error', () => {
      // Cancelled or broken stream: nothing was applied; drop what arrived.
      done = true;
    });
    call.on('end', () => {
      if (done) return;
      try {
        if (meta === undefined) throw new InvalidArgumentError('push: empty stream (no header, no gradients)');
        const grads = shard.validatePush(meta, assembler.finish());
        done = true;
        // The shard counts the pushes its policy refuses.
        shard.acceptPush(meta, grads).then(
          (outcome) => callback(null, outcome),
          (error: unknown) => callback(fail(error), null),
        );
      } catch (error) {
        refuse(error);
      }
    });
  };

  const shardStatus = (call: { request: ShardStatusRequest }, callback: sendUnaryData<ShardStatusResponse>) => {
    try {
      checkHeader(call.request.header, jobId, 'shardStatus');
      callback(null, {
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
      });
    } catch (error) {
      callback(fail(error), null);
    }
  };

  const assign: handleClientStreamingCall<AssignRequest, AssignResponse> = (call, callback) => {
    let first: AssignRequest | undefined;
    const assembler = new TensorAssembler();
    let done = false;
    call.on('data', (msg: AssignRequest) => {
      if (done) return;
      try {
        if (first === undefined) {
          checkHeader(msg.header, jobId, 'assign');
          if (msg.shardIndex !== shard.index) {
            throw new ClusterError('CLUSTER_CONFIG', `assign: shard ${msg.shardIndex}'s variables reached parameter server ${shard.index}; check the order of the ps addresses`);
          }
          first = msg;
        }
        for (const chunk of messageChunks(msg)) assembler.add(chunk);
      } catch (error) {
        done = true;
        callback(fail(error), null);
      }
    });
    call.on('error', () => {
      done = true;
    });
    call.on('end', () => {
      if (done) return;
      done = true;
      try {
        if (first === undefined) throw new InvalidArgumentError('assign: empty stream');
        const tensors = assembler.finish();
        if (tensors.length !== first.tensorCount) throw new InvalidArgumentError(`assign: the stream ended after ${tensors.length} of ${first.tensorCount} tensors`);
        const config = shardConfigFromProto(first);
        shard.assign(config, tensors);
        log(`shard ${shard.index}: assigned ${shard.partList.length} variable part(s) at version ${shard.version}, ${config.optimizer.name} (${shard.kernels} update loops), ${config.mode}`);
        callback(null, { version: shard.version });
      } catch (error) {
        callback(fail(error), null);
      }
    });
  };

  const saveShard = (call: { request: SaveShardRequest }, callback: sendUnaryData<SaveShardResponse>) => {
    try {
      checkHeader(call.request.header, jobId, 'saveShard');
      if (call.request.directory === '') throw new InvalidArgumentError('saveShard: no directory');
      const saved = writeShardCheckpoint(shard, call.request.directory);
      log(`shard ${shard.index}: checkpoint of version ${shard.version} (step ${call.request.step}) in ${saved.file}`);
      callback(null, { file: saved.file, bytes: BigInt(saved.bytes), crc32: saved.crc32, version: shard.version });
    } catch (error) {
      callback(fail(error), null);
    }
  };

  const updateMembership = (call: { request: UpdateMembershipRequest }, callback: sendUnaryData<UpdateMembershipResponse>) => {
    try {
      checkHeader(call.request.header, jobId, 'updateMembership');
      shard.setLive(call.request.liveWorkerIds);
      callback(null, { version: shard.version });
    } catch (error) {
      callback(fail(error), null);
    }
  };

  const shutdown = (call: { request: ShutdownRequest }, callback: sendUnaryData<ShutdownResponse>) => {
    try {
      checkHeader(call.request.header, jobId, 'shutdown');
      callback(null, { version: shard.version });
      log(`shard ${shard.index}: shutdown requested by the chief (${call.request.reason})`);
      setImmediate(() => options.onShutdown?.(call.request.reason));
    } catch (error) {
      callback(fail(error), null);
    }
  };

  return { pull: (call: ServerWritableStream<PullRequest, PullResponse>) => void pull(call), push, shardStatus, assign, saveShard, shutdown, updateMembership };
}

export async function startParameterServer(options: ParameterServerOptions): Promise<RunningParameterServer> {
  const shard = new Shard(options.index);
  const server = createServer();
  server.addService(FastParameterServerService, parameterServerService(shard, options));
  const port = await bindServer(server, options.host ?? '127.0.0.1', options.port ?? 0);
  options.log?.(`parameter server ${options.index} of job "${options.jobId}" listening on ${options.host ?? '127.0.0.1'}:${port}`);
  return { port, shard, server, close: () => shutdownServer(server) };
}
