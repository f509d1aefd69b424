/**
 * A model on WebGPU: a standalone executor with one WGSL kernel per layer.
 *
 * Why not tfjs-backend-webgpu's program API: tfjs owns its buffers (so the
 * bytes on the GPU can only be estimated), converts int32 data to float in
 * its generated accessors, caches programs by key (anything baked into the
 * WGSL must be in the key), moves small tensors to the CPU, and cannot read
 * back synchronously in Node. Owning the device instead gives exact byte
 * counts, one code path for browsers and Dawn, and a bundle without tfjs.
 *
 * Weights upload once at load, kernels compile once at load; a prediction
 * writes the input, runs every kernel in one compute pass (WebGPU orders
 * dispatches in a pass), and reads the output back. Activations ping-pong
 * between two buffers sized for the largest layer, grown when a bigger
 * batch arrives and split into chunks when a batch would exceed the
 * device's largest storage binding.
 */
import { GpuError, errorMessage } from '@tamp/core';
import type { ModelParts } from '../model-source.js';
import type { Plan } from '../plan.js';
import { type InferenceModel, type ModelInfo, type ModelInput, type Prediction, disposedError, normalizeInput } from '../inference-model.js';
import { activationKernel } from './kernels/activation.js';
import { type Kernel, dispatchSize } from './kernels/common.js';
import { conv2dKernel } from './kernels/conv2d.js';
import { denseKernel } from './kernels/dense.js';
import { poolKernel } from './kernels/pool.js';
import { BUFFER_USAGE, GpuMemory, MAP_READ } from './memory.js';
import { type GpuWeight, uploadWeight, weightEntries } from './weights.js';

export interface GpuAdapterInfo {
  readonly adapter: GPUAdapter;
  readonly description: string;
  readonly software: boolean;
}

interface Stage {
  readonly kernel: Kernel;
  readonly pipeline: GPUComputePipeline;
  readonly params: GPUBuffer;
}

interface Buffers {
  readonly capacity: number;
  readonly input: GPUBuffer;
  readonly ping: readonly [GPUBuffer, GPUBuffer];
  readonly staging: GPUBuffer;
  readonly bindGroups: readonly GPUBindGroup[];
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

async function checked<T>(device: GPUDevice, what: string, fn: () => Promise<T>): Promise<T> {
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  let value: T;
  try {
    value = await fn();
  } catch (error) {
    await device.popErrorScope();
    await device.popErrorScope();
    throw new GpuError(`${what}: ${errorMessage(error)}`, { cause: error });
  }
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  if (oom !== null) throw new GpuError(`${what}: the GPU is out of memory (${oom.message}); use a smaller batch or free other GPU work`);
  if (invalid !== null) throw new GpuError(`${what}: ${invalid.message}`);
  return value;
}

export class GpuModel implements InferenceModel {
  private buffers: Buffers | undefined;
  private disposed = false;
  private lost: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly device: GPUDevice,
    private readonly adapterInfo: GpuAdapterInfo,
    private readonly parts: ModelParts,
    private readonly plan: Plan,
    private readonly memory: GpuMemory,
    private readonly weights: readonly GpuWeight[],
    private readonly stages: readonly Stage[],
    /** Largest batch one pass may take (the device's storage binding limit). */
    private readonly maxBatch: number,
  ) {
    void device.lost.then((info) => {
      this.lost = info.message || String(info.reason);
    });
  }

