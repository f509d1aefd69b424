/**
 * The program inside the `pnpm bench:gpu` bundle (transpiled to
 * app/bench-gpu.mjs next to the compiled tamp, whose packages it imports):
 * Tamp's int8 `.tamp` models on Tamp's WebGPU kernels against the same
 * models' fp32 model.json on stock tfjs-backend-webgpu, on this machine's
 * own adapter (Dawn on its Vulkan driver; SwiftShader only when there is no
 * GPU, and then it says so). Prints the adapter, latency percentiles of whole
 * predict calls (upload, compute, read-back) and the weight bytes on the GPU,
 * as a Markdown section for BENCHMARKS.md, or one JSON object with --json.
 *
 *   node bench-gpu.mjs --models DIR [--iterations N] [--warmup N] [--batches 1,64] [--json]
 *
 * DIR holds <name>.tamp and <name>/model.json for lenet-5 and shapes-detector.
 * Self-contained on purpose: only package imports, no repository files.
 */
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { percentile } from '@tamp/core';
import { loadLayersModelFile, requestDawnAdapter, useBackend } from '@tamp/core/node';
import { loadModel } from '@tamp/webgpu/node';

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : (process.argv[at + 1] ?? fallback);
}
const modelsDir = flag('models', '');
if (modelsDir === '') throw new Error('bench-gpu: --models DIR is required (run.sh passes it)');
const iterations = Number(flag('iterations', '50'));
const warmup = Number(flag('warmup', '5'));
const batches = flag('batches', '1,64').split(',').map(Number);
const asJson = process.argv.includes('--json');
const log = (m: string) => process.stderr.write(`${m}\n`);

interface Latency {
  p50: number;
  p90: number;
  p99: number;
}

async function time(run: () => Promise<void>): Promise<Latency> {
  for (let i = 0; i < warmup; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p90: percentile(times, 0.9), p99: percentile(times, 0.99) };
}

const found = await requestDawnAdapter({ allowSoftware: true, log });
log(`bench-gpu: adapter ${found.description}${found.software ? ' (software: no GPU offered an adapter)' : ''}`);
// Stock tfjs on the same Dawn instance (the adapter request above is cached per driver).
await useBackend('webgpu', { log });

interface Row {
  model: string;
  batch: number;
  engine: 'tamp-int8' | 'stock-fp32';
  latencyMs: Latency;
  gpuWeightBytes: number;
  float32WeightBytes: number;
}
const rows: Row[] = [];
for (const name of ['lenet-5', 'shapes-detector']) {
  for (const batch of batches) {
    const ours = await loadModel(join(modelsDir, `${name}.tamp`), { device: 'webgpu' });
    const info = ours.info();
    const per = info.inputShape.reduce((a, b) => a * b, 1);
    // Deterministic input in [0, 1): latency does not depend on the values.
    const x = Float32Array.from({ length: batch * per }, (_, i) => ((i * 7919) % 997) / 997);
    const tamp = await time(async () => void (await ours.predict(x)));
    ours.dispose();
    rows.push({ model: name, batch, engine: 'tamp-int8', latencyMs: tamp, gpuWeightBytes: info.gpuWeightBytes, float32WeightBytes: info.float32WeightBytes });

    const stock = await loadLayersModelFile(join(modelsDir, name, 'model.json'));
    const input = tf.tensor(x, [batch, ...info.inputShape]);
    const stockLatency = await time(async () => {
      const y = stock.predict(input) as tf.Tensor;
      await y.data();
      y.dispose();
    });
    // tfjs keeps every tensor it has on the GPU: the fp32 weights and the input.
    const stockBytes = (tf.memory() as { numBytesInGPU?: number }).numBytesInGPU ?? 0;
    input.dispose();
    stock.dispose();
    rows.push({ model: name, batch, engine: 'stock-fp32', latencyMs: stockLatency, gpuWeightBytes: stockBytes, float32WeightBytes: info.float32WeightBytes });
    log(`bench-gpu: ${name} batch ${batch}: Tamp int8 p50 ${tamp.p50.toFixed(3)} ms, stock fp32 p50 ${stockLatency.p50.toFixed(3)} ms`);
  }
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version} (${process.platform}-${process.arch}); tfjs ${tf.version_core}; ${new Date().toISOString().slice(0, 10)}`;
if (asJson) {
  process.stdout.write(`${JSON.stringify({ machine, arch: process.arch, adapter: found.description, software: found.software, iterations, warmup, rows })}\n`);
} else {
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const ms = (v: number) => v.toFixed(3);
  const lines = rows.map(
    (r) =>
      `| ${r.model} | ${r.batch} | ${r.engine === 'tamp-int8' ? 'Tamp int8 (.tamp)' : 'stock tfjs-webgpu fp32'} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p90)} | ${ms(r.latencyMs.p99)} | ${kib(r.gpuWeightBytes)}${r.engine === 'tamp-int8' ? ` (${(r.gpuWeightBytes / r.float32WeightBytes).toFixed(3)}x of fp32)` : ' (all tensors on the GPU)'} |`,
  );
  const ratios = rows
    .filter((r) => r.engine === 'tamp-int8')
    .map((r) => {
      const stock = rows.find((s) => s.engine === 'stock-fp32' && s.model === r.model && s.batch === r.batch) as Row;
      return `- ${r.model} batch ${r.batch}: latency Tamp/stock **${(r.latencyMs.p50 / stock.latencyMs.p50).toFixed(2)}x** (p50)`;
    });
  process.stdout.write(
    [
      `${machine}. Adapter: ${found.description}${found.software ? ' (**software**: no GPU offered an adapter, so these are CPU times)' : ''}. ${iterations} timed predict calls after ${warmup} warm-up calls; latency in ms of a whole predict (upload, compute, read-back).`,
      '',
      '| model | batch | engine | p50 ms | p90 ms | p99 ms | weights on the GPU |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...lines,
      '',
      ...ratios,
      '',
    ].join('\n'),
  );
}
