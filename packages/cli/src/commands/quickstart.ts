/**
 * `pnpm start`: the main job on the embedded default. Each stage is real
 * work; later stages (cluster, compression, inference) extend the list.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type BackendRequest, evaluateClassifier } from '@tamp/core';
import { loadClassificationDataset, loadLayersModelFile, useBackend } from '@tamp/core/node';
import { launchLocalCluster } from '@tamp/worker';
import { compressModel } from '@tamp/compress/node';
import { type DeviceRequest, evaluateClassification } from '@tamp/webgpu';
import { loadModelWithSelection } from '@tamp/webgpu/node';
import { defineCommand } from '../command.js';
import { formatBytes, percent, table } from '../output.js';
import { clusterProgress } from './cluster-progress.js';
import { backendOption, deviceOption } from './shared-options.js';
import { TAMP_BIN } from './train.js';
import { COMMAND_SUMMARIES } from './summaries.js';

const WORKERS = 2;

export const quickstartCommand = defineCommand({
  name: 'quickstart',
  summary: COMMAND_SUMMARIES.quickstart,
  positionals: [],
  options: {
    out: { type: 'string', value: 'dir', default: 'runs/quickstart', description: 'output folder' },
    epochs: { type: 'number', integer: true, min: 1, default: 3, description: 'training epochs' },
    backend: backendOption,
    device: deviceOption,
    seed: { type: 'number', integer: true, default: 1, description: 'seed' },
  },
  async run({ options, out }) {
    const started = performance.now();
    out.log(`[1/4] training lenet-300-100 on mnist: local cluster of 1 parameter server and 2 workers, async, ${options.epochs} epochs`);
    // --overwrite: the quickstart's folder is its own, remade on every run.
    const train = await launchLocalCluster({
      tamp: [process.execPath, TAMP_BIN],
      jobId: `quickstart-${randomBytes(4).toString('hex')}`,
      ps: 1,
      workers: WORKERS,
      chiefArgs: ['--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', String(options.epochs), '--batch-size', '64', '--optimizer', 'adam', '--lr', '0.001', '--mode', 'async', '--seed', String(options.seed), '--out', options.out, '--backend', options.backend, '--overwrite'],
      workerArgs: ['--backend', options.backend],
      out: options.out,
      verbose: out.verbose,
      log: (m) => out.log(`      ${m}`),
      onProgress: clusterProgress(out, WORKERS, { indent: '      ' }),
    });
    out.endProgress();

    out.log(`[2/4] evaluating the saved model ${train.modelPath}`);
    await useBackend(options.backend as BackendRequest, { log: (m) => out.debug(m) });
    const reloaded = await loadLayersModelFile(join(options.out, 'model', 'model.json'));
    const evaluation = await evaluateClassifier(reloaded, loadClassificationDataset('mnist').test);
    reloaded.dispose();

    out.log('[3/4] compressing it: pruning 90% while fine-tuning (2 epochs), 32 shared values per layer, int8, Huffman coding');
    const compressed = await compressModel({
      model: join(options.out, 'model', 'model.json'),
      out: join(options.out, 'compressed'),
      prune: 0.9,
      clusters: 32,
      int8: true,
      finetuneEpochs: 2,
      seed: options.seed,
      dataset: 'mnist',
      log: (m) => out.log(`      ${m}`),
    });

    out.log(`[4/4] running ${compressed.tamp} on the best device (--device ${options.device})`);
    const { model: runner, selection } = await loadModelWithSelection(compressed.tamp, { device: options.device as DeviceRequest, log: (m) => out.log(`      ${m}`) });
    let inference;
    try {
      const test = loadClassificationDataset('mnist').test;
      const onDevice = await evaluateClassification(runner, test);
      // Latency of one digit at a time, after a warm-up: the median and the 90th percentile of 50 calls.
      await runner.warmup(1);
      const times: number[] = [];
      for (let i = 0; i < 50; i++) {
        const x = new Float32Array(784);
        for (let j = 0; j < 784; j++) x[j] = (test.images[i * 784 + j] as number) / 255;
        const t = performance.now();
        await runner.predict(x);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      const info = runner.info();
      inference = {
        device: selection.name,
        adapter: selection.adapter,
        skipped: selection.skipped,
        accuracy: onDevice.accuracy,
        count: onDevice.count,
        latencyMs: { p50: times[25] as number, p90: times[45] as number },
        gpuWeightBytes: info.gpuWeightBytes,
        float32WeightBytes: info.float32WeightBytes,
      };
    } finally {
      runner.dispose();
    }

    const result = {
      out: options.out,
      train,
      evaluation: { model: train.modelPath, dataset: 'mnist', ...evaluation },
      compression: compressed,
      inference,
      seconds: (performance.now() - started) / 1000,
    };
    const text = [
      'Tamp quickstart',
      table(
        [
          ['train', `lenet-300-100 on mnist, ${train.workers} workers + ${train.ps} ps, ${train.mode}, ${train.backend}`, `${train.samplesPerSecond.toFixed(0)} samples/s`, `${train.steps} steps`],
          ['evaluate', `saved model, mnist test split (${evaluation.count})`, `accuracy ${percent(evaluation.accuracy)}`, `loss ${evaluation.loss.toFixed(4)}`],
          ['compress', `${compressed.techniques.join(', ')}, .tamp`, `accuracy ${percent(compressed.accuracyAfter ?? NaN)}`, `${formatBytes(compressed.compressedBytes)}, ${compressed.ratio.toFixed(2)}x smaller`],
          [
            'infer',
            `model.tamp on ${inference.device} (${inference.adapter ?? ''})`,
            `accuracy ${percent(inference.accuracy)}`,
            `${inference.latencyMs.p50.toFixed(2)} ms per digit (p50)${inference.gpuWeightBytes > 0 ? `, ${formatBytes(inference.gpuWeightBytes)} of weights on the GPU` : ''}`,
          ],
        ],
        ['stage', 'what', 'result', 'details'],
      ),
      '',
      table(
        [
          ['original (fp32 model.json)', formatBytes(compressed.originalBytes), percent(compressed.accuracyBefore ?? NaN)],
          ['compressed (model.tamp)', formatBytes(compressed.compressedBytes), percent(compressed.accuracyAfter ?? NaN)],
        ],
        ['model', 'weights', 'test accuracy'],
      ),
      '',
      `wrote ${options.out}/model/model.json, ${options.out}/compressed/model.tamp and the reports in ${result.seconds.toFixed(1)} s`,
    ].join('\n');
    return { result, text };
  },
});