  static async create(adapter: GpuAdapterInfo, parts: ModelParts, plan: Plan, options: { maxBatchPerPass?: number } = {}): Promise<GpuModel> {
    let device: GPUDevice;
    try {
      device = await adapter.adapter.requestDevice({ label: `tamp ${plan.name}` });
    } catch (error) {
      throw new GpuError(`could not open a device on ${adapter.description}: ${errorMessage(error)}`, { cause: error });
    }
    const memory = new GpuMemory(device);
    try {
      const weights = await checked(device, `uploading the weights of ${plan.name}`, async () => parts.weights.map((t) => uploadWeight(memory, t)));
      const kernels: Kernel[] = plan.ops.map((op) => {
        if (op.kind === 'dense') return denseKernel(op, weights[op.kernel] as GpuWeight, op.bias === undefined ? undefined : weights[op.bias]);
        if (op.kind === 'conv2d') return conv2dKernel(op, weights[op.kernel] as GpuWeight, op.bias === undefined ? undefined : weights[op.bias]);
        if (op.kind === 'pool') return poolKernel(op);
        return activationKernel(op);
      });
      const stages: Stage[] = [];
      for (const kernel of kernels) {
        const pipeline = await checked(device, `compiling the kernel of layer "${kernel.label}"`, async () => {
          const module = device.createShaderModule({ label: kernel.label, code: kernel.code });
          const info = await module.getCompilationInfo();
          const errors = info.messages.filter((m) => m.type === 'error');
          if (errors.length > 0) throw new GpuError(`the WGSL did not compile: ${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}`);
          return device.createComputePipelineAsync({ label: kernel.label, layout: 'auto', compute: { module, entryPoint: 'main' } });
        });
        stages.push({ kernel, pipeline, params: memory.create(`${kernel.label} params`, 16, BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST, 'uniform') });
      }
      const perSample = Math.max(plan.maxActivation, sizeOf(plan.inputShape)) * 4;
      const fits = Math.max(1, Math.floor(Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) / perSample));
      const maxBatch = Math.min(fits, options.maxBatchPerPass ?? fits);
      return new GpuModel(device, adapter, parts, plan, memory, weights, stages, maxBatch);
    } catch (error) {
      memory.destroyAll();
      device.destroy();
      throw error;
    }
  }

  private ensureBuffers(batch: number): Buffers {
    if (this.buffers !== undefined && this.buffers.capacity >= batch) return this.buffers;
    const old = this.buffers;
    if (old !== undefined) for (const b of [old.input, ...old.ping, old.staging]) this.memory.destroy(b);
    this.buffers = undefined;
    let capacity = 1;
    while (capacity < batch) capacity *= 2;
    capacity = Math.min(capacity, this.maxBatch);
    const act = this.plan.maxActivation * capacity * 4;
    const storage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;
    const input = this.memory.create('input', sizeOf(this.plan.inputShape) * capacity * 4, storage, 'activation');
    const ping: [GPUBuffer, GPUBuffer] = [this.memory.create('activations a', act, storage, 'activation'), this.memory.create('activations b', act, storage, 'activation')];
    const staging = this.memory.create('output staging', sizeOf(this.plan.outputShape) * capacity * 4, BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, 'staging');
    const bindGroups = this.stages.map((stage, i) => {
      const entries: GPUBindGroupEntry[] = [
        { binding: 0, resource: { buffer: stage.params } },
        { binding: 1, resource: { buffer: i === 0 ? input : ping[(i - 1) % 2] as GPUBuffer } },
        { binding: 2, resource: { buffer: ping[i % 2] as GPUBuffer } },
      ];
      let binding = 3;
      for (const w of stage.kernel.weights) {
        if (w === undefined) continue;
        entries.push(...weightEntries(w, binding));
        binding += w.aux === undefined ? 1 : 2;
      }
      return this.device.createBindGroup({ label: stage.kernel.label, layout: stage.pipeline.getBindGroupLayout(0), entries });
    });
    this.buffers = { capacity, input, ping, staging, bindGroups };
    return this.buffers;
  }

  private async run(data: Float32Array, batch: number): Promise<Float32Array> {
    if (this.lost !== undefined) throw new GpuError(`the GPU device was lost (${this.lost}): load the model again`);
    const b = this.ensureBuffers(batch);
    const queue = this.device.queue;
    queue.writeBuffer(b.input, 0, data.buffer, data.byteOffset, data.byteLength);
    const encoder = this.device.createCommandEncoder({ label: 'predict' });
    const pass = encoder.beginComputePass();
    this.stages.forEach((stage, i) => {
      const threads = stage.kernel.threads(batch);
      queue.writeBuffer(stage.params, 0, Uint32Array.of(batch, threads, 0, 0));
      const [x, y] = dispatchSize(threads);
      pass.setPipeline(stage.pipeline);
      pass.setBindGroup(0, b.bindGroups[i] as GPUBindGroup);
      pass.dispatchWorkgroups(x, y);
    });
    pass.end();
    const outBytes = sizeOf(this.plan.outputShape) * batch * 4;
    encoder.copyBufferToBuffer(b.ping[(this.stages.length - 1) % 2] as GPUBuffer, 0, b.staging, 0, outBytes);
    queue.submit([encoder.finish()]);
    try {
      await b.staging.mapAsync(MAP_READ, 0, outBytes);
    } catch (error) {
      throw new GpuError(`reading the output back failed${this.lostNote()}: ${errorMessage(error)}`, { cause: error });
    }
    const out = new Float32Array(b.staging.getMappedRange(0, outBytes).slice(0));
    b.staging.unmap();
    return out;
  }

  /** Read through a method: the device may be lost while a call awaits. */
  private lostNote(): string {
    return this.lost === undefined ? '' : ` (device lost: ${this.lost})`;
  }

  async predict(input: ModelInput): Promise<Prediction> {
    if (this.disposed) throw disposedError(this.plan.name);
    const { data, batch } = await normalizeInput(input, this.plan.inputShape);
    // One prediction at a time: they share the activation and staging buffers.
    const result = this.queue.then(async () => {
      if (this.disposed) throw disposedError(this.plan.name);
      const per = sizeOf(this.plan.inputShape);
      const outPer = sizeOf(this.plan.outputShape);
      const out = new Float32Array(batch * outPer);
      for (let start = 0; start < batch; start += this.maxBatch) {
        const n = Math.min(this.maxBatch, batch - start);
        out.set(await this.run(data.subarray(start * per, (start + n) * per), n), start * outPer);
      }
      return { shape: [batch, ...this.plan.outputShape], data: out };
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  async warmup(batch = 1): Promise<void> {
    await this.predict(new Float32Array(batch * sizeOf(this.plan.inputShape)));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.buffers = undefined;
    this.memory.destroyAll();
    this.device.destroy();
  }

  info(): ModelInfo {
    const parameters = this.parts.weights.reduce((n, w) => n + sizeOf(w.shape), 0);
    return {
      device: 'webgpu',
      adapter: this.adapterInfo.description,
      software: this.adapterInfo.software,
      format: this.parts.format,
      name: this.parts.meta.model ?? this.plan.name,
      inputShape: this.plan.inputShape,
      outputShape: this.plan.outputShape,
      parameters,
      float32WeightBytes: parameters * 4,
      gpuWeightBytes: this.memory.bytes('weight'),
      gpuBytes: this.memory.bytes(),
      gpuBuffers: this.memory.buffers,
      dispatches: this.stages.length,
      weights: this.weights.map((w) => ({ name: w.name, storage: w.storage, bytes: w.bytes })),
      meta: this.parts.meta,
    };
  }
}
