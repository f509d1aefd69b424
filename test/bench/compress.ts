/**
 * pnpm bench:compress: the whole compression pipeline against Deep
 * Compression's Table 1. For each model and dataset: train with a fixed
 * seed (`tamp train`), then `tamp compress --prune --clusters --int8
 * --finetune-epochs`, both as real processes. The ratio is fp32 weight bytes
 * over the whole .tamp file; accuracies are on the test split, before and
 * after, measured by tamp compress on the .tamp bytes themselves.
 *
 *   pnpm bench:compress              all runs (about 40 minutes here)
 *   pnpm bench:compress --only mnist only the MNIST runs (about 6 minutes)
 *   pnpm bench:compress --no-write   print, leave BENCHMARKS.md alone
 *   pnpm bench:compress --models resnet-20 --dataset fashion-mnist [--train-samples N]
 *     [--test-samples N] [--epochs N] [--finetune-epochs N] [--finetune-epoch-size N]
 *     [--trained DIR] [--precise-bn] [--compressions int8,deep]
 *                                    ResNet-20, reduced to fit a small machine (compress-resnet.ts)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CompressReport } from '@tamp/compress/node';
import { runResnetFashion } from './compress-resnet.js';
import { fmt, machine, markdownTable, writeSection } from './report.js';
import { tamp } from './tamp-sync.js';

const write = !process.argv.includes('--no-write');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt === -1 ? undefined : process.argv[onlyAt + 1];
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-compress-'));
const arg = (name: string, fallback: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : (process.argv[at + 1] ?? fallback);
};

// ResNet-20 on Fashion-MNIST is its own run and section (compress-resnet.ts): a reduced run on this machine, with its sizes as flags.
if (arg('models', '') === 'resnet-20') {
  if (arg('dataset', 'fashion-mnist') !== 'fashion-mnist') throw new Error('--models resnet-20 runs on --dataset fashion-mnist only');
  try {
    const trained = arg('trained', '');
    await runResnetFashion({
      work,
      write,
      trainSamples: Number(arg('train-samples', '10000')),
      testSamples: Number(arg('test-samples', '2000')),
      epochs: Number(arg('epochs', '1')),
      finetuneEpochs: Number(arg('finetune-epochs', '2')),
      finetuneEpochSize: Number(arg('finetune-epoch-size', '640')),
      ...(trained !== '' ? { trained } : {}),
      preciseBn: process.argv.includes('--precise-bn'),
      compressions: arg('compressions', 'int8,deep').split(',') as Array<'int8' | 'deep'>,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  process.exit(0);
}

interface Run {
  readonly model: 'lenet-300-100' | 'lenet-5';
  readonly dataset: 'mnist' | 'fashion-mnist';
  readonly train: string[];
  readonly compress: string[];
  /** Deep Compression, Table 1: ratio and top-1 error before and after. */
  readonly paper?: { ratio: number; before: number; after: number };
  readonly goal?: { ratio: number; drop: number };
}

const runs: Run[] = [
  {
    model: 'lenet-300-100',
    dataset: 'mnist',
    train: ['--epochs', '10'],
    compress: ['--prune', '0.92', '--clusters', '32', '--int8', '--finetune-epochs', '20'],
    paper: { ratio: 40, before: 1.64, after: 1.58 },
    goal: { ratio: 40, drop: 0.3 },
  },
  {
    model: 'lenet-5',
    dataset: 'mnist',
    train: ['--epochs', '8'],
    compress: ['--prune', '0.92', '--clusters', '32', '--int8', '--finetune-epochs', '8'],
    paper: { ratio: 39, before: 0.8, after: 0.74 },
    goal: { ratio: 39, drop: 0.3 },
  },
  {
    model: 'lenet-300-100',
    dataset: 'fashion-mnist',
    train: ['--epochs', '10'],
    compress: ['--prune', '0.92', '--clusters', '32', '--int8', '--finetune-epochs', '6'],
  },
  {
    model: 'lenet-5',
    dataset: 'fashion-mnist',
    train: ['--epochs', '3'],
    compress: ['--prune', '0.92', '--clusters', '32', '--int8', '--finetune-epochs', '2'],
  },
];

