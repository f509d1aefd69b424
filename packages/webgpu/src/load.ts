/**
 * loadModel: read a model, choose the device (ARCHITECTURE.md, `@tamp/webgpu`: `auto`
 * takes WebGPU on a hardware adapter, then WASM, then CPU, and says why it
 * passed one over), and build the model there. The entries differ only in
 * how they read sources and find a GPU: `index.ts` (browsers: fetch and
 * navigator.gpu) and `node/index.ts` (files, and Dawn).
 */
import { type BackendCandidate, BackendUnavailableError, InvalidArgumentError, type ProbeResult, type SelectedBackend, describeAdapter, selectBackend } from '@tamp/core';
import type { ModelParts } from './model-source.js';
import { planModel } from './plan.js';
import { DEVICE_NAMES, type DeviceName, type DeviceRequest, type InferenceModel } from './inference-model.js';
import type { GpuAdapterInfo } from './gpu/gpu-model.js';

export interface LoadOptions {
  /** Where to run (default auto). */
  readonly device?: DeviceRequest;
  /** Where device choices are explained (which one ran, what was skipped and why). */
  readonly log?: (message: string) => void;
  /** WebGPU: the largest batch one pass runs (default: what the device's largest storage buffer holds); larger batches run in chunks. Caps the GPU memory activations take. */
  readonly maxBatchPerPass?: number;
}

/** Finds a WebGPU adapter; `explicit` when the user named webgpu (a software adapter is then acceptable). */
export type AdapterProvider = (explicit: boolean, log: (message: string) => void) => Promise<GpuAdapterInfo>;

export interface LoadedModel {
  readonly model: InferenceModel;
  readonly selection: SelectedBackend<DeviceName>;
}

/** Adapter from a GPU object (navigator.gpu in browsers, a Dawn instance in Node). */
export async function adapterFrom(gpu: GPU | undefined, where: string): Promise<GpuAdapterInfo> {
  if (gpu === undefined) {
    throw new BackendUnavailableError(`${where} has no WebGPU (navigator.gpu is missing: WebGPU disabled or unsupported); use the wasm or cpu device`, [{ name: 'webgpu', reason: 'navigator.gpu is missing' }]);
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null) throw new BackendUnavailableError(`${where} offered no WebGPU adapter (no usable GPU or driver); use the wasm or cpu device`, [{ name: 'webgpu', reason: 'no adapter' }]);
  const d = describeAdapter(adapter);
  return { adapter, description: d.text, software: d.software };
}

function tfjsCandidate(name: 'wasm' | 'cpu', probe: () => Promise<ProbeResult>): BackendCandidate<DeviceName> {
  return { name, probe, activate: async () => {} };
}

/** Build a model from its parts on the chosen device. */
export async function loadParts(parts: ModelParts, options: LoadOptions, findAdapter: AdapterProvider): Promise<LoadedModel> {
  if (options.maxBatchPerPass !== undefined && !(Number.isInteger(options.maxBatchPerPass) && options.maxBatchPerPass >= 1)) {
    throw new InvalidArgumentError(`maxBatchPerPass must be a whole number ≥ 1, got ${options.maxBatchPerPass}`);
  }
  const plan = planModel(parts.modelTopology, parts.weights);
  const log = options.log ?? (() => {});
  let adapter: GpuAdapterInfo | undefined;
  let gpuModel: InferenceModel | undefined;
  const candidates: Array<BackendCandidate<DeviceName>> = [
    {
      name: 'webgpu',
      async probe(explicit, l) {
        adapter = await findAdapter(explicit, l);
        return { available: true, gpu: true, software: adapter.software, adapter: adapter.description };
      },
      // Built here, so a GPU that fails (a kernel that does not compile, no memory) lets auto fall back.
      async activate() {
        const { GpuModel } = await import('./gpu/gpu-model.js');
        gpuModel = await GpuModel.create(adapter as GpuAdapterInfo, parts, plan, options.maxBatchPerPass !== undefined ? { maxBatchPerPass: options.maxBatchPerPass } : {});
      },
    },
    tfjsCandidate('wasm', async () => {
      if (typeof WebAssembly !== 'object') return { available: false, gpu: false, software: false, reason: 'WebAssembly is not supported here' };
      await import('@tensorflow/tfjs-backend-wasm');
      return { available: true, gpu: false, software: false, adapter: 'tfjs wasm (XNNPACK)' };
    }),
    tfjsCandidate('cpu', async () => {
      await import('@tensorflow/tfjs-backend-cpu');
      return { available: true, gpu: false, software: false, adapter: 'tfjs cpu (JavaScript)' };
    }),
  ];
  const selection = await selectBackend<DeviceName>({ requested: options.device ?? 'auto', candidates, log, noun: 'device' });
  if (selection.name === 'webgpu') return { model: gpuModel as InferenceModel, selection };
  const { TfjsModel } = await import('./tfjs/tfjs-model.js');
  return { model: await TfjsModel.create(selection.name, selection.adapter ?? selection.name, parts, plan), selection };
}

export { DEVICE_NAMES };
