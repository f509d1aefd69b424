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
 * dispatches in a pass), and reads the output back: no activation leaves
 * the GPU between layers. Operations are fused first (fuse.ts: padding,
 * batch norm, residual additions and activations into the convolution that
 * precedes them); activations live in buffers assigned by liveness
 * (liveness.ts), grown when a bigger batch arrives, and a batch that would
 * exceed the device's largest storage binding runs in chunks.
 */
import { GpuError, errorMessage } from '@tamp/core';
import type { ModelParts } from '../model-source.js';
import type { Plan } from '../plan.js';
import { type InferenceModel, type ModelInfo, type ModelInput, type Prediction, disposedError, normalizeInput } from '../inference-model.js';
import { type Dispatch, buildDispatches } from './build.js';
import { dispatchSize } from './kernels/common.js';
import { type Slots, assignSlots } from './liveness.js';
import { BUFFER_USAGE, GpuMemory, MAP_READ } from './memory.js';
import { type GpuWeight, weightEntries } from './weights.js';

export interface GpuAdapterInfo {
  readonly adapter: GPUAdapter;
  readonly description: string;
  readonly software: boolean;
}

interface Stage extends Dispatch {
  readonly pipeline: GPUComputePipeline;
  readonly params: GPUBuffer;
}

interface Buffers {
  readonly capacity: number;
  /** One per liveness slot. */
  readonly slots: readonly GPUBuffer[];
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
    private readonly slots: Slots,
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
      const { dispatches, weights } = await checked(device, `uploading the weights of ${plan.name}`, async () => buildDispatches(plan, parts.weights, memory));
      const stages: Stage[] = [];
      const compiled = new Map<string, GPUComputePipeline>();
      for (const d of dispatches) {
        const kernel = d.kernel;
        // Identical WGSL (the same layer shape twice, e.g. repeated blocks) compiles once.
        let pipeline = compiled.get(kernel.code);
        if (pipeline === undefined) {
          pipeline = await checked(device, `compiling the kernel of layer "${kernel.label}"`, async () => {
            const module = device.createShaderModule({ label: kernel.label, code: kernel.code });
            const info = await module.getCompilationInfo();
            const errors = info.messages.filter((m) => m.type === 'error');
            if (errors.length > 0) throw new GpuError(`the WGSL did not compile: ${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}`);
            return device.createComputePipelineAsync({ label: kernel.label, layout: 'auto', compute: { module, entryPoint: 'main' } });
          });
          compiled.set(kernel.code, pipeline);
        }
        stages.push({ ...d, pipeline, params: memory.create(`${kernel.label} params`, 16, BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST, 'uniform') });
      }
      const slots = assignSlots(plan, dispatches);
      const perSample = Math.max(...slots.sizes) * 4;
      const fits = Math.max(1, Math.floor(Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) / perSample));
      const maxBatch = Math.min(fits, options.maxBatchPerPass ?? fits);
      return new GpuModel(device, adapter, parts, plan, memory, weights, stages, slots, maxBatch);
    } catch (error) {
      memory.destroyAll();
      device.destroy();
      throw error;
    }
  }

  private ensureBuffers(batch: number): Buffers {
    if (this.buffers !== undefined && this.buffers.capacity >= batch) return this.buffers;
    const old = this.buffers;
    if (old !== undefined) for (const b of [...old.slots, old.staging]) this.memory.destroy(b);
    this.buffers = undefined;
    let capacity = 1;
    while (capacity < batch) capacity *= 2;
    capacity = Math.min(capacity, this.maxBatch);
    const storage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;
    const slots = this.slots.sizes.map((size, i) => this.memory.create(`activations ${i}`, size * capacity * 4, storage, 'activation'));
    const staging = this.memory.create('output staging', sizeOf(this.plan.outputShape) * capacity * 4, BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, 'staging');
    const bufferOf = (tensor: number) => slots[this.slots.slotOf.get(tensor) as number] as GPUBuffer;
    const bindGroups = this.stages.map((stage) => {
      const entries: GPUBindGroupEntry[] = [
        { binding: 0, resource: { buffer: stage.params } },
        { binding: 1, resource: { buffer: bufferOf(stage.inputs[0] as number) } },
        { binding: 2, resource: { buffer: bufferOf(stage.output) } },
        ...stage.inputs.slice(1).map((t, i) => ({ binding: 3 + i, resource: { buffer: bufferOf(t) } })),
      ];
      let binding = 2 + stage.inputs.length;
      for (const w of stage.kernel.weights) {
        if (w === undefined) continue;
        entries.push(...weightEntries(w, binding));
        binding += w.aux === undefined ? 1 : 2;
      }
      return this.device.createBindGroup({ label: stage.kernel.label, layout: stage.pipeline.getBindGroupLayout(0), entries });
    });
    this.buffers = { capacity, slots, staging, bindGroups };
    return this.buffers;
  }

  private async run(data: Float32Array, batch: number): Promise<Float32Array> {
    if (this.lost !== undefined) throw new GpuError(`the GPU device was lost (${this.lost}): load the model again`);
    const b = this.ensureBuffers(batch);
    const queue = this.device.queue;
    queue.writeBuffer(b.slots[this.slots.slotOf.get(0) as number] as GPUBuffer, 0, data.buffer, data.byteOffset, data.byteLength);
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
    encoder.copyBufferToBuffer(b.slots[this.slots.slotOf.get(this.plan.output) as number] as GPUBuffer, 0, b.staging, 0, outBytes);
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
