import { BACKEND_NAMES, OPTIMIZER_NAMES, UsageError, optimizerSettings, zooNames } from '@tamp/core';
import { checkModelSpec, describeDatasetChoices } from '@tamp/core/node';
import { CONSISTENCY_MODES, type ConsistencyMode } from '@tamp/parameter-server';
import type { TrainingSettings } from '@tamp/worker';

export const BACKEND_CHOICES = ['auto', ...BACKEND_NAMES] as const;

export const backendOption = {
  type: 'string',
  choices: BACKEND_CHOICES,
  default: 'auto',
  description: 'tfjs backend: auto takes the fastest really present (tensorflow, webgpu on a hardware adapter, wasm, cpu)',
} as const;

export const requireGpuOption = { type: 'boolean', description: 'fail unless a GPU backend comes up' } as const;

export const jobIdOption = { type: 'string', default: 'tamp', description: 'job id shared by every role of one job' } as const;

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
  'peer-timeout': { type: 'number', min: 0.1, default: 60, description: 'cluster: seconds a role waits for a peer that does not answer (the chief for parameter server 0, a worker for the chief) before it exits non-zero naming it' },
  overwrite: { type: 'boolean', description: "cluster: a new job may delete the checkpoints, model and report.json another job left in --out (refused without it)" },
  'heartbeat-timeout': { type: 'number', min: 0.1, default: 10, description: 'cluster: seconds without a heartbeat before a worker is dropped from barriers' },
} as const;

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
  'overwrite',
  'peer-timeout',
] as const;

export const DEVICE_CHOICES = ['auto', 'webgpu', 'wasm', 'cpu'] as const;

export const deviceOption = {
  type: 'string',
  choices: DEVICE_CHOICES,
  default: 'auto',
  description: 'inference device: auto takes webgpu on a hardware adapter, then wasm, then cpu; webgpu named explicitly also runs on a software adapter (SwiftShader)',
} as const;

/** `--dry-run` on the commands that start processes or jobs: check everything they would check first, then stop. */
export const dryRunOption = { type: 'boolean', description: 'check the arguments (and TF_CONFIG) as the command would, then exit without starting anything' } as const;

/** What a dry run prints: what the command would do. */
export function dryRunResult(command: string, would: Record<string, unknown>): { result: Record<string, unknown>; text: string } {
  const details = Object.entries(would)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(', ');
  return { result: { dryRun: true, command, ...would }, text: `tamp ${command}: arguments check out (dry run, nothing started): ${details}` };
}
