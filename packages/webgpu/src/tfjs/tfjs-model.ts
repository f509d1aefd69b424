/**
 * The WASM and CPU devices: the model as a tfjs LayersModel with its weights
 * dequantized to float32, run on tfjs's `wasm` (XNNPACK) or `cpu` backend.
 * Off the GPU, memory is not the constraint int8 relieves, and XNNPACK's
 * float kernels are faster than anything int8 written in JavaScript.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ModelError, activateTfBackend, errorMessage } from '@tamp/core';
import { tampToArtifacts } from '@tamp/compress';
import type { ModelParts } from '../model-source.js';
import type { Plan } from '../plan.js';
import { type DeviceName, type InferenceModel, type ModelInfo, type ModelInput, type Prediction, disposedError, normalizeInput } from '../inference-model.js';

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export class TfjsModel implements InferenceModel {
  private disposed = false;

  private constructor(
    private readonly device: Exclude<DeviceName, 'webgpu'>,
    private readonly adapter: string,
    private readonly parts: ModelParts,
    private readonly plan: Plan,
    private readonly model: tfl.LayersModel,
  ) {}

  static async create(device: Exclude<DeviceName, 'webgpu'>, adapter: string, parts: ModelParts, plan: Plan): Promise<TfjsModel> {
    await activateTfBackend(device);
    let model: tfl.LayersModel;
    try {
      const artifacts = tampToArtifacts({ meta: { producer: '', created: '', ...parts.meta }, modelTopology: parts.modelTopology, weights: parts.weights });
      model = await tfl.loadLayersModel({ load: async () => artifacts });
    } catch (error) {
      throw new ModelError('MODEL_INVALID', `tfjs could not build the model from its topology (${errorMessage(error)})`, { cause: error });
    }
    return new TfjsModel(device, adapter, parts, plan, model);
  }

  async predict(input: ModelInput): Promise<Prediction> {
    if (this.disposed) throw disposedError(this.plan.name);
    const { data, batch } = await normalizeInput(input, this.plan.inputShape);
    // Several models may share the process on different backends: make ours current.
    await activateTfBackend(this.device);
    const inputShape = this.model.inputs[0]?.shape.slice(1) as number[];
    const y = tf.tidy(() => this.model.predict(tf.tensor(data, [batch, ...inputShape], 'float32')) as tf.Tensor);
    try {
      const out = (await y.data()) as Float32Array;
      return { shape: [batch, ...this.plan.outputShape], data: out };
    } finally {
      y.dispose();
    }
  }

  async warmup(batch = 1): Promise<void> {
    await this.predict(new Float32Array(batch * sizeOf(this.plan.inputShape)));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
  }

  info(): ModelInfo {
    const parameters = this.parts.weights.reduce((n, w) => n + sizeOf(w.shape), 0);
    return {
      device: this.device,
      adapter: this.adapter,
      software: false,
      format: this.parts.format,
      name: this.parts.meta.model ?? this.plan.name,
      inputShape: this.plan.inputShape,
      outputShape: this.plan.outputShape,
      parameters,
      float32WeightBytes: parameters * 4,
      gpuWeightBytes: 0,
      gpuBytes: 0,
      gpuBuffers: 0,
      dispatches: 0,
      weights: this.parts.weights.map((w) => ({ name: w.name, storage: 'float32 (dequantized at load)', bytes: sizeOf(w.shape) * 4 })),
      meta: this.parts.meta,
    };
  }
}