const rows: Array<Array<string | number>> = [];
const layerTables: string[] = [];
const missed: string[] = [];
const selected = runs.filter((r) => only === undefined || r.dataset === only || r.model === only);
if (selected.length === 0) throw new Error(`--only ${only}: no run matches (mnist, fashion-mnist, lenet-300-100, lenet-5)`);
try {
  for (const run of selected) {
    const dir = join(work, `${run.model}-${run.dataset}`);
    const trainArgs = ['train', '--model', run.model, '--dataset', run.dataset, ...run.train, '--backend', 'wasm', '--seed', '1'];
    const trained = tamp([...trainArgs, '--out', join(dir, 'trained'), '--json']);
    const compressArgs = ['compress', 'MODEL', ...run.compress, '--seed', '1', '--backend', 'wasm'];
    const c = tamp([...compressArgs.map((a) => (a === 'MODEL' ? join(dir, 'trained', 'model', 'model.json') : a)), '--out', join(dir, 'compressed'), '--json']);
    const report = JSON.parse(c.stdout) as CompressReport;
    const before = (report.accuracyBefore as number) * 100;
    const after = (report.accuracyAfter as number) * 100;
    const drop = before - after;
    const met = run.goal === undefined ? '' : report.ratio >= run.goal.ratio && drop <= run.goal.drop ? 'met' : 'missed';
    if (met === 'missed') missed.push(`${run.model} on ${run.dataset}`);
    rows.push([
      `${run.model}, ${run.dataset}`,
      `Tamp: \`tamp train ${trainArgs.slice(1).join(' ')}\`, then \`tamp compress model.json ${run.compress.join(' ')} --seed 1\``,
      `${fmt(report.originalBytes / 1024, 0)} KiB → ${fmt(report.compressedBytes / 1024, 1)} KiB`,
      `**${fmt(report.ratio, 1)}x**`,
      `${fmt(before, 2)}% → ${fmt(after, 2)}%`,
      `${drop >= 0 ? '−' : '+'}${fmt(Math.abs(drop), 2)}`,
      `${fmt(report.tfjs.ratio, 2)}x, ${fmt((report.tfjs.accuracy as number) * 100, 2)}%`,
      `${fmt(trained.seconds, 0)} s + ${fmt(c.seconds, 0)} s`,
      met === '' ? 'no goal set' : `${met} (≥ ${run.goal?.ratio}x, drop ≤ ${run.goal?.drop})`,
    ]);
    if (run.paper !== undefined) {
      const p = run.paper;
      rows.push([
        `${run.model}, MNIST`,
        'Deep Compression, Table 1 (prune + share + Huffman)',
        run.model === 'lenet-5' ? '1720 KB → 44 KB' : '1070 KB → 27 KB',
        `${p.ratio}x`,
        `${fmt(100 - p.before, 2)}% → ${fmt(100 - p.after, 2)}%`,
        `+${fmt(p.before - p.after, 2)}`,
        '',
        '',
        'the anchor',
      ]);
    }
    layerTables.push(
      `**${run.model} on ${run.dataset}** (${report.techniques.join(', ')}; ${fmt(report.kept * 100, 1)}% of weights kept)\n\n` +
        markdownTable(
          ['tensor', 'shape', 'encoding', 'kept', 'bits/weight', 'position bits', 'value bits', 'bytes'],
          report.layers.map((l) => [
            l.name,
            `[${l.shape.join(', ')}]`,
            l.encoding,
            `${fmt(l.kept * 100, 1)}%`,
            fmt(l.bitsPerWeight, 2),
            l.indexBits > 0 ? fmt(l.indexBits, 2) : '–',
            fmt(l.valueBits, 2),
            fmt(l.bytes),
          ]),
        ),
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const command = `pnpm bench:compress${only !== undefined ? ` --only ${only}` : ''}`;
const markdown = `## Compression against Deep Compression (\`${command}\`)

${machine()}. Ratio: fp32 weight bytes over the whole \`.tamp\` file (topology, metadata and checksums included). Accuracy: top-1 on the test split (MNIST: the 2,000 held-out digits of the npm \`mnist\` package, since the full 10,000-image test set is not available here; Fashion-MNIST: its 10,000 test images), before compression and of the \`.tamp\` file. "tfjs uint8" is stock tfjs's own weight quantization (\`quantizationBytes: 1\`), the export \`tamp compress\` writes beside the \`.tamp\` file. Time: training, then compression with its fine-tuning, on the WASM backend. Seeds are fixed (\`--seed 1\`).

${markdownTable(['model, data', 'how', 'size', 'ratio', 'accuracy', 'change (points)', 'tfjs uint8', 'time', 'goal'], rows)}

${missed.length === 0 ? 'Every goal was met in this run.' : `Goals missed in this run: ${missed.join('; ')}.`} Deep Compression's numbers are from the paper (Han, Mao, Dally, ICLR 2016), trained on the full 60,000 MNIST images; Tamp's MNIST models train on 7,000, so their accuracy before compression is lower, and the comparison that matters is the ratio and the change. The Fashion-MNIST runs use fewer fine-tuning epochs (one epoch is 55,000 images) and carry no goal.

Where the bytes go:

${layerTables.join('\n\n')}
`;
process.stdout.write(`${markdown}\n`);
if (write) writeSection('bench:compress', markdown);
