import { BACKEND_NAMES, CONSISTENCY_MODES, type ConsistencyMode, OPTIMIZER_NAMES, UsageError, formatWireCodec, optimizerSettings, parseWireCodec, zooNames } from '@tamp/core';
import { checkModelSpec, describeDatasetChoices } from '@tamp/core/node';
import type { TrainingSettings } from '@tamp/worker';

export const BACKEND_CHOICES = ['auto', ...BACKEND_NAMES] as const;

export const backendOption = {
  type: 'string',
  choices: BACKEND_CHOICES,
  default: 'auto',
  description: 'tfjs backend: auto takes the fastest really present (tensorflow, webgpu on a hardware adapter, wasm, cpu)',
} as const;

export const requireGpuOption = { type: 'boolean', description: 'fail unless a GPU backend comes up' } as const;


/** --dataset's help, from core's registry: "mnist, fashion-mnist, shapes, or an IDX folder (shapes:<seed> ...)". */
export function datasetHelp(): string {
  return `${describeDatasetChoices()} (shapes:<seed> for another set of scenes)`;
}

export const trainOptions = {
  model: { type: 'string', value: 'name|model.json', description: `zoo model (${zooNames().join(', ')}) or a model.json to start from` },
  dataset: { type: 'string', value: 'name|folder', description: datasetHelp() },
  epochs: { type: 'number', integer: true, min: 1, default: 5, description: 'passes over the training split' },
  'epoch-size': { type: 'number', integer: true, min: 1, description: 'samples per epoch (default: the whole training split)' },
  'batch-size': { type: 'number', integer: true, min: 1, default: 64, description: 'samples per step per worker' },
  optimizer: { type: 'string', choices: OPTIMIZER_NAMES, default: 'adam', description: 'optimizer' },
  lr: { type: 'number', min: 0, default: 0.001, description: 'learning rate' },
  mode: { type: 'string', choices: CONSISTENCY_MODES, default: 'async', description: 'cluster consistency: sync, async, or ssp (bounded staleness)' },
  staleness: { type: 'number', integer: true, min: 0, default: 2, description: 'ssp: how many steps a worker may run ahead of the slowest' },
  'backup-workers': { type: 'number', integer: true, min: 0, default: 0, description: 'sync: apply a step when all but this many workers have pushed' },
  seed: { type: 'number', integer: true, default: 1, description: 'seed for initial weights and data order' },
  out: { type: 'string', value: 'dir', description: 'output folder: model/model.json, report.json, checkpoints/' },
  'checkpoint-every': { type: 'number', integer: true, min: 0, description: 'cluster: a checkpoint every N steps of each worker (default: each epoch; 0: only at the end)' },
  resume: { type: 'string', value: 'dir', description: 'cluster: continue from the latest complete checkpoint under DIR (a previous --out)' },
  'ps-replicas': {
    type: 'number',
    integer: true,
    default: 0,
    description: "cluster: 1 keeps a backup of every shard on the next parameter server (chain replication): a push is answered once the backup has it, and a dead server's shards fail over to their backups with no step lost (needs 2+ parameter servers)",
  },
  'peer-timeout': { type: 'number', min: 0.1, default: 60, description: 'cluster: seconds a role waits for a peer that does not answer (the chief for parameter server 0, a worker for the chief) before it exits non-zero naming it' },
  overwrite: { type: 'boolean', description: "cluster: a new job may delete the checkpoints, model and report.json another job left in --out (refused without it)" },
  'heartbeat-timeout': { type: 'number', min: 0.1, default: 10, description: 'cluster: seconds without a heartbeat before a worker is dropped from barriers' },
  'disconnect-grace': {
    type: 'number',
    min: 0,
    default: 1,
    description: "cluster: a worker whose connection to the chief closed (its process died) is dropped after this many seconds unless it reconnects or heartbeats; a stalled worker keeps its connection and is judged by --heartbeat-timeout",
  },
  'wire-push': {
    type: 'string',
    value: 'codec',
    description: 'cluster: gradients on the wire: fp32 (default), fp16, int8 (a scale per 256 values, error feedback), int4 (a scale per 64 values, error feedback) or topk:F (the largest fraction F, Deep Gradient Compression; e.g. topk:0.01) (env TAMP_WIRE_PUSH)',
  },
  'wire-pull': { type: 'string', value: 'codec', description: 'cluster: parameters on the wire: fp32 (default), fp16, int8 or int4 (the change since the last pull; the server keeps each worker\'s rounding error) (env TAMP_WIRE_PULL)' },
  wire: {
    type: 'string',
    choices: ['auto'],
    description: 'cluster: auto: each worker times pulls of the model in fp32, fp16, int8 and int4 over its own link before its first step and uses the fastest both ways (fp32 unless compression saves a fifth), with top-k pushes where int8 or int4 would still spend over twice the first step\'s compute on the wire; report.json says what and why (env TAMP_WIRE)',
  },
  'wire-no-feedback': { type: 'boolean', description: 'cluster: drop what int8, int4 and top-k round away instead of sending it later (only to measure what error feedback buys) (env TAMP_WIRE_NO_FEEDBACK=1)' },
  'wire-sparse-biases': {
    type: 'boolean',
    description: 'cluster, topk: sparsify biases like the other tensors instead of sending them whole (they are well under 1% of a model\'s values; only to measure what sending them whole buys) (env TAMP_WIRE_SPARSE_BIASES=1)',
  },
  'wire-clip': { type: 'number', min: 0, description: "cluster, topk: scale each worker's gradient to at most this L2 norm before it is accumulated (Deep Gradient Compression's local clipping; default: none) (env TAMP_WIRE_CLIP)" },
  'wire-no-momentum-correction': {
    type: 'boolean',
    description:
      'cluster, topk or auto with --optimizer momentum: keep the momentum on the parameter servers instead of on the workers (Deep Gradient Compression\'s momentum correction, on by default there) (env TAMP_WIRE_NO_MOMENTUM_CORRECTION=1)',
  },
  'wire-no-adam-correction': {
    type: 'boolean',
    description:
      "cluster, topk with --optimizer adam: keep both of Adam's moments on the parameter servers instead of on each worker, which then pushes the top-k of Adam's direction (on by default there) (env TAMP_WIRE_NO_ADAM_CORRECTION=1)",
  },
  'wire-warmup': { type: 'number', integer: true, min: 0, description: 'cluster, topk: steps over which top-k density falls from dense to F (default: 5% of each worker\'s steps) (env TAMP_WIRE_WARMUP)' },
} as const;

