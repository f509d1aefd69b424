/**
 * pnpm bench:infer: Tamp's int8 inference against stock tfjs fp32, in one
 * run on one device. For LeNet-5 and the shapes detector at batch 1 and 64,
 * and MobileNet-v2 0.35 (96x96) and ResNet-20 at batch 1 and 32 (batch
 * norm folded into the convolutions before int8, as `tamp compress` does):
 *  - WebGPU: Tamp (`loadModel(model.tamp, { device: 'webgpu' })`, int8
 *    weights packed on the GPU) against `tf.loadLayersModel` on
 *    tfjs-backend-webgpu with the fp32 model.json, on the same adapter;
 *  - WASM: Tamp's wasm device against `tf.loadLayersModel` on
 *    tfjs-backend-wasm.
 * Latency percentiles over N timed runs after warm-up, compute dispatches
 * per inference (counted by wrapping the compute pass encoder), and weight
 * bytes on the GPU. The models are the zoo's with seeded weights: latency
 * does not depend on training.
 *
 *   pnpm bench:infer [--iterations N] [--budget S] [--models lenet-5,shapes-detector,mobilenet-v2-0.35-96,resnet-20] [--no-write]
 *
 * --budget S (default 60): an engine's timed runs stop after S seconds once
 * 3 have run, and a first warm-up run over S/10 seconds is the only one.
 * On SwiftShader one ResNet-20 batch of 32 takes a minute or two, so the
 * default list would otherwise take hours; the table says how many runs
 * each row had.
 *
 * Another --models list than the default writes its own section (bench:infer:a+b);
 * --batches 1,64 times only those batch sizes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { createModel, percentile } from '@tamp/core';
import { installNavigatorGpu, loadLayersModelFile, readModelArtifacts, requestDawnAdapter, saveLayersModel } from '@tamp/core/node';
import { artifactWeights, artifactsToTamp, encodeTampModel, foldBatchNorm } from '@tamp/compress';
import { type InferenceModel, loadModel } from '@tamp/webgpu/node';
import { fmt, load, machine, markdownTable, writeSection } from './report.js';

const write = !process.argv.includes('--no-write');
const itAt = process.argv.indexOf('--iterations');
const iterations = itAt === -1 ? 30 : Number(process.argv[itAt + 1]);
const budgetAt = process.argv.indexOf('--budget');
const budgetMs = (budgetAt === -1 ? 60 : Number(process.argv[budgetAt + 1])) * 1000;
if (!(iterations >= 3 && budgetMs > 0)) throw new Error('--iterations N (3 or more) and --budget S (seconds, over 0)');
const modelsAt = process.argv.indexOf('--models');
const DEFAULT_MODELS = ['lenet-5', 'shapes-detector', 'mobilenet-v2-0.35-96', 'resnet-20'];
const models = modelsAt === -1 ? DEFAULT_MODELS : (process.argv[modelsAt + 1] as string).split(',');
const batchesAt = process.argv.indexOf('--batches');
/** --batches 1,64: the batch sizes to time (default: 1 and 32 for MobileNet-v2 and ResNet-20, 1 and 64 for the others). */
const batchesFor = (name: string): number[] => (batchesAt !== -1 ? (process.argv[batchesAt + 1] as string).split(',').map(Number) : deployed(name) ? [1, 32] : [1, 64]);
/** A run of other models writes its own section, so it does not erase the default list's rows measured in another run. */
const subset = models.join(',') !== DEFAULT_MODELS.join(',');
const loadAtStart = load();
/** Issue 19's models: batches 1 and 32, and the stricter latency goal (≤ 1.0x of stock, WebGPU and WASM). */
const deployed = (name: string) => name.startsWith('mobilenet-v2') || name.startsWith('resnet');
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-infer-'));

