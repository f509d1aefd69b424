/// <reference types="vite/client" />
/**
 * What both demos share: where Vite put tfjs's WASM binaries, which device
 * to run on (`?device=auto|webgpu|wasm|cpu` in the page's URL, auto by
 * default) and a sentence saying why, and latency bookkeeping.
 */
import wasm from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { DEVICE_NAMES, type DeviceRequest, type InferenceModel, adapterFrom, loadParts, readParts, setWasmBinaryPaths } from '@tamp/webgpu';

// tfjs looks for its .wasm files beside its own script by default; with a bundler they live wherever Vite put them.
const WASM_PATHS = { 'tfjs-backend-wasm.wasm': wasm, 'tfjs-backend-wasm-simd.wasm': wasmSimd, 'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded };

/** The device the page asks for: ?device=… in its URL, else auto. */
export function requestedDevice(): DeviceRequest {
  const asked = new URLSearchParams(location.search).get('device') ?? 'auto';
  return asked === 'auto' || (DEVICE_NAMES as readonly string[]).includes(asked) ? (asked as DeviceRequest) : 'auto';
}

export interface OpenedModel {
  readonly model: InferenceModel;
  /** The device name: webgpu, wasm or cpu. */
  readonly deviceName: string;
  /** e.g. "WebGPU (nvidia / ampere)" or "WASM". */
  readonly device: string;
  /** Why the page is not on WebGPU, when it is not. */
  readonly fallback: string | undefined;
}

const LABELS: Record<string, string> = { webgpu: 'WebGPU', wasm: 'WASM', cpu: 'CPU' };

/** Load a model by URL on the requested device; says which device came up and, if not WebGPU, why. */
export async function openModel(url: string, device: DeviceRequest = requestedDevice()): Promise<OpenedModel> {
  await setWasmBinaryPaths(WASM_PATHS);
  const parts = await readParts(new URL(url, location.href).href);
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const { model, selection } = await loadParts(parts, { device }, () => adapterFrom(gpu, 'this browser'));
  const info = model.info();
  const webgpuSkipped = selection.skipped.find((s) => s.name === 'webgpu');
  const fallback = info.device === 'webgpu' ? undefined : webgpuSkipped !== undefined ? `WebGPU skipped: ${webgpuSkipped.reason}` : `${LABELS[info.device] ?? info.device} was asked for`;
  return {
    model,
    deviceName: info.device,
    device: info.device === 'webgpu' ? `WebGPU (${info.adapter}${info.software ? ', software' : ''})` : (LABELS[info.device] ?? info.device),
    fallback,
  };
}

/** Running median of the last latencies (ms). */
export class Latency {
  private readonly times: number[] = [];
  add(ms: number): void {
    this.times.push(ms);
    if (this.times.length > 20) this.times.shift();
  }
  median(): number {
    const s = [...this.times].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)] ?? 0;
  }
}

export function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** demos/models.json as the pages read it (written by pnpm demo:models). */
export interface DemoManifest {
  readonly models: ReadonlyArray<{ readonly demo: string; readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number }> }>;
}

/** Bytes of a demo's model files whose path matches `pattern`, from the manifest. */
export function manifestBytes(manifest: DemoManifest, demo: string, pattern: RegExp): number {
  const files = manifest.models.find((m) => m.demo === demo)?.files ?? [];
  return files.filter((f) => pattern.test(f.path)).reduce((n, f) => n + f.bytes, 0);
}

function element(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el;
}

/** Show an error in the page's #error. */
export function showError(message: string): void {
  const el = element('error');
  el.textContent = message;
  el.hidden = false;
}

/** Fill the stats panel for an opened model: #device (and data-device), #model-name, #size (file and GPU weight bytes) and #fallback. */
export function showModel(opened: OpenedModel, description: string, fileBytes: number): void {
  const info = opened.model.info();
  const device = element('device');
  device.textContent = opened.device;
  device.dataset.device = opened.deviceName;
  element('model-name').textContent = `${info.name}, ${description} (${info.parameters.toLocaleString('en-US')} parameters)`;
  element('size').textContent = `${formatBytes(fileBytes)}${info.gpuWeightBytes > 0 ? `; ${formatBytes(info.gpuWeightBytes)} of weights on the GPU` : ''}`;
  const fallback = element('fallback');
  fallback.hidden = opened.fallback === undefined;
  fallback.textContent = opened.fallback === undefined ? '' : `Running on ${opened.device}: ${opened.fallback}.`;
}
