import { UsageError, gatherBatch, mnistPreprocess, rgbaToGrey, rgbaToRgbInput } from '@tamp/core';
import { loadDataset, readPng } from '@tamp/core/node';
import { type DeviceRequest, detect, evaluateClassification, evaluateDetection } from '@tamp/webgpu';
import { loadModelWithSelection } from '@tamp/webgpu/node';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';
import { deviceOption, dryRunOption, dryRunResult } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export const inferCommand = defineCommand({
  name: 'infer',
  summary: COMMAND_SUMMARIES.infer,
  positionals: [{ name: 'model', description: 'a tfjs model.json or a model.tamp', required: true }],
  options: {
    device: deviceOption,
    image: { type: 'string', value: 'file.png', description: 'one PNG image: a digit for classifiers (any size, either polarity), a scene for the detector (resized to its input)' },
    dataset: { type: 'string', value: 'name|folder', description: "predict the dataset's test split and report accuracy" },
    limit: { type: 'number', integer: true, min: 1, description: 'only the first N test samples' },
    'dry-run': dryRunOption,
  },
  async run({ options, positionals, out }) {
    const modelPath = positionals[0] as string;
    if ((options.image === undefined) === (options.dataset === undefined)) throw new UsageError('tamp infer needs exactly one of --image FILE or --dataset D');
    if (options['dry-run']) return dryRunResult('infer', { model: modelPath, device: options.device, image: options.image, dataset: options.dataset });
    const { model, selection } = await loadModelWithSelection(modelPath, { device: options.device as DeviceRequest, log: (m) => out.log(m) });
    const info = model.info();
    const where = { device: selection.name, adapter: selection.adapter, software: selection.software, skipped: selection.skipped, gpuWeightBytes: info.gpuWeightBytes };
    try {
      const detector = info.meta.task === 'detection' || (info.outputShape.length === 3 && info.inputShape.length === 3 && info.inputShape[2] === 3);
      const names = (i: number) => info.meta.classNames?.[i] ?? String(i);
      if (options.dataset !== undefined && detector) {
        const ds = loadDataset(options.dataset);
        if (ds.kind !== 'detection') throw new UsageError(`${modelPath} is a detector; evaluate it on shapes, not ${ds.name}`);
        const n = Math.min(ds.test.size, options.limit ?? ds.test.size);
        const started = performance.now();
        const d = await evaluateDetection(model, ds.test, { limit: n });
        const seconds = (performance.now() - started) / 1000;
        const first = (d.found[0] ?? []).map((x) => ({ label: names(x.label), score: x.score, box: [x.x1, x.y1, x.x2, x.y2] }));
        const result = { model: modelPath, ...where, dataset: ds.name, task: 'detection', count: d.count, mAP: d.mAP, perClassAP: d.perClass, samplesPerSecond: d.count / seconds, firstScene: first };
        return {
          result,
          text: table([
            ['model', modelPath],
            ['device', `${selection.name} (${selection.adapter ?? ''})`],
            ['dataset', `${ds.name} test split, ${d.count} scenes, ${d.objects} objects`],
            ['mAP@0.5', d.mAP.toFixed(3)],
            ['scenes/s', result.samplesPerSecond.toFixed(1)],
            ['first scene', first.map((x) => `${x.label} ${(x.score * 100).toFixed(0)}%`).join(', ') || 'nothing found'],
          ]),
        };
      }
      if (options.dataset !== undefined) {
        const ds = loadDataset(options.dataset);
        if (ds.kind !== 'classification') throw new UsageError(`${modelPath} is a classifier; ${ds.name} is a detection dataset`);
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
      const png = readPng(options.image as string);
      if (detector) {
        const [h, w] = info.inputShape as [number, number, number];
        const [found = []] = await detect(model, rgbaToRgbInput(png.rgba, png.width, png.height, w, h), { scoreThreshold: 0.3 });
        // Boxes in the image's own pixels.
        const objects = found.map((d) => ({
          label: names(d.label),
          score: d.score,
          box: [Math.round(d.x1 * png.width), Math.round(d.y1 * png.height), Math.round(d.x2 * png.width), Math.round(d.y2 * png.height)],
        }));
        const result = { model: modelPath, ...where, image: options.image, task: 'detection', objects };
        return {
          result,
          text: table([
            ['model', modelPath],
            ['device', `${selection.name} (${selection.adapter ?? ''})`],
            ['image', `${options.image as string} (${png.width}x${png.height})`],
            ...(objects.length === 0 ? [['found', 'nothing above 30%']] : objects.map((o, i) => [i === 0 ? 'found' : '', `${o.label} ${percent(o.score, 0)} at [${o.box.join(', ')}]`])),
          ]),
        };
      }
      if (info.inputShape.reduce((a, b) => a * b, 1) !== 784) throw new UsageError(`--image expects a digit model with 28x28 input; this model takes [${info.inputShape.join(',')}]`);
      const x = mnistPreprocess(rgbaToGrey(png.rgba, png.width, png.height));
      const y = await model.predict(x);
      const scores = Array.from(y.data);
      const top = scores
        .map((probability, index) => ({ label: names(index), index, probability }))
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