let dispatches = 0;
async function countDispatches(device: GPUDevice): Promise<void> {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  const proto = Object.getPrototypeOf(pass) as { dispatchWorkgroups: (...a: number[]) => void };
  pass.end();
  encoder.finish();
  const original = proto.dispatchWorkgroups;
  proto.dispatchWorkgroups = function (this: GPUComputePassEncoder, ...args: number[]) {
    dispatches++;
    original.apply(this, args);
  };
}

interface Timing {
  p50: number;
  p90: number;
  dispatches: number;
  /** Timed runs (after warm-up). */
  runs: number;
}

/**
 * Up to `iterations` timed runs after warm-up, stopping once 3 have run and
 * `budgetMs` has passed. Warm-up: at least 3 runs and WARMUP_MS (V8 takes
 * about a thousand calls to optimise tfjs's JavaScript: with 3 warm-up runs
 * the first engine of a fast model paid for it and the next one did not,
 * which once showed Tamp's WASM MobileNet at 1.15x of stock where 300 runs
 * gave 0.50x), or one run when that run alone takes over a tenth of the budget.
 */
const WARMUP_MS = 2_000;
async function time(run: () => Promise<void>): Promise<Timing> {
  const first = performance.now();
  await run();
  if (performance.now() - first <= budgetMs / 10) {
    for (let i = 1; i < 3 || performance.now() - first < Math.min(WARMUP_MS, budgetMs / 10); i++) await run();
  }
  const times: number[] = [];
  dispatches = 0;
  const start = performance.now();
  while (times.length < iterations && (times.length < 3 || performance.now() - start < budgetMs)) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  const runs = times.length;
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p90: percentile(times, 0.9), dispatches: dispatches / runs, runs };
}

/** Stock tfjs fp32 on `backend`: p50/p90 of predict + read-back, and the bytes tfjs then holds on the GPU. */
async function timeStock(backend: 'webgpu' | 'wasm', modelJson: string, x: Float32Array, shape: number[]): Promise<Timing & { gpuBytes: number }> {
  await tf.setBackend(backend);
  const stock = await loadLayersModelFile(modelJson);
  const input = tf.tensor(x, shape);
  const timing = await time(async () => {
    const y = stock.predict(input) as tf.Tensor;
    await y.data();
    y.dispose();
  });
  const gpuBytes = (tf.memory() as { numBytesInGPU?: number }).numBytesInGPU ?? 0;
  input.dispose();
  stock.dispose();
  return { ...timing, gpuBytes };
}

/** What `tamp compress --int8` writes: batch norm folded into the layer before it, then int8 kernels per output channel and int8 biases. */
function int8Tamp(modelJson: string, name: string): Uint8Array {
  const artifacts = readModelArtifacts(modelJson);
  const fold = foldBatchNorm(artifacts.modelTopology, artifactWeights(artifacts));
  const data = new Uint8Array(fold.weights.reduce((n, w) => n + w.data.byteLength, 0));
  let at = 0;
  for (const w of fold.weights) {
    data.set(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength), at);
    at += w.data.byteLength;
  }
  const folded: tf.io.ModelArtifacts = { modelTopology: fold.modelTopology as object, weightSpecs: fold.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' })), weightData: data.buffer };
  return encodeTampModel(artifactsToTamp(folded, { int8: true, int8Biases: true, meta: { producer: 'bench', created: new Date().toISOString(), model: name } }));
}

const found = await requestDawnAdapter({ allowSoftware: true, log: (m) => process.stderr.write(`${m}\n`) });
installNavigatorGpu(found.gpu);
await import('@tensorflow/tfjs-backend-webgpu');
const probe = await found.adapter.requestDevice();
await countDispatches(probe);

