import { UsageError, type BackendRequest } from '@tamp/core';
import { type TrainReport, trainSingleProcess } from '@tamp/core/node';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';
import { trainOptions } from './shared-options.js';

export function trainSummary(r: TrainReport): string {
  return table(
    [
      ['model', r.model],
      ['dataset', r.dataset],
      ['backend', `${r.backend}${r.adapter !== undefined ? ` (${r.adapter})` : ''}`],
      ['mode', `${r.mode}, ${r.workers} worker(s), ${r.ps} parameter server(s)`],
      ['steps', r.steps],
      ['samples/s', r.samplesPerSecond],
      ['validation accuracy', percent(r.validationAccuracy)],
      ['test accuracy', percent(r.testAccuracy)],
      ['model', r.modelPath],
    ],
  );
}

export const trainCommand = defineCommand({
  name: 'train',
  summary: 'Train a model (in this process; a cluster arrives with --local and the cluster roles).',
  positionals: [],
  options: trainOptions,
  async run({ options, out }) {
    if (options.model === undefined) throw new UsageError('tamp train needs --model (lenet-300-100, lenet-5, or a model.json)');
    if (options.dataset === undefined) throw new UsageError('tamp train needs --dataset (mnist, fashion-mnist, or an IDX folder)');
    if (options.out === undefined) throw new UsageError('tamp train needs --out DIR');
    const report = await trainSingleProcess({
      model: options.model,
      dataset: options.dataset,
      epochs: options.epochs,
      ...(options['epoch-size'] !== undefined ? { epochSize: options['epoch-size'] } : {}),
      batchSize: options['batch-size'],
      optimizer: options.optimizer,
      learningRate: options.lr,
      backend: options.backend as BackendRequest,
      requireGpu: options['require-gpu'],
      seed: options.seed,
      out: options.out,
      log: (m) => out.log(m),
      onProgress: (p) =>
        out.progress({
          label: `epoch ${p.epoch + 1}/${p.epochs}`,
          done: p.step,
          total: p.stepsPerEpoch,
          loss: p.loss,
          'samples/s': p.samplesPerSecond,
        }),
    });
    out.endProgress();
    return { result: report, text: trainSummary(report) };
  },
});
