/**
 * `pnpm bench:compress --models resnet-20 --dataset fashion-mnist`: ResNet-20
 * (full size, 272k parameters, 32x32x3 input: Fashion-MNIST padded by 2
 * pixels and repeated over channels, data/fit-input.ts) trained with the real
 * `tamp train`, then `tamp compress --int8` and `tamp compress --prune
 * --clusters --int8`, as real processes. One training step of ResNet-20 on
 * Tamp's WASM path costs seconds on a small machine, so the run trains on the
 * first --train-samples images of the training file (10% of them held out
 * for validation, as for any IDX folder) and measures on the first
 * --test-samples test images: an IDX folder holding those rows is written
 * first, and every number in the section says so. Writes its own section of
 * BENCHMARKS.md (bench:compress:resnet-20; with --precise-bn,
 * bench:compress:resnet-20:precise-bn), leaving the LeNet section alone.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import type { CompressReport } from '@tamp/compress/node';
import { PRECISE_BN_SAMPLES, evaluateModel, recalibrateBatchNorm, recalibrationBatches } from '@tamp/core';
import { FASHION_MNIST_DIR, type TampModelMetadata, loadClassificationDataset, loadLayersModelFile, saveLayersModel, writeIdxHead } from '@tamp/core/node';
import { fmt, load, machine, markdownTable, writeSection } from './report.js';
import { tamp } from './tamp-sync.js';

export interface ResnetRunOptions {
  readonly work: string;
  readonly write: boolean;
  readonly trainSamples: number;
  readonly testSamples: number;
  readonly epochs: number;
  readonly finetuneEpochs: number;
  readonly finetuneEpochSize: number;
  /** Reuse the --out folder of an earlier `tamp train` of this run's command (its model/ and report.json) instead of training again. */
  readonly trained?: string;
  /**
   * Recompute the batch norms' moving statistics before compressing, as the
   * cluster chief does after training (train/batch-norm.ts): one-process
   * `tamp train` keeps tfjs's exponential moving averages, which after a
   * short run lag far behind the weights.
   */
  readonly preciseBn: boolean;
  /** Which compressions to run: int8, deep (pruned + shared + int8). */
  readonly compressions: ReadonlyArray<'int8' | 'deep'>;
}

function subset(dir: string, trainSamples: number, testSamples: number): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, n] of [['train-images-idx3-ubyte', trainSamples], ['train-labels-idx1-ubyte', trainSamples], ['t10k-images-idx3-ubyte', testSamples], ['t10k-labels-idx1-ubyte', testSamples]] as const) {
    writeIdxHead(join(FASHION_MNIST_DIR, `${name}.gz`), join(dir, name), n);
  }
}

/** Recompute every batch norm's moving statistics from training batches (precise BN) and save the model beside the work. */
async function recalibrate(modelJson: string, data: string, dir: string): Promise<{ modelJson: string; before: number; after: number }> {
  await tf.setBackend('wasm');
  const ds = loadClassificationDataset(data);
  const model = await loadLayersModelFile(modelJson);
  const before = (await evaluateModel(model, ds.test)).score;
  await recalibrateBatchNorm(model, recalibrationBatches(ds.train, { batchSize: 64, seed: 1 }));
  const after = (await evaluateModel(model, ds.test)).score;
  const stored = (model.getUserDefinedMetadata() as { tamp?: TampModelMetadata } | undefined)?.tamp;
  const out = await saveLayersModel(model, dir, stored);
  model.dispose();
  return { modelJson: out, before, after };
}

