import { type BackendRequest, UsageError, argmaxRows, batchInput, evaluateClassifier, gatherBatch, mnistPreprocess, rgbaToGrey } from '@tamp/core';
import { loadClassificationDataset, readPng, useBackend } from '@tamp/core/node';
import { loadAnyModel, readTampFile } from '@tamp/compress/node';
import { readModelArtifacts } from '@tamp/core/node';
import * as tf from '@tensorflow/tfjs-core';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';

const DEVICES = ['auto', 'webgpu', 'wasm', 'cpu'] as const;

function classNamesOf(modelPath: string): readonly string[] | undefined {
  try {
    if (modelPath.endsWith('.tamp')) return readTampFile(modelPath).meta.classNames;
    return (readModelArtifacts(modelPath).userDefinedMetadata as { tamp?: { classNames?: string[] } } | undefined)?.tamp?.classNames;
  } catch {
    return undefined;
  }
}

export const inferCommand = defineCommand({
  name: 'infer',
  summary: 'Run a model (model.json or model.tamp) on an image or on a dataset\'s test split.',
  positionals: [{ name: 'model', description: 'a tfjs model.json or a model.tamp', required: true }],
  options: {
    device: { type: 'string', choices: DEVICES, default: 'auto', description: 'where to run: auto takes the fastest really present' },
    image: { type: 'string', value: 'file.png', description: 'classify one PNG image (a digit: any size, dark on light or light on dark)' },
    dataset: { type: 'string', value: 'name|folder', description: "predict the dataset's test split and report accuracy" },
    limit: { type: 'number', integer: true, min: 1, description: 'only the first N test samples' },
  },
  async run({ options, positionals, out }) {
    const modelPath = positionals[0] as string;
    if ((options.image === undefined) === (options.dataset === undefined)) throw new UsageError('tamp infer needs exactly one of --image FILE or --dataset D');
    const device = await useBackend(options.device as BackendRequest, { log: (m) => out.debug(m) });
    const model = await loadAnyModel(modelPath);
    try {
      if (options.dataset !== undefined) {
        const ds = loadClassificationDataset(options.dataset);
        const n = Math.min(ds.test.size, options.limit ?? ds.test.size);
        const evaluation = await evaluateClassifier(model, ds.test, { limit: n });
        const batch = gatherBatch(ds.test, Uint32Array.from({ length: Math.min(n, 10) }, (_, i) => i));
        const y = tf.tidy(() => model.predict(batchInput(model, batch.xs, batch.size)) as tf.Tensor);
        const first = Array.from(argmaxRows(await y.data(), y.shape[1] as number));
        y.dispose();
        const result = { model: modelPath, device: device.name, dataset: ds.name, count: evaluation.count, accuracy: evaluation.accuracy, predictions: first, labels: Array.from(batch.labels) };
        return {
          result,
          text: table([
            ['model', modelPath],
            ['device', device.name],
            ['dataset', `${ds.name} test split, ${evaluation.count} samples`],
            ['accuracy', percent(evaluation.accuracy)],
            ['first predictions', first.join(' ')],
            ['their labels', Array.from(batch.labels).join(' ')],
          ]),
        };
      }
      const png = readPng(options.image as string);
      const shape = model.inputs[0]?.shape.slice(1) as number[];
      if (shape.reduce((a, b) => a * b, 1) !== 784) throw new UsageError(`--image expects a digit model with 28x28 input; this model takes [${shape.join(',')}]`);
      const x = mnistPreprocess(rgbaToGrey(png.rgba, png.width, png.height));
      const y = tf.tidy(() => model.predict(batchInput(model, x, 1)) as tf.Tensor);
      const scores = Array.from(await y.data());
      y.dispose();
      const names = classNamesOf(modelPath) ?? scores.map((_, i) => String(i));
      const top = scores.map((p, i) => ({ label: names[i] ?? String(i), index: i, probability: p })).sort((a, b) => b.probability - a.probability).slice(0, 3);
      const result = { model: modelPath, device: device.name, image: options.image, prediction: top[0]?.label, top };
      return { result, text: table([['model', modelPath], ['device', device.name], ['image', options.image as string], ...top.map((t, i) => [i === 0 ? 'prediction' : '', `${t.label} (${percent(t.probability, 1)})`])]) };
    } finally {
      model.dispose();
    }
  },
});
