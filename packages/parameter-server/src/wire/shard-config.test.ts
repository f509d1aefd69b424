import { describe, expect, it } from 'vitest';
import { AssignRequest } from '@tamp/proto/tamp/v1/parameter_server';
import { InvalidArgumentError, type ShardConfig, checkShardConfig, optimizerSettings } from '@tamp/core';
import { shardConfigFromProto, shardConfigToProto } from './shard-config.js';

const CONFIG: ShardConfig = {
  shardIndex: 2,
  optimizer: { ...optimizerSettings('adam', 0.003), beta1: 0.8, epsilon: 1e-6 },
  version: 12_345_678_901_234n,
  mode: 'ssp',
  syncReplicas: 3,
  staleness: 4,
  workerIds: ['worker-0', 'worker-1', 'worker-2'],
  workerStep: 900n,
  wirePush: { kind: 'topk', fraction: 0.01 },
  wirePull: { kind: 'int8' },
};

/** Through the bytes the gRPC message really carries. */
const overTheWire = (config: ShardConfig) =>
  AssignRequest.decode(AssignRequest.encode({ header: undefined, chunk: undefined, moreChunks: [], checkpointRoot: '', ...shardConfigToProto(config), tensorCount: 1 }).finish());

describe('ShardConfig on the wire', () => {
  it('round-trips every field through an encoded AssignRequest', () => {
    const back = shardConfigFromProto(overTheWire(CONFIG));
    // Optimizer settings travel as doubles, so they come back exactly.
    expect(back).toEqual(CONFIG);
  });

  it('round-trips momentum correction, and refuses it without the momentum optimizer and a top-k or auto push', () => {
    const dgc: ShardConfig = { ...CONFIG, optimizer: optimizerSettings('momentum', 0.1), momentumCorrection: true };
    expect(shardConfigFromProto(overTheWire(dgc))).toEqual(dgc);
    expect(shardConfigFromProto(overTheWire(CONFIG)).momentumCorrection).toBeUndefined();
    expect(() => checkShardConfig(dgc)).not.toThrow();
    const { wirePush: _push, wirePull: _pull, ...auto } = dgc;
    expect(() => checkShardConfig({ ...auto, wireAuto: true })).not.toThrow();
    expect(() => checkShardConfig({ ...dgc, optimizer: CONFIG.optimizer })).toThrow(/momentum correction needs the momentum optimizer and a top-k \(or auto\) push codec, got adam with topk/);
    expect(() => checkShardConfig({ ...dgc, wirePush: { kind: 'int8' } })).toThrow(/got momentum with int8/);
  });

  it('round-trips the Adam correction, and refuses it without adam and a top-k (or auto) push', () => {
    const corrected: ShardConfig = { ...CONFIG, optimizer: optimizerSettings('adam', 0.001), wirePush: { kind: 'topk', fraction: 0.01 }, adamCorrection: true };
    expect(shardConfigFromProto(overTheWire(corrected))).toEqual(corrected);
    expect(shardConfigFromProto(overTheWire(CONFIG)).adamCorrection).toBeUndefined();
    expect(() => checkShardConfig(corrected)).not.toThrow();
    expect(() => checkShardConfig({ ...corrected, optimizer: optimizerSettings('momentum', 0.1) })).toThrow(/Adam correction needs the adam optimizer and a top-k \(or auto\) push codec, got momentum with topk/);
    expect(() => checkShardConfig({ ...corrected, wirePush: { kind: 'fp16' } })).toThrow(/got adam with fp16/);
    // --wire auto: every worker divides every push, whatever codec its link picks.
    const { wirePush: _push, wirePull: _pull, ...rest } = corrected;
    const auto: ShardConfig = { ...rest, wirePush: { kind: 'fp32' }, wirePull: { kind: 'fp32' }, wireAuto: true };
    expect(() => checkShardConfig(auto)).not.toThrow();
    expect(shardConfigFromProto(overTheWire(auto))).toEqual(auto);
    expect(() => checkShardConfig({ ...auto, optimizer: optimizerSettings('sgd', 0.1) })).toThrow(/got sgd with auto/);
  });

  it('sends a missing workerStep as 0 (a new job)', () => {
    const { workerStep: _, ...fresh } = CONFIG;
    expect(shardConfigFromProto(overTheWire(fresh)).workerStep).toBe(0n);
  });

  it('reads empty codecs as fp32 and refuses a codec that is not one, or top-k for pulls', () => {
    const request = overTheWire(CONFIG);
    const plain = shardConfigFromProto({ ...request, wirePush: '', wirePull: '' });
    expect(plain.wirePush).toEqual({ kind: 'fp32' });
    expect(plain.wirePull).toEqual({ kind: 'fp32' });
    expect(() => shardConfigFromProto({ ...request, wirePush: 'gzip' })).toThrow(InvalidArgumentError);
    expect(() => shardConfigFromProto({ ...request, wirePull: 'topk:0.1' })).toThrow(/assign: --wire-pull/);
  });

  it('refuses an unknown mode, an unknown optimizer and a missing optimizer, naming what to send', () => {
    const request = overTheWire(CONFIG);
    expect(() => shardConfigFromProto({ ...request, mode: 'eventual' })).toThrow(/unknown mode "eventual": choose one of async, sync, ssp/);
    expect(() => shardConfigFromProto({ ...request, optimizer: { ...(request.optimizer as NonNullable<typeof request.optimizer>), name: 'rmsprop' } })).toThrow(InvalidArgumentError);
    expect(() => shardConfigFromProto({ ...request, optimizer: undefined })).toThrow(/no optimizer configuration/);
  });
});

describe('checkShardConfig', () => {
  it('refuses a job without workers and a sync step that needs more workers than the job has', () => {
    expect(() => checkShardConfig(CONFIG)).not.toThrow();
    expect(() => checkShardConfig({ ...CONFIG, workerIds: [] })).toThrow(/the job has no workers/);
    expect(() => checkShardConfig({ ...CONFIG, mode: 'sync', syncReplicas: 4 })).toThrow(/sync needs 1..3 replicas per step, got 4/);
    expect(() => checkShardConfig({ ...CONFIG, mode: 'sync', syncReplicas: 0 })).toThrow(InvalidArgumentError);
  });
});
