import { UsageError, gatherBatch, mnistPreprocess, rgbaToGrey } from '@tamp/core';
import { loadClassificationDataset, readPng } from '@tamp/core/node';
import { type DeviceRequest, evaluateClassification } from '@tamp/webgpu';
import { loadModelWithSelection } from '@tamp/webgpu/node';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';
import { deviceOption } from './shared-options.js';

export const inferCommand = defineCommand({
  name: 'infer',
  summary: 'Run a model (model.json or model.tamp) on an image or on a dataset\'s test split, on WebGPU (int8 weights kept packed), WASM or CPU.',
  positionals: [{ name: 'model', description: 'a tfjs model.json or a model.tamp', required: true }],
  options: {
    device: deviceOption,
    image: { type: 'string', value: 'file.png', description: 'classify one PNG image (a digit: any size, dark on light or light on dark)' },
    dataset: { type: 'string', value: 'name|folder', description: "predict the dataset's test split and report accuracy" },
    limit: { type: 'number', integer: true, min: 1, description: 'only the first N test samples' },
  },
  async run({ options, positionals, out }) {
    const modelPath = positionals[0] as string;
    if ((options.image === undefined) === (options.dataset === undefined)) throw new UsageError('tamp infer needs exactly one of --image FILE or --dataset D');
    const { model, selection } = await loadModelWithSelection(modelPath, { device: options.device as DeviceRequest, log: (m) => out.log(m) });
    const info = model.info();
    const where = { device: selection.name, adapter: selection.adapter, software: selection.software, skipped: selection.skipped, gpuWeightBytes: info.gpuWeightBytes };
    try {
      if (options.dataset !== undefined) {
        const ds = loadClassificationDataset(options.dataset);
        const n = Math.min(ds.test.size, options.limit ?? ds.test.size);
        const started = performance.now();
        const evaluation = await evaluateClassification(model, ds.test, { limit: n });
        const seconds = (performance.now() - started) / 1000;
        const first = Array.from(evaluation.predictions.subarray(0, 10));
        const labels = Array.from(gatherBatch(ds.test, Uint32Array.from({ length: first.length }, (_, i) => i)).labels);
        const result = { model: modelPath, ...where, dataset: ds.name, count: evaluation.count, accuracy: evaluation.accuracy, samplesPerSecond: evaluation.count / seconds, predictions: first, labels };
        return {
          result,
          text: table([
            ['model', modelPath],
            ['device', `${selection.name} (${selection.adapter ?? ''})`],
            ['dataset', `${ds.name} test split, ${evaluation.count} samples`],
            ['accuracy', percent(evaluation.accuracy)],
            ['samples/s', result.samplesPerSecond.toFixed(0)],
            ['first predictions', first.join(' ')],
            ['their labels', labels.join(' ')],
          ]),
        };
      }
      if (info.inputShape.reduce((a, b) => a * b, 1) !== 784) throw new UsageError(`--image expects a digit model with 28x28 input; this model takes [${info.inputShape.join(',')}]`);
      const png = readPng(options.image as string);
      const x = mnistPreprocess(rgbaToGrey(png.rgba, png.width, png.height));
      const y = await model.predict(x);
      const scores = Array.from(y.data);
      const names = info.meta.classNames ?? scores.map((_, i) => String(i));
      const top = scores
        .map((probability, index) => ({ label: names[index] ?? String(index), index, probability }))
        .sort((a, b) => b.probability - a.probability || a.index - b.index)
        .slice(0, 3);
      const result = { model: modelPath, ...where, image: options.image, prediction: top[0]?.label, top };
      return {
        result,
        text: table([
          ['model', modelPath],
          ['device', `${selection.name} (${selection.adapter ?? ''})`],
          ['image', options.image as string],
          ...top.map((t, i) => [i === 0 ? 'prediction' : '', `${t.label} (${percent(t.probability, 1)})`]),
        ]),
      };
    } finally {
      model.dispose();
    }
  },
});
