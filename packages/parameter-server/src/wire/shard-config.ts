/**
 * ShardConfig (the domain type, @tamp/core) ⇄ the configuration fields of
 * the gRPC AssignRequest: written once, used by ShardClient.assign and the
 * server's Assign handler. Lives here, not in core, because the generated
 * parameter_server module imports gRPC.
 */
import type { AssignRequest, OptimizerConfig } from '@tamp/proto/tamp/v1/parameter_server';
import { InvalidArgumentError, type ShardConfig, type WireCodec, formatWireCodec, optimizerSettings, parseConsistencyMode, parseWireCodec } from '@tamp/core/base';

/** The AssignRequest fields a ShardConfig fills (the rest carry the header and tensors). */
export type AssignConfigFields = Pick<
  AssignRequest,
  'shardIndex' | 'optimizer' | 'version' | 'mode' | 'syncReplicas' | 'staleness' | 'workerIds' | 'workerStep' | 'wirePush' | 'wirePull' | 'momentumCorrection' | 'adamCorrection' | 'restoreGeneration'
>;

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
    wirePush: config.wireAuto === true ? 'auto' : formatWireCodec(config.wirePush ?? FP32),
    wirePull: config.wireAuto === true ? 'auto' : formatWireCodec(config.wirePull ?? FP32),
    momentumCorrection: config.momentumCorrection === true,
    adamCorrection: config.adamCorrection === true,
    restoreGeneration: config.restoreGeneration ?? 0n,
  };
}

const FP32: WireCodec = { kind: 'fp32' };

/** A codec named in an AssignRequest (empty: fp32, as a chief from before codecs sends). */
function wireCodecField(text: string, direction: 'push' | 'pull'): WireCodec {
  if (text === '') return FP32;
  try {
    return parseWireCodec(text, direction);
  } catch (error) {
    throw new InvalidArgumentError(`assign: ${error instanceof Error ? error.message : String(error)}`);
  }
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
    ...(request.restoreGeneration > 0n ? { restoreGeneration: request.restoreGeneration } : {}),
    ...(request.wirePush === 'auto' || request.wirePull === 'auto'
      ? { wirePush: FP32, wirePull: FP32, wireAuto: true }
      : { wirePush: wireCodecField(request.wirePush, 'push'), wirePull: wireCodecField(request.wirePull, 'pull') }),
    ...(request.momentumCorrection ? { momentumCorrection: true } : {}),
    ...(request.adamCorrection ? { adamCorrection: true } : {}),
  };
}