/** The job's wire codecs from --wire-push/--wire-pull/--wire-warmup, then TAMP_WIRE_* variables. */
export function wireSettings(
  o: {
    wire?: string | undefined;
    'wire-push'?: string | undefined;
    'wire-pull'?: string | undefined;
    'wire-warmup'?: number | undefined;
    'wire-no-feedback'?: boolean | undefined;
    'wire-sparse-biases'?: boolean | undefined;
    'wire-clip'?: number | undefined;
    'wire-no-momentum-correction'?: boolean | undefined;
    'wire-no-adam-correction'?: boolean | undefined;
  },
  env: NodeJS.ProcessEnv = process.env,
): NonNullable<TrainingSettings['wire']> {
  const text = (v: string | undefined, name: string) => v ?? (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const auto = text(o.wire, 'TAMP_WIRE');
  const noCorrection = o['wire-no-momentum-correction'] === true || /^(1|true|yes|on)$/i.test(env.TAMP_WIRE_NO_MOMENTUM_CORRECTION ?? '');
  const noAdam = o['wire-no-adam-correction'] === true || /^(1|true|yes|on)$/i.test(env.TAMP_WIRE_NO_ADAM_CORRECTION ?? '');
  const correction = { ...(noCorrection ? { momentumCorrection: false } : {}), ...(noAdam ? { adamCorrection: false } : {}) };
  if (auto !== undefined) {
    if (auto !== 'auto') throw new UsageError(`TAMP_WIRE=${auto}: the only value is auto (or set TAMP_WIRE_PUSH / TAMP_WIRE_PULL)`);
    if (o['wire-push'] !== undefined || o['wire-pull'] !== undefined) throw new UsageError('--wire auto picks the codecs itself: drop --wire-push/--wire-pull, or drop --wire auto');
    return { push: 'auto', pull: 'auto', ...correction };
  }
  const push = parseWireCodec(text(o['wire-push'], 'TAMP_WIRE_PUSH') ?? 'fp32', 'push');
  const pull = parseWireCodec(text(o['wire-pull'], 'TAMP_WIRE_PULL') ?? 'fp32', 'pull');
  const warmupText = o['wire-warmup'] !== undefined ? String(o['wire-warmup']) : text(undefined, 'TAMP_WIRE_WARMUP');
  const warmup = warmupText === undefined ? undefined : Number(warmupText);
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0)) throw new UsageError(`TAMP_WIRE_WARMUP=${warmupText}: give a whole number of steps, 0 or more`);
  const noFeedback = o['wire-no-feedback'] === true || /^(1|true|yes|on)$/i.test(env.TAMP_WIRE_NO_FEEDBACK ?? '');
  const sparseBiases = o['wire-sparse-biases'] === true || /^(1|true|yes|on)$/i.test(env.TAMP_WIRE_SPARSE_BIASES ?? '');
  if (sparseBiases && push.kind !== 'topk') throw new UsageError('--wire-sparse-biases is about top-k pushes: add --wire-push topk:F, or drop it');
  const clipText = o['wire-clip'] !== undefined ? String(o['wire-clip']) : text(undefined, 'TAMP_WIRE_CLIP');
  const clip = clipText === undefined ? undefined : Number(clipText);
  if (clip !== undefined && !(clip > 0)) throw new UsageError(`--wire-clip ${clipText}: give a positive L2 norm, e.g. 5`);
  if (clip !== undefined && push.kind !== 'topk') throw new UsageError('--wire-clip is top-k\'s local clipping: add --wire-push topk:F, or drop it');
  return {
    push: formatWireCodec(push),
    pull: formatWireCodec(pull),
    ...(warmup !== undefined ? { warmupSteps: warmup } : {}),
    ...(noFeedback ? { errorFeedback: false } : {}),
    ...(clip !== undefined ? { clipNorm: clip } : {}),
    ...(sparseBiases ? { sparseBiases: true } : {}),
    ...correction,
  };
}

