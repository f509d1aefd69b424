/**
 * ShardConfig (the domain type, @tamp/core) ⇄ the configuration fields of
 * the gRPC AssignRequest: written once, used by ShardClient.assign and the
 * server's Assign handler. Lives here, not in core, because the generated
 * parameter_server module imports gRPC.
 */
import type { AssignRequest, OptimizerConfig } from '@tamp/proto/tamp/v1/parameter_server';
import { InvalidArgumentError, type ShardConfig, optimizerSettings, parseConsistencyMode } from '@tamp/core';

/** The AssignRequest fields a ShardConfig fills (the rest carry the header and tensors). */
export type AssignConfigFields = Pick<AssignRequest, 'shardIndex' | 'optimizer' | 'version' | 'mode' | 'syncReplicas' | 'staleness' | 'workerIds' | 'workerStep'>;

export function shardConfigToProto(config: ShardConfig): AssignConfigFields {
  const o = config.optimizer;
  const optimizer: OptimizerConfig = {
    name: o.name,
    learningRate: o.learningRate,
    momentum: o.momentum,
    beta1: o.beta1,
    beta2: o.beta2,
    epsilon: o.epsilon,
    initialAccumulatorValue: o.initialAccumulatorValue,
  };
  return {
    shardIndex: config.shardIndex,
    optimizer,
    version: config.version,
    mode: config.mode,
    syncReplicas: config.syncReplicas,
    staleness: config.staleness,
    workerIds: [...config.workerIds],
    workerStep: config.workerStep ?? 0n,
  };
}

/** The ShardConfig an AssignRequest carries; an unknown optimizer or mode, or a missing optimizer, is an InvalidArgumentError. */
export function shardConfigFromProto(request: AssignConfigFields): ShardConfig {
  const o = request.optimizer;
  if (o === undefined) throw new InvalidArgumentError('assign: no optimizer configuration');
  const mode = parseConsistencyMode(request.mode, 'assign');
  // optimizerSettings checks the name and the learning rate; the other fields travel as they are.
  const optimizer = {
    ...optimizerSettings(o.name, o.learningRate),
    momentum: o.momentum,
    beta1: o.beta1,
    beta2: o.beta2,
    epsilon: o.epsilon,
    initialAccumulatorValue: o.initialAccumulatorValue,
  };
  return {
    shardIndex: request.shardIndex,
    optimizer,
    version: request.version,
    mode,
    syncReplicas: request.syncReplicas,
    staleness: request.staleness,
    workerIds: [...request.workerIds],
    workerStep: request.workerStep,
  };
}
