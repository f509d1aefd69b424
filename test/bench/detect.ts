/**
 * pnpm bench:detect: train the shapes detector at full size with the real
 * `tamp train`, measure mAP@0.5 on the 200 test scenes and on 200 freshly
 * drawn scenes of another seed, compress it to int8 with `tamp compress`,
 * and record everything in BENCHMARKS.md with the commands.
 *
 *   pnpm bench:detect                   (about 25 minutes here)
 *   pnpm bench:detect --save DIR        also keep the trained model.json in DIR
 *   pnpm bench:detect --no-write        print, leave BENCHMARKS.md alone
 *   pnpm bench:detect --model shapes-mobilenet-detector
 *                                       the MobileNet-backbone detector, same recipe, its
 *                                       own section; its goal is the current detector's mAP
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { SHAPE_CLASSES, evaluateDetector, shapesDataset } from '@tamp/core';
import { loadLayersModelFile } from '@tamp/core/node';
import type { CompressReport } from '@tamp/compress/node';
import { fmt, machine, markdownTable, writeSection } from './report.js';
import { tamp } from './tamp-sync.js';

const write = !process.argv.includes('--no-write');
const saveAt = process.argv.indexOf('--save');
const save = saveAt === -1 ? undefined : resolve(process.argv[saveAt + 1] as string);
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-detect-'));
const FRESH_SEED = 2026;

const modelAt = process.argv.indexOf('--model');
const MODEL = modelAt === -1 ? 'shapes-detector' : (process.argv[modelAt + 1] as string);
if (!['shapes-detector', 'shapes-mobilenet-detector'].includes(MODEL)) throw new Error(`--model ${MODEL}: bench:detect trains shapes-detector or shapes-mobilenet-detector`);
/** The current detector's test mAP@0.5 (this file's section, 2026-11-22): what the MobileNet one must reach for the objects demo to switch. */
const CURRENT_DETECTOR_MAP = 0.915;

export const DETECTOR_TRAIN_ARGS = ['--model', MODEL, '--dataset', 'shapes', '--epochs', '20', '--epoch-size', '5000', '--batch-size', '32', '--lr', '0.003', '--backend', 'wasm', '--seed', '1'];

try {
  const out = join(work, 'detector');
  const trained = tamp(['train', ...DETECTOR_TRAIN_ARGS, '--out', out, '--json']);
  const report = JSON.parse(trained.stdout) as { mAP: number; perClassAP: number[]; samplesPerSecond: number; steps: number; history: Array<{ validationMAP: number }> };
  const modelJson = join(out, 'model', 'model.json');
  await tf.setBackend('wasm');
  const model = await loadLayersModelFile(modelJson);
  const fresh = await evaluateDetector(model, shapesDataset(FRESH_SEED).test);
  model.dispose();
  const compressed = tamp(['compress', modelJson, '--int8', '--out', join(work, 'int8'), '--json']);
  const c = JSON.parse(compressed.stdout) as CompressReport;
  if (save !== undefined) cpSync(join(out, 'model'), save, { recursive: true });

  const ap = (values: ReadonlyArray<number | undefined>) => values.map((v, i) => `${SHAPE_CLASSES[i]} ${v === undefined ? '–' : fmt(v, 3)}`).join(', ');
  const curve = report.history.map((h, i) => `${i + 1}: ${fmt(h.validationMAP, 3)}`).join(' · ');
  const mobilenet = MODEL === 'shapes-mobilenet-detector';
  const goalMet = report.mAP >= 0.8 && fresh.mAP >= 0.8 && (!mobilenet || report.mAP >= CURRENT_DETECTOR_MAP);
  const int8Met = Math.abs((c.mAPBefore as number) - (c.mAPAfter as number)) <= 0.02;
  const title = mobilenet ? 'Shapes detector on a MobileNetV2 backbone (`pnpm bench:detect --model shapes-mobilenet-detector`)' : 'Shapes detector (`pnpm bench:detect`)';
  const markdown = `## ${title}

${machine()}. \`tamp train ${DETECTOR_TRAIN_ARGS.join(' ')} --out DIR\` (one process, Tamp's WASM training kernels), then \`tamp compress DIR/model/model.json --int8\`. mAP@0.5 is VOC-style (all-point interpolated AP per class, averaged over the three classes).

${markdownTable(
  ['measure', 'value', 'goal'],
  [
    mobilenet
      ? ['mAP@0.5, the 200 test scenes (`shapes` test split)', `**${fmt(report.mAP, 3)}** (${ap(report.perClassAP)})`, `≥ ${CURRENT_DETECTOR_MAP}, the current detector's (bench:detect): ${report.mAP >= CURRENT_DETECTOR_MAP ? 'met' : 'missed'}`]
      : ['mAP@0.5, the 200 test scenes (`shapes` test split)', `**${fmt(report.mAP, 3)}** (${ap(report.perClassAP)})`, `≥ 0.8: ${report.mAP >= 0.8 ? 'met' : 'missed'}`],
    [`mAP@0.5, 200 freshly drawn scenes (\`shapes:${FRESH_SEED}\`, never seen in training)`, `**${fmt(fresh.mAP, 3)}** (${ap(fresh.perClass)}), ${fresh.objects} objects`, `≥ 0.8: ${fresh.mAP >= 0.8 ? 'met' : 'missed'}`],
    ['training', `${report.steps} steps, ${fmt(report.samplesPerSecond, 0)} scenes/s, ${fmt(trained.seconds / 60, 1)} min`, ''],
    ['validation mAP by epoch', curve, ''],
    ['int8 (.tamp)', `mAP ${fmt(c.mAPBefore as number, 3)} → ${fmt(c.mAPAfter as number, 3)}, ${fmt(c.ratio, 2)}x smaller (${fmt(c.compressedBytes / 1024, 1)} KiB)`, `within 0.02: ${int8Met ? 'met' : 'missed'}`],
  ],
)}

${goalMet && int8Met ? 'Every goal was met in this run.' : 'Not every goal was met in this run (see the table).'}
`;
  process.stdout.write(`${markdown}\n`);
  if (write) writeSection(mobilenet ? 'bench:detect:shapes-mobilenet-detector' : 'bench:detect', markdown);
} finally {
  rmSync(work, { recursive: true, force: true });
}
