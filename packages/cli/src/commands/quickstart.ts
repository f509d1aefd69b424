/**
 * `pnpm start`: the main job on the embedded default. Each stage is real
 * work; later stages (cluster, compression, inference) extend the list.
 */
import { join } from 'node:path';
import type { BackendRequest } from '@tamp/core';
import { evaluateClassifier } from '@tamp/core';
import { loadClassificationDataset, loadLayersModelFile, trainSingleProcess } from '@tamp/core/node';
import { defineCommand } from '../command.js';
import { percent, table } from '../output.js';
import { backendOption } from './shared-options.js';

export const quickstartCommand = defineCommand({
  name: 'quickstart',
  summary: 'Train LeNet-300-100 on MNIST, evaluate the saved model, and print a summary (what pnpm start runs).',
  positionals: [],
  options: {
    out: { type: 'string', value: 'dir', default: 'runs/quickstart', description: 'output folder' },
    epochs: { type: 'number', integer: true, min: 1, default: 3, description: 'training epochs' },
    backend: backendOption,
    seed: { type: 'number', integer: true, default: 1, description: 'seed' },
  },
  async run({ options, out }) {
    const started = performance.now();
    out.log(`[1/2] training lenet-300-100 on mnist (${options.epochs} epochs)`);
    const train = await trainSingleProcess({
      model: 'lenet-300-100',
      dataset: 'mnist',
      epochs: options.epochs,
      batchSize: 64,
      optimizer: 'adam',
      learningRate: 0.001,
      backend: options.backend as BackendRequest,
      seed: options.seed,
      out: options.out,
      log: (m) => out.log(`      ${m}`),
      onProgress: (p) => out.progress({ label: `      epoch ${p.epoch + 1}/${p.epochs}`, done: p.step, total: p.stepsPerEpoch, loss: p.loss, 'samples/s': p.samplesPerSecond }),
    });
    out.endProgress();

    out.log(`[2/2] evaluating the saved model ${train.modelPath}`);
    const reloaded = await loadLayersModelFile(join(options.out, 'model', 'model.json'));
    const evaluation = await evaluateClassifier(reloaded, loadClassificationDataset('mnist').test);
    reloaded.dispose();

    const result = {
      out: options.out,
      train,
      evaluation: { model: train.modelPath, dataset: 'mnist', ...evaluation },
      seconds: (performance.now() - started) / 1000,
    };
    const text = [
      'Tamp quickstart',
      table(
        [
          ['train', `lenet-300-100 on mnist, ${train.backend}, ${train.mode}`, `${train.samplesPerSecond.toFixed(0)} samples/s`, `${train.steps} steps`],
          ['evaluate', `saved model, mnist test split (${evaluation.count})`, `accuracy ${percent(evaluation.accuracy)}`, `loss ${evaluation.loss.toFixed(4)}`],
        ],
        ['stage', 'what', 'result', ''],
      ),
      '',
      `wrote ${options.out}/model/model.json and ${options.out}/report.json in ${result.seconds.toFixed(1)} s`,
    ].join('\n');
    return { result, text };
  },
});