/** The training settings a chief hands to its workers. */
export function trainingSettings(o: {
  model: string | undefined;
  dataset: string | undefined;
  epochs: number;
  'epoch-size': number | undefined;
  'batch-size': number;
  optimizer: string;
  lr: number;
  mode: string;
  staleness: number;
  'backup-workers': number;
  seed: number;
  wire?: string | undefined;
  'wire-push'?: string | undefined;
  'wire-pull'?: string | undefined;
  'wire-warmup'?: number | undefined;
  'wire-no-feedback'?: boolean | undefined;
  'wire-sparse-biases'?: boolean | undefined;
  'wire-clip'?: number | undefined;
  'wire-no-momentum-correction'?: boolean | undefined;
  'wire-no-adam-correction'?: boolean | undefined;
}): TrainingSettings {
  if (o.model === undefined) throw new UsageError(`needs --model (${zooNames().join(', ')}, or a model.json)`);
  if (o.dataset === undefined) throw new UsageError(`needs --dataset (${describeDatasetChoices()})`);
  checkModelSpec(o.model);
  return {
    model: o.model,
    dataset: o.dataset,
    epochs: o.epochs,
    ...(o['epoch-size'] !== undefined ? { epochSize: o['epoch-size'] } : {}),
    batchSize: o['batch-size'],
    optimizer: optimizerSettings(o.optimizer, o.lr),
    mode: o.mode as ConsistencyMode,
    staleness: o.staleness,
    backupWorkers: o['backup-workers'],
    seed: o.seed,
    wire: wireSettings(o),
  };
}

/** Flags of `tamp train` that the chief of a local cluster receives unchanged. */
export const CHIEF_FLAGS = [
  'model',
  'dataset',
  'epochs',
  'epoch-size',
  'batch-size',
  'optimizer',
  'lr',
  'mode',
  'staleness',
  'backup-workers',
  'seed',
  'out',
  'checkpoint-every',
  'resume',
  'heartbeat-timeout',
  'disconnect-grace',
  'overwrite',
  'peer-timeout',
  'ps-replicas',
  'wire',
  'wire-push',
  'wire-pull',
  'wire-warmup',
  'wire-no-feedback',
  'wire-sparse-biases',
  'wire-clip',
  'wire-no-momentum-correction',
  'wire-no-adam-correction',
] as const;

export const DEVICE_CHOICES = ['auto', 'webgpu', 'wasm', 'cpu'] as const;

export const deviceOption = {
  type: 'string',
  choices: DEVICE_CHOICES,
  default: 'auto',
  description: 'inference device: auto takes webgpu on a hardware adapter, then wasm, then cpu; webgpu named explicitly also runs on a software adapter (SwiftShader)',
} as const;

export * from './role-options.js';
