import { UsageError } from '@tamp/core';
import { describeDatasetChoices, loadDataset } from '@tamp/core/node';
import { type DeviceRequest, evaluateClassification, evaluateDetection } from '@tamp/webgpu';
import { loadModelWithSelection } from '@tamp/webgpu/node';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';
import { datasetHelp, deviceOption } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export const evalCommand = defineCommand({
  name: 'eval',
  summary: COMMAND_SUMMARIES.eval,
  positionals: [{ name: 'model', description: 'a tfjs model.json or a model.tamp', required: true }],
  options: {
    dataset: { type: 'string', value: 'name|folder', description: datasetHelp() },
    limit: { type: 'number', integer: true, min: 1, description: 'evaluate only the first N test samples' },
    device: deviceOption,
  },
  async run({ options, positionals, out }) {
    const modelPath = positionals[0] as string;
    if (options.dataset === undefined) throw new UsageError(`tamp eval needs --dataset (${describeDatasetChoices()})`);
    const dataset = loadDataset(options.dataset);
    const { model, selection } = await loadModelWithSelection(modelPath, { device: options.device as DeviceRequest, log: (m) => out.log(m) });
    const limit = options.limit !== undefined ? { limit: options.limit } : {};
    const where = { model: modelPath, dataset: dataset.name, split: 'test', device: selection.name, adapter: selection.adapter };
    try {
      if (dataset.kind === 'detection') {
        const d = await evaluateDetection(model, dataset.test, limit);
        const result = { ...where, task: 'detection', mAP: d.mAP, perClassAP: d.perClass, count: d.count, objects: d.objects, detections: d.detections };
        return {
          result,
          text: table([
            ['model', modelPath],
            ['dataset', `${dataset.name} (test split, ${d.count} scenes, ${d.objects} objects)`],
            ['device', `${selection.name} (${selection.adapter ?? ''})`],
            ['mAP@0.5', d.mAP.toFixed(3)],
            ...d.perClass.map((ap, c) => [`  AP ${dataset.classNames[c] ?? c}`, ap === undefined ? 'no objects' : ap.toFixed(3)]),
          ]),
        };
      }
      const { predictions: _, ...evaluation } = await evaluateClassification(model, dataset.test, limit);
      const result = { ...where, task: 'classification', ...evaluation };
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
