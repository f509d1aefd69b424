import { BACKEND_NAMES, OPTIMIZER_NAMES } from '@tamp/core';

export const BACKEND_CHOICES = ['auto', ...BACKEND_NAMES] as const;

export const backendOption = {
  type: 'string',
  choices: BACKEND_CHOICES,
  default: 'auto',
  description: 'tfjs backend: auto takes the fastest really present (tensorflow, webgpu on a hardware adapter, wasm, cpu)',
} as const;

export const trainOptions = {
  model: { type: 'string', value: 'name|model.json', description: 'zoo model (lenet-300-100, lenet-5) or a model.json to start from' },
  dataset: { type: 'string', value: 'name|folder', description: 'mnist, fashion-mnist, or an IDX folder' },
  epochs: { type: 'number', integer: true, min: 1, default: 5, description: 'passes over the training split' },
  'epoch-size': { type: 'number', integer: true, min: 1, description: 'samples per epoch (default: the whole training split)' },
  'batch-size': { type: 'number', integer: true, min: 1, default: 64, description: 'samples per step per worker' },
  optimizer: { type: 'string', choices: OPTIMIZER_NAMES, default: 'adam', description: 'optimizer' },
  lr: { type: 'number', min: 0, default: 0.001, description: 'learning rate' },
  backend: backendOption,
  'require-gpu': { type: 'boolean', description: 'fail unless a GPU backend comes up' },
  seed: { type: 'number', integer: true, default: 1, description: 'seed for initial weights and data order' },
  out: { type: 'string', value: 'dir', description: 'output folder: model/model.json and report.json' },
} as const;