export async function runResnetFashion(o: ResnetRunOptions): Promise<void> {
  const data = join(o.work, 'fashion-mnist-subset');
  subset(data, o.trainSamples, o.testSamples);
  const loadAtStart = load();
  const validation = Math.round(o.trainSamples * 0.1);
  const trainArgs = ['train', '--model', 'resnet-20', '--dataset', data, '--epochs', String(o.epochs), '--backend', 'wasm', '--seed', '1'];
  const trainedDir = o.trained ?? join(o.work, 'trained');
  const trained = o.trained !== undefined ? { seconds: NaN } : tamp([...trainArgs, '--out', trainedDir, '--json']);
  const report = JSON.parse(readFileSync(join(trainedDir, 'report.json'), 'utf8')) as { testAccuracy: number; samplesPerSecond: number; steps: number; trainSeconds: number; history: Array<{ validationAccuracy?: number }> };
  let modelJson = join(trainedDir, 'model', 'model.json');
  let recalibrated = '';
  if (o.preciseBn) {
    const r = await recalibrate(modelJson, data, join(o.work, 'precise-bn'));
    modelJson = r.modelJson;
    recalibrated = ` **Batch norm recalibrated before compressing** (\`--precise-bn\`): the moving statistics set to the population statistics of ${fmt(PRECISE_BN_SAMPLES)} training samples, as the cluster chief does after training (train/batch-norm.ts); one-process \`tamp train\` does not, and its exponential moving averages (momentum 0.99) lag far behind the weights after ${report.steps} steps: test accuracy ${fmt(r.before * 100, 2)}% with them, ${fmt(r.after * 100, 2)}% recalibrated. The compressions below start from the recalibrated model.`;
  }
  const int8Args = ['--int8'];
  const deepArgs = ['--prune', '0.7', '--clusters', '32', '--int8', '--finetune-epochs', String(o.finetuneEpochs), '--finetune-epoch-size', String(o.finetuneEpochSize)];
  const compressions = [
    { key: 'int8', label: 'int8 (batch norm folded)', args: int8Args, goal: (drop: number) => `within 0.5 points: ${drop <= 0.5 ? 'met' : 'missed'}` },
    { key: 'deep', label: 'pruned 70% + 32 shared values + int8', args: deepArgs, goal: () => 'no numeric goal: compare with Deep Compression below' },
  ].filter((c) => o.compressions.includes(c.key as 'int8' | 'deep'));
  const rows: Array<Array<string | number>> = [];
  const layers: string[] = [];
  let deepDrop: number | undefined;
  for (const [i, c] of compressions.entries()) {
    const r = tamp(['compress', modelJson, ...c.args, '--dataset', data, '--seed', '1', '--backend', 'wasm', '--out', join(o.work, `compressed-${i}`), '--json']);
    const cr = JSON.parse(r.stdout) as CompressReport;
    const before = (cr.accuracyBefore as number) * 100;
    const after = (cr.accuracyAfter as number) * 100;
    const drop = before - after;
    rows.push([
      c.label,
      `\`tamp compress model.json ${c.args.join(' ')} --seed 1\``,
      `${fmt(cr.originalBytes / 1024, 0)} KiB → ${fmt(cr.compressedBytes / 1024, 1)} KiB`,
      `**${fmt(cr.ratio, 1)}x**`,
      `${fmt(before, 2)}% → ${fmt(after, 2)}%`,
      `${drop >= 0 ? '−' : '+'}${fmt(Math.abs(drop), 2)}`,
      `${fmt(r.seconds / 60, 1)} min`,
      c.goal(drop),
    ]);
    if (c.key === 'deep') {
      deepDrop = drop;
      layers.push(
        markdownTable(
          ['tensor', 'shape', 'encoding', 'kept', 'bits/weight', 'bytes'],
          cr.layers.filter((l) => l.shape.length >= 2).map((l) => [l.name, `[${l.shape.join(', ')}]`, l.encoding, `${fmt(l.kept * 100, 1)}%`, fmt(l.bitsPerWeight, 2), fmt(l.bytes)]),
        ),
      );
    }
  }
  const curve = report.history.map((h, i) => `${i + 1}: ${fmt((h.validationAccuracy ?? NaN) * 100, 2)}%`).join(' · ');
  const markdown = `## ResNet-20 on Fashion-MNIST, compressed (\`pnpm bench:compress --models resnet-20 --dataset fashion-mnist\`)

${machine()} (at the start: ${loadAtStart}). **Reduced run, said plainly:** ResNet-20 trains at ${fmt(report.samplesPerSecond, 1)} samples per second on this machine's WASM path (one core, shared with other jobs), so a full-size run (55,000 images, tens of epochs: about ${fmt((55_000 * 30) / report.samplesPerSecond / 3600, 0)} hours for 30 epochs at that rate) does not fit. The model is the full-size ResNet-20 (3 stages of 3 basic blocks, 16/32/64 filters), trained with \`tamp ${trainArgs.join(' ').replace(data, 'SUBSET')}\` on the first ${fmt(o.trainSamples)} images of Fashion-MNIST's training file (${fmt(o.trainSamples - validation)} for training, ${fmt(validation)} held out for validation), ${o.epochs} epoch(s), ${report.steps} steps of 64 at ${fmt(report.samplesPerSecond, 1)} samples/s (${fmt(report.trainSeconds / 60, 1)} min of training${Number.isNaN(trained.seconds) ? `; the model of an earlier run of this command, reused with \`--trained\`` : `, ${fmt(trained.seconds / 60, 1)} min with evaluation`}). Every accuracy is top-1 on the **first ${fmt(o.testSamples)} of the 10,000 test images**. Input: each 28x28 image padded with a 2-pixel black border to 32x32 and repeated over the 3 channels. Pruning and sharing fine-tune on ${fmt(o.finetuneEpochSize)} samples per epoch (\`--finetune-epoch-size\`): ${o.finetuneEpochs} epoch(s) while pruning, ${Math.ceil(o.finetuneEpochs / 2)} while sharing. Ratio: fp32 weight bytes (batch norm folded) over the whole \`.tamp\` file. The deeper compression prunes while fine-tuning with batch norm in place, then folds it and shares values on the folded kernels (\`tamp compress\`'s order since it stopped folding first: the earlier run, which fine-tuned the pruned residual network without its batch norms, lost 16.70 points).${recalibrated}

Test accuracy after training: **${fmt(report.testAccuracy * 100, 2)}%** (validation by epoch: ${curve}). A fully trained ResNet-20 reaches about 93 to 94% on Fashion-MNIST; this model is far from converged, so its accuracy before compression is not comparable with published numbers, only the change each compression makes to it.

${markdownTable(['compression', 'command', 'size', 'ratio', 'accuracy', 'change (points)', 'time', 'goal'], rows)}

Against Deep Compression (Han, Mao, Dally, ICLR 2016, Table 1): on CNNs it reports 39x for LeNet-5, 35x for AlexNet and 49x for VGG-16 with no loss of accuracy, from pruning (92%, 89%, 92.5% of weights removed), 32 to 256 shared values and Huffman coding, with full retraining on ImageNet or MNIST. Those networks keep most of their weights in large fully-connected layers, where most of the pruning happens; ResNet-20 keeps almost all of its 272k weights in 3x3 convolutions. This run prunes 70% (global magnitude threshold), shares 32 values per layer and fine-tunes briefly on a subset; its ratio and accuracy change are in the table, measured, and are below Deep Compression's ratios. It is not a like-for-like comparison: neither the model nor the training budget matches the paper's.${
    deepDrop !== undefined && deepDrop > 1
      ? ` **Here the deeper compression lost ${fmt(deepDrop, 2)} points, so this recipe does not produce a model to deploy.** Its fine-tuning saw ${fmt(o.finetuneEpochs * o.finetuneEpochSize)} samples while pruning and ${fmt(Math.ceil(o.finetuneEpochs / 2) * o.finetuneEpochSize)} while sharing, where Deep Compression retrains for about as long as the original training. More fine-tuning (\`--finetune-epochs\`, \`--finetune-epoch-size\`) is the first thing to try; it did not fit this run.`
      : ''
  }

${layers.length > 0 ? `Where the bytes go (pruned + shared + int8; kernels only, biases are int8 per tensor):\n\n${layers.join('\n\n')}` : ''}
`;
  process.stdout.write(`${markdown}\n`);
  if (o.write) writeSection(`bench:compress:resnet-20${o.preciseBn ? ':precise-bn' : ''}`, markdown);
}
