import { UsageError } from '@tamp/core';
import { loadClassificationDataset } from '@tamp/core/node';
import { type DeviceRequest, evaluateClassification } from '@tamp/webgpu';
import { loadModelWithSelection } from '@tamp/webgpu/node';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';
import { deviceOption } from './shared-options.js';

export const evalCommand = defineCommand({
  name: 'eval',
  summary: "Evaluate a model on a dataset's test split: accuracy for classifiers.",
  positionals: [{ name: 'model', description: 'a tfjs model.json or a model.tamp', required: true }],
  options: {
    dataset: { type: 'string', value: 'name|folder', description: 'mnist, fashion-mnist, or an IDX folder' },
    limit: { type: 'number', integer: true, min: 1, description: 'evaluate only the first N test samples' },
    device: deviceOption,
  },
  async run({ options, positionals, out }) {
    const modelPath = positionals[0] as string;
    if (options.dataset === undefined) throw new UsageError('tamp eval needs --dataset (mnist, fashion-mnist, or an IDX folder)');
    const dataset = loadClassificationDataset(options.dataset);
    const { model, selection } = await loadModelWithSelection(modelPath, { device: options.device as DeviceRequest, log: (m) => out.log(m) });
    try {
      const { predictions: _, ...evaluation } = await evaluateClassification(model, dataset.test, options.limit !== undefined ? { limit: options.limit } : {});
      const result = { model: modelPath, dataset: dataset.name, split: 'test', device: selection.name, adapter: selection.adapter, ...evaluation };
      return {
        result,
        text: table([
          ['model', modelPath],
          ['dataset', `${dataset.name} (test split, ${evaluation.count} samples)`],
          ['device', `${selection.name} (${selection.adapter ?? ''})`],
          ['accuracy', percent(evaluation.accuracy)],
          ['loss', evaluation.loss.toFixed(4)],
        ]),
      };
    } finally {
      model.dispose();
    }
  },
});