const rows: Array<Array<string | number>> = [];
const ratios: string[] = [];
const missed: string[] = [];
const stockDispatches: number[] = [];
const tampDispatches: number[] = [];
const tampP50 = new Map<string, number>();
try {
  for (const name of models) {
    await tf.setBackend('cpu');
    const model = createModel(name, { seed: 1 });
    const dir = join(work, name);
    const modelJson = await saveLayersModel(model, dir, { model: name });
    const tampFile = join(work, `${name}.tamp`);
    writeFileSync(tampFile, int8Tamp(modelJson, name));
    const fp32Bytes = model.countParams() * 4;
    const inputShape = model.inputs[0]?.shape.slice(1) as number[];
    model.dispose();
    const per = inputShape.reduce((a, b) => a * b, 1);
    const latencyGoal = deployed(name) ? 1.0 : 1.2;
    for (const batch of batchesFor(name)) {
      const x = Float32Array.from({ length: batch * per }, (_, i) => ((i * 7919) % 997) / 997);
      // Tamp int8 on WebGPU.
      const ours: InferenceModel = await loadModel(tampFile, { device: 'webgpu' });
      const tampGpu = await time(async () => void (await ours.predict(x)));
      const info = ours.info();
      ours.dispose();
      // Stock tfjs fp32 on tfjs-backend-webgpu, same adapter.
      const stockGpu = await timeStock('webgpu', modelJson, x, [batch, ...inputShape]);
      const stockGpuBytes = stockGpu.gpuBytes;
      // WASM: Tamp's wasm device against stock tfjs wasm.
      const oursWasm = await loadModel(tampFile, { device: 'wasm' });
      const tampWasm = await time(async () => void (await oursWasm.predict(x)));
      oursWasm.dispose();
      const stockWasm = await timeStock('wasm', modelJson, x, [batch, ...inputShape]);
      rows.push(
        [name, batch, 'WebGPU', 'Tamp int8 (.tamp)', tampGpu.runs, fmt(tampGpu.p50, 2), fmt(tampGpu.p90, 2), fmt(tampGpu.dispatches, 0), `${fmt(info.gpuWeightBytes / 1024, 1)} KiB (${fmt(info.gpuWeightBytes / fp32Bytes, 3)}x)`],
        [name, batch, 'WebGPU', 'stock tfjs fp32', stockGpu.runs, fmt(stockGpu.p50, 2), fmt(stockGpu.p90, 2), fmt(stockGpu.dispatches, 0), `${fmt(stockGpuBytes / 1024, 1)} KiB (all tensors on the GPU)`],
        [name, batch, 'WASM', 'Tamp (dequantized at load)', tampWasm.runs, fmt(tampWasm.p50, 2), fmt(tampWasm.p90, 2), '–', '–'],
        [name, batch, 'WASM', 'stock tfjs fp32', stockWasm.runs, fmt(stockWasm.p50, 2), fmt(stockWasm.p90, 2), '–', '–'],
      );
      tampP50.set(`${name}|${batch}|webgpu`, tampGpu.p50);
      tampP50.set(`${name}|${batch}|wasm`, tampWasm.p50);
      stockDispatches.push(stockGpu.dispatches);
      tampDispatches.push(tampGpu.dispatches);
      if (info.gpuWeightBytes / fp32Bytes > 0.3) missed.push(`${name} batch ${batch}: weights ${fmt(info.gpuWeightBytes / fp32Bytes, 3)}x of fp32 (goal ≤ 0.3x)`);
      if (tampGpu.p50 / stockGpu.p50 > latencyGoal) missed.push(`${name} batch ${batch}: WebGPU latency ${fmt(tampGpu.p50 / stockGpu.p50, 2)}x of stock (goal ≤ ${latencyGoal}x)`);
      if (deployed(name) && tampWasm.p50 / stockWasm.p50 > 1.0) missed.push(`${name} batch ${batch}: WASM latency ${fmt(tampWasm.p50 / stockWasm.p50, 2)}x of stock (goal ≤ 1.0x)`);
      ratios.push(`${name} batch ${batch}: WebGPU latency Tamp/stock **${fmt(tampGpu.p50 / stockGpu.p50, 2)}x**, weights ${fmt(info.gpuWeightBytes / fp32Bytes, 3)}x of fp32; WASM ${fmt(tampWasm.p50 / stockWasm.p50, 2)}x`);
      process.stderr.write(`${ratios.at(-1)}\n`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** Issue 19: the MobileNet detector replaces the plain one only at no worse latency; both in one run compare them directly. */
const detectors = [...tampP50.keys()]
  .filter((k) => k.startsWith('shapes-mobilenet-detector|'))
  .map((k) => {
    const [, batch, device] = k.split('|');
    const plain = tampP50.get(`shapes-detector|${batch}|${device}`);
    return plain === undefined ? '' : `- Tamp, ${device}, batch ${batch}: shapes-mobilenet-detector ${fmt(tampP50.get(k) as number, 2)} ms against shapes-detector ${fmt(plain, 2)} ms (**${fmt((tampP50.get(k) as number) / plain, 2)}x**; goal for switching the objects demo: ≤ 1.0x)`;
  })
  .filter((line) => line !== '');
const command = `pnpm bench:infer --iterations ${iterations}${budgetAt !== -1 ? ` --budget ${budgetMs / 1000}` : ''}${subset ? ` --models ${models.join(',')}` : ''}${batchesAt !== -1 ? ` --batches ${process.argv[batchesAt + 1]}` : ''}`;
const markdown = `## Inference: Tamp int8 against stock tfjs fp32 (\`${subset ? command : 'pnpm bench:infer'}\`)

\`${command}\` on ${machine()} (at the start: ${loadAtStart}). Every engine runs in turn on the same inputs in one process, model by model and batch by batch, so the ratios compare like with like under the same load; absolute times are inflated by the shared machine. WebGPU adapter: ${found.description}${found.software ? ' (software: SwiftShader runs WebGPU on the CPU, so compare ratios only, not absolute times)' : ''}. Up to ${iterations} timed runs after warm-up (at least 3 runs and ${fmt(Math.min(WARMUP_MS, budgetMs / 10) / 1000, 0)} s, so V8 has optimised tfjs's JavaScript before either engine is timed; one run when the first takes over a tenth of the budget), an engine's runs stopping once 3 have run and ${fmt(budgetMs / 1000, 0)} s have passed; the runs column says how many each row had. Latency is a whole \`predict\` including upload and read-back (ms). Dispatches per inference counted by wrapping the compute pass encoder.

${markdownTable(['model', 'batch', 'device', 'engine', 'runs', 'p50 ms', 'p90 ms', 'dispatches', 'weights on the GPU'], rows)}

${ratios.map((r) => `- ${r}`).join('\n')}
${detectors.length > 0 ? `\nThe two shapes detectors, same run:\n\n${detectors.join('\n')}\n` : ''}
Goals (weights on the GPU ≤ 0.3x of fp32; WebGPU latency ≤ 1.2x of stock tfjs fp32 for LeNet-5 and the detector, ≤ 1.0x on WebGPU and WASM for MobileNet-v2 and ResNet-20): ${missed.length === 0 ? 'every goal was met in this run.' : `missed: ${missed.join('; ')}.`} Tamp runs one dispatch per layer (bias, folded batch norm, residual addition and activation fused into the convolution or dense kernel; activations stay on the GPU in buffers reused by liveness; a convolution thread computes four output channels from one 32-bit word of four int8 weights); stock tfjs runs its own per-op programs, ${fmt(Math.min(...stockDispatches), 0)} to ${fmt(Math.max(...stockDispatches), 0)} dispatches per inference in this table (Tamp: ${fmt(Math.min(...tampDispatches), 0)} to ${fmt(Math.max(...tampDispatches), 0)}).${models.includes('shapes-detector') ? ' An earlier Tamp convolution (one output element per thread, one byte extracted per weight load) measured 1.52x (batch 1) and 1.69x (batch 64) of stock on the detector, missing the goal; the four-channel kernel brought it to the figures above.' : ''}
`;
process.stdout.write(`${markdown}\n`);
if (write) writeSection(subset ? `bench:infer:${models.join('+')}` : 'bench:infer', markdown);
