import { UsageError, evaluateClassifier, type BackendRequest } from '@tamp/core';
import { loadClassificationDataset, useBackend } from '@tamp/core/node';
import { loadAnyModel } from '@tamp/compress/node';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';
import { backendOption } from './shared-options.js';

export const evalCommand = defineCommand({
  name: 'eval',
  summary: "Evaluate a model on a dataset's test split: accuracy for classifiers.",
  positionals: [{ name: 'model', description: 'a tfjs model.json or a model.tamp', required: true }],
  options: {
    dataset: { type: 'string', value: 'name|folder', description: 'mnist, fashion-mnist, or an IDX folder' },
    limit: { type: 'number', integer: true, min: 1, description: 'evaluate only the first N test samples' },
    backend: backendOption,
  },
  async run({ options, positionals, out }) {
    const modelPath = positionals[0] as string;
    if (options.dataset === undefined) throw new UsageError('tamp eval needs --dataset (mnist, fashion-mnist, or an IDX folder)');
    const dataset = loadClassificationDataset(options.dataset);
    const backend = await useBackend(options.backend as BackendRequest, { log: (m) => out.debug(m) });
    const model = await loadAnyModel(modelPath);
    const evaluation = await evaluateClassifier(model, dataset.test, options.limit !== undefined ? { limit: options.limit } : {});
    model.dispose();
    const result = { model: modelPath, dataset: dataset.name, split: 'test', backend: backend.name, ...evaluation };
    return {
      result,
      text: table([
        ['model', modelPath],
        ['dataset', `${dataset.name} (test split, ${evaluation.count} samples)`],
        ['backend', backend.name],
        ['accuracy', percent(evaluation.accuracy)],
        ['loss', evaluation.loss.toFixed(4)],
      ]),
    };
  },
});
