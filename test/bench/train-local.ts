/**
 * pnpm bench:train-local: training speed in one process, same machine, one
 * run. Stock tfjs `model.fit` on cpu and on wasm, against Tamp's WASM path,
 * for LeNet-300-100, LeNet-5, MobileNet-v2-0.35 (32x32) and ResNet-20 at
 * batch 64 (MNIST; the 32x32x3 models see it padded and repeated over
 * channels, data/fit-input.ts); plus where a step's time goes. Stock wasm
 * cannot train the last two at all (no depthwise or filter gradient kernels).
 *
 * Options: --quick (fewer steps, for a smoke run), --no-write (print only),
 * --models a,b (a subset, written to its own section bench:train-local:a+b;
 * the goals need the LeNets), --steps N (WASM steps timed for the conv nets).
 */
import * as tf from '@tensorflow/tfjs-core';
import { createModel, createTfOptimizer, fitSamples, iterateBatches, optimizerSettings, trainStep, type Batch, type ImageShape } from '@tamp/core';
import { loadMnist, setTampWasmKernels, useBackend } from '@tamp/core/node';
import { fmt, load, machine, markdownTable, writeSection } from './report.js';

const quick = process.argv.includes('--quick');
const write = !process.argv.includes('--no-write');
const BATCH = 64;
// Kernels stock tfjs-backend-wasm lacks (the conv filter and depthwise gradients) or gets wrong (MaxPoolGrad).
const REQUIRED = ['Conv2DBackpropFilter', 'MaxPoolGrad', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter'];
const ALL_MODELS = ['lenet-300-100', 'lenet-5', 'mobilenet-v2-0.35-32', 'resnet-20'];
const modelsArg = process.argv.indexOf('--models');
const MODELS = modelsArg > 0 ? (process.argv[modelsArg + 1] ?? '').split(',') : ALL_MODELS;
const stepsArg = process.argv.indexOf('--steps');
/** --steps N: WASM steps timed per path for the conv nets (a loaded machine cannot afford the default 10). */
const CONV_STEPS = stepsArg > 0 ? Number(process.argv[stepsArg + 1]) : quick ? 2 : 10;
/** Steps timed per path: the conv nets' stock cpu steps take seconds each. */
const STEPS: Record<string, { cpu: number; wasm: number }> = {
  'lenet-300-100': { cpu: quick ? 4 : 20, wasm: quick ? 8 : 40 },
  'lenet-5': { cpu: quick ? 1 : 2, wasm: quick ? 8 : 40 },
  'mobilenet-v2-0.35-32': { cpu: quick ? 1 : 2, wasm: CONV_STEPS },
  'resnet-20': { cpu: quick ? 1 : 2, wasm: CONV_STEPS },
};
/** Another --models list than the default writes its own section, so it leaves the full run's section alone. */
const subset = MODELS.join(',') !== ALL_MODELS.join(',');
const loadAtStart = load();

const mnist = loadMnist();
const batches: Batch[] = [...iterateBatches(mnist.train, { batchSize: BATCH, seed: 1, limit: BATCH * 60 })];

interface Measure {
  samplesPerSecond?: number;
  error?: string;
  steps: number;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Stock tfjs: compile + model.fit over `steps` batches (after one warm-up fit). */
async function stockFit(modelName: string, steps: number): Promise<Measure> {
  const model = createModel(modelName, { seed: 1 });
  model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy' });
  const input = model.inputs[0]?.shape.slice(1) as number[];
  const shape = [BATCH * steps, ...input];
  const raw = concatXs(batches.slice(0, steps));
  const xs = tf.tensor(input.length === 3 ? fitSamples(raw, BATCH * steps, input as unknown as ImageShape) : raw, shape);
  const ys = tf.oneHot(tf.tensor1d(concatLabels(batches.slice(0, steps)), 'int32'), 10);
  try {
    const wx = tf.slice(xs, 0, BATCH);
    const wy = tf.slice(ys, 0, BATCH);
    await model.fit(wx, wy, { batchSize: BATCH, epochs: 1, verbose: 0 });
    tf.dispose([wx, wy]);
    const t0 = performance.now();
    await model.fit(xs, ys, { batchSize: BATCH, epochs: 1, shuffle: false, verbose: 0 });
    return { samplesPerSecond: (BATCH * steps) / ((performance.now() - t0) / 1000), steps };
  } catch (error) {
    return { error: (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '', steps };
  } finally {
    tf.dispose([xs, ys]);
    model.dispose();
  }
}

/** Tamp's training step (the one workers and `tamp train` run). */
async function tampSteps(modelName: string, steps: number, warmup = 3): Promise<Measure> {
  const model = createModel(modelName, { seed: 1 });
  const optimizer = createTfOptimizer(optimizerSettings('adam', 0.001));
  for (const b of batches.slice(0, warmup)) await trainStep(model, optimizer, b);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await trainStep(model, optimizer, batches[(warmup + i) % batches.length] as Batch);
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  optimizer.dispose();
  return { samplesPerSecond: (BATCH * steps) / seconds, steps };
}

/** Kernel time per step, by kernel, on Tamp's path. */
async function profile(modelName: string): Promise<Array<[string, number]>> {
  const model = createModel(modelName, { seed: 1 });
  const optimizer = createTfOptimizer(optimizerSettings('adam', 0.001));
  for (const b of batches.slice(0, 3)) await trainStep(model, optimizer, b);
  const rounds = 5;
  const total = new Map<string, number>();
  for (let r = 0; r < rounds; r++) {
    const info = await tf.profile(async () => {
      await trainStep(model, optimizer, batches[3 + r] as Batch);
    });
    for (const k of info.kernels) {
      if (k.name.endsWith('__op')) continue; // op wrappers repeat their kernels' time
      total.set(k.name, (total.get(k.name) ?? 0) + (k.kernelTimeMs as number) / rounds);
    }
  }
  model.dispose();
  optimizer.dispose();
  return [...total].sort((a, b) => b[1] - a[1]);
}

function concatXs(bs: Batch[]): Float32Array {
  const out = new Float32Array(bs.reduce((n, b) => n + b.xs.length, 0));
  let at = 0;
  for (const b of bs) {
    out.set(b.xs, at);
    at += b.xs.length;
  }
  return out;
}

function concatLabels(bs: Batch[]): Int32Array {
  return Int32Array.from(bs.flatMap((b) => Array.from(b.labels)));
}

interface Row {
  what: string;
  m: Measure;
}

const sections: string[] = [];
const summary: Record<string, Record<string, number | string>> = {};
for (const modelName of MODELS) {
  const { cpu: cpuSteps, wasm: fast } = STEPS[modelName] ?? { cpu: 1, wasm: quick ? 2 : 10 };
  const rows: Row[] = [];
  log(`${modelName}: stock model.fit on cpu`);
  await useBackend('cpu');
  rows.push({ what: 'stock tfjs `model.fit`, cpu backend', m: await stockFit(modelName, cpuSteps) });
  await useBackend('wasm');
  setTampWasmKernels(false);
  log(`${modelName}: stock model.fit on wasm`);
  rows.push({ what: 'stock tfjs `model.fit`, wasm backend', m: await stockFit(modelName, fast) });
  setTampWasmKernels(true);
  log(`${modelName}: model.fit on wasm with Tamp's kernels`);
  rows.push({ what: '`model.fit`, wasm + all Tamp kernels', m: await stockFit(modelName, fast) });
  setTampWasmKernels(true, REQUIRED);
  log(`${modelName}: Tamp step, missing/fixed kernels only`);
  rows.push({ what: 'Tamp step, wasm + missing/fixed kernels only (Conv2DBackpropFilter, MaxPoolGrad, depthwise gradients)', m: await tampSteps(modelName, fast) });
  setTampWasmKernels(true);
  log(`${modelName}: Tamp step, all kernels`);
  const tamp = await tampSteps(modelName, fast * 2);
  rows.push({ what: "**Tamp's WASM path**: Tamp step, wasm + all Tamp kernels (backward through XNNPACK)", m: tamp });
  const cpu = rows[0]?.m.samplesPerSecond ?? NaN;
  const stockWasm = rows[1]?.m.samplesPerSecond;
  const table = markdownTable(
    ['path', 'samples/s', 'vs stock cpu', 'vs stock wasm', 'steps timed'],
    rows.map(({ what, m }) => [
      what,
      m.samplesPerSecond !== undefined ? fmt(m.samplesPerSecond, m.samplesPerSecond < 10 ? 2 : 0) : `fails: ${m.error ?? ''}`,
      m.samplesPerSecond !== undefined ? `${fmt(m.samplesPerSecond / cpu, 1)}x` : '-',
      m.samplesPerSecond !== undefined && stockWasm !== undefined ? `${fmt(m.samplesPerSecond / stockWasm, 2)}x` : '-',
      m.steps,
    ]),
  );
  log(`${modelName}: profiling`);
  const prof = await profile(modelName);
  const stepMs = prof.reduce((n, [, ms]) => n + ms, 0);
  const profTable = markdownTable(
    ['kernel', 'ms per step', 'share'],
    prof.slice(0, 8).map(([name, ms]) => [name, fmt(ms, 1), `${fmt((100 * ms) / stepMs, 0)}%`]),
  );
  sections.push(`### ${modelName}, batch ${BATCH}\n\n${table}\n\nWhere a step's kernel time goes on Tamp's path (tf.profile, mean of 5 steps; ${fmt(stepMs, 1)} ms of kernels per step, the rest is JavaScript between kernels):\n\n${profTable}`);
  summary[modelName] = {
    stockCpu: cpu,
    stockWasm: stockWasm ?? 'fails',
    tamp: tamp.samplesPerSecond ?? NaN,
    kernelMsPerStep: stepMs,
  };
}

const l5 = summary['lenet-5'] as { stockCpu: number; tamp: number } | undefined;
const l3 = summary['lenet-300-100'] as { stockWasm: number; tamp: number } | undefined;
const goals: string[] = [];
if (l5 !== undefined) goals.push(`- LeNet-5 on Tamp's WASM path vs stock cpu: **${fmt(l5.tamp / l5.stockCpu, 0)}x** (goal: at least 150x).`);
if (l3 !== undefined) goals.push(`- LeNet-300-100 on Tamp's WASM path vs stock wasm \`model.fit\`: **${fmt(l3.tamp / l3.stockWasm, 2)}x** (goal: at least 1.3x).`);
if (l3 !== undefined && l5 !== undefined) goals.push(`- Moonshot (one process, one core): LeNet-300-100 ${fmt(l3.tamp)} samples/s (target 5,000), LeNet-5 ${fmt(l5.tamp)} samples/s (target 500).`);
for (const name of ['mobilenet-v2-0.35-32', 'resnet-20']) {
  const m = summary[name] as { stockCpu: number; stockWasm: number | string; tamp: number } | undefined;
  if (m === undefined) continue;
  goals.push(`- ${name} on Tamp's WASM path: ${fmt(m.tamp, 1)} samples/s, **${fmt(m.tamp / m.stockCpu, 0)}x** stock cpu \`model.fit\` (stock wasm: ${typeof m.stockWasm === 'number' ? `${fmt(m.tamp / m.stockWasm, 2)}x` : 'cannot train it, a gradient kernel is missing'}).`);
}
const command = `pnpm bench:train-local${subset ? ` --models ${MODELS.join(',')}` : ''}${stepsArg > 0 ? ` --steps ${CONV_STEPS}` : ''}`;
const markdown = [
  subset ? `## Training in one process: \`${command}\`` : '## Training in one process: `pnpm bench:train-local`',
  '',
  `\`${command}\`. Machine: ${machine()} (at the start: ${loadAtStart}). The WASM backend runs single-threaded in Node, so every row uses one core; the paths run one after another in one process, so a busy machine slows all of them, and the ratios are what to read.${quick ? ' **Quick run (--quick): few steps, noisy.**' : ''}`,
  '',
  ...goals,
  '',
  sections.join('\n\n'),
  '',
  '### What stands in the way of more',
  '',
  '- One core per process: tfjs-backend-wasm runs single-threaded in Node (its threaded build cannot start workers there). The second core is used by running a second worker process (see the cluster benchmark).',
  "- LeNet-5: the convolution gradients are most of the step. The input gradient is a full convolution of a zero-padded dy (stride 1), so XNNPACK spends time multiplying padding; the filter gradient's XNNPACK operator is rebuilt every step because its 'filter' is a fresh dy (packing it is part of the cost). A direct deconvolution (XNNPACK has one, tfjs-backend-wasm does not expose it) would remove both.",
  "- MobileNetV2 and ResNet-20: batch norm's gradient is a chain of tfjs-core ops (about ten full-size element-wise kernels and four reductions over N·H·W per layer; stock wasm transposes the activation before each such reduction), and ReLU6's gradient five more (relu's, then clipByValue's comparisons and select). A fused batch-norm + activation gradient would remove most of them, but tfjs registers a gradient per op for every backend, not per backend. Strided convolutions' input gradients multiply the zeros of the dilated dy (4x the work at stride 2).",
  '- LeNet-300-100: the three matrix products per layer are about 60% of kernel time; the rest is the Adam update (about ten small element-wise kernels per variable per step) and tfjs bookkeeping between kernels. A fused optimizer kernel would take most of that away.',
].join('\n');
process.stdout.write(`${markdown}\n`);
if (write && !quick) writeSection(subset ? `bench:train-local:${MODELS.join('+')}` : 'bench:train-local', markdown);
