import { UsageError, percentile } from '@tamp/core';
import type { DeviceRequest } from '@tamp/webgpu';
import { loadModelWithSelection } from '@tamp/webgpu/node';
import { defineCommand } from '../command.js';
import { table } from '../output.js';
import { deviceOption, dryRunOption, dryRunResult } from './shared-options.js';
import { COMMAND_SUMMARIES } from './summaries.js';

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

export const benchCommand = defineCommand({
  name: 'bench',
  summary: COMMAND_SUMMARIES.bench,
  positionals: [
    { name: 'what', description: 'infer (the only benchmark so far)', required: true },
    { name: 'model', description: 'a tfjs model.json or a model.tamp', required: true },
  ],
  options: {
    device: deviceOption,
    batch: { type: 'number', integer: true, min: 1, default: 1, description: 'samples per predict call' },
    iterations: { type: 'number', integer: true, min: 1, default: 50, description: 'timed predict calls (after --warmup untimed ones)' },
    warmup: { type: 'number', integer: true, min: 0, default: 5, description: 'untimed predict calls first (compiles kernels, fills caches)' },
    'dry-run': dryRunOption,
  },
  async run({ options, positionals, out }) {
    const [what, modelPath] = positionals as [string, string];
    if (what !== 'infer') throw new UsageError(`unknown benchmark "${what}": tamp bench infer <model>`);
    if (options['dry-run']) return dryRunResult('bench', { what, model: modelPath, device: options.device, batch: options.batch, iterations: options.iterations });
    const { model, selection } = await loadModelWithSelection(modelPath, { device: options.device as DeviceRequest, log: (m) => out.log(m) });
    try {
      const info = model.info();
      const per = info.inputShape.reduce((a, b) => a * b, 1);
      const batch = options.batch;
      // Deterministic input in [0, 1): latency does not depend on the values.
      const x = Float32Array.from({ length: batch * per }, (_, i) => ((i * 7919) % 997) / 997);
      for (let i = 0; i < options.warmup; i++) await model.predict(x);
      const times: number[] = [];
      for (let i = 0; i < options.iterations; i++) {
        const started = performance.now();
        await model.predict(x);
        times.push(performance.now() - started);
        out.progress({ label: 'bench infer', done: i + 1, total: options.iterations });
      }
      out.endProgress();
      times.sort((a, b) => a - b);
      const mean = times.reduce((a, b) => a + b, 0) / times.length;
      const latencyMs = { min: times[0] as number, p50: percentile(times, 0.5), p90: percentile(times, 0.9), p99: percentile(times, 0.99), max: times.at(-1) as number, mean };
      const result = {
        model: modelPath,
        // The process's CPU architecture (arm64 on a Jetson, or under emulation in pnpm test:arm64).
        arch: process.arch,
        device: selection.name,
        adapter: selection.adapter ?? info.adapter,
        software: selection.software,
        skipped: selection.skipped,
        batch,
        iterations: options.iterations,
        latencyMs,
        samplesPerSecond: (batch * 1000) / latencyMs.p50,
        dispatches: info.dispatches,
        gpuWeightBytes: info.gpuWeightBytes,
        gpuBytes: info.gpuBytes,
        float32WeightBytes: info.float32WeightBytes,
        parameters: info.parameters,
      };
      const ms = (v: number) => `${v.toFixed(2)} ms`;
      return {
        result,
        text: table([
          ['model', `${modelPath} (${info.name}, ${info.parameters.toLocaleString('en-US')} parameters)`],
          ['device', selection.name],
          ['arch', `${process.platform}-${process.arch}`],
          ['adapter', `${result.adapter}${selection.software ? ' (software)' : ''}`],
          ['batch', String(batch)],
          ['latency p50 / p90 / p99', `${ms(latencyMs.p50)} / ${ms(latencyMs.p90)} / ${ms(latencyMs.p99)} (min ${ms(latencyMs.min)}, ${options.iterations} runs)`],
          ['samples/s', result.samplesPerSecond.toFixed(1)],
          ['dispatches', selection.name === 'webgpu' ? String(info.dispatches) : '– (not on WebGPU)'],
          ['weights on the GPU', selection.name === 'webgpu' ? `${kib(info.gpuWeightBytes)} (${(info.gpuWeightBytes / info.float32WeightBytes).toFixed(3)}x of fp32 ${kib(info.float32WeightBytes)})` : '0 (not on WebGPU)'],
        ]),
      };
    } finally {
      model.dispose();
    }
  },
});
