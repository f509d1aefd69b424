/**
 * WebGPU in Node through Dawn (the `webgpu` npm package; linux-x64 and
 * linux-arm64 builds, so Jetson-class boards with Vulkan drivers run it).
 *
 * When no Vulkan driver offers an adapter and the caller allows a software
 * one (an explicit `--backend webgpu` / `--device webgpu`), Dawn is pointed at
 * the SwiftShader Vulkan driver that Debian's chromium package ships, so tests
 * and CI machines without a GPU still exercise the WebGPU path.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BackendUnavailableError, errorMessage } from '../errors.js';
import { describeAdapter } from '../backend/tfjs-backends.js';

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

export interface DawnAdapter {
  readonly gpu: GPU;
  readonly adapter: GPUAdapter;
  readonly description: string;
  readonly software: boolean;
  /** 'system' (the machine's Vulkan drivers) or the path of the SwiftShader ICD used. */
  readonly driver: string;
}

/** Where chromium keeps its SwiftShader Vulkan ICD on Debian and derivatives. */
export const SWIFTSHADER_ICD_PATHS = Object.freeze([
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib64/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
]);

export function findSwiftShaderIcd(): string | undefined {
  return SWIFTSHADER_ICD_PATHS.find((p) => existsSync(p));
}

let dawn: DawnModule | undefined;
const instances = new Map<string, GPU>();

async function loadDawn(): Promise<DawnModule> {
  if (dawn !== undefined) return dawn;
  try {
    dawn = (await import('webgpu')) as unknown as DawnModule;
  } catch (error) {
    // An optional peer dependency (browsers never need Dawn's native builds): say how to add it when it is absent.
    const missing = (error as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND' && /['"]webgpu['"]/.test(errorMessage(error));
    throw new BackendUnavailableError(
      missing
        ? 'the webgpu package (Dawn) is not installed: WebGPU in Node needs it next to @tamp/core (npm install webgpu); wasm and cpu work without it.'
        : `the webgpu package (Dawn) failed to load: ${errorMessage(error)}. It ships builds for linux-x64 and linux-arm64; reinstall it (npm install webgpu).`,
      [],
      { cause: error },
    );
  }
  // tfjs-backend-webgpu reads GPUBufferUsage and friends from globalThis.
  for (const [key, value] of Object.entries(dawn.globals)) {
    if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
  }
  return dawn;
}

/**
 * An adapter from a Dawn instance that uses the given Vulkan ICD (or the
 * machine's drivers). The Vulkan loader reads VK_ICD_FILENAMES when Dawn
 * creates its Vulkan instance, on the first adapter request: the variable is
 * set for that request only, so the rest of the process and its children keep
 * the machine's own drivers.
 */
async function requestFrom(module: DawnModule, icd: string | undefined, options?: GPURequestAdapterOptions): Promise<{ gpu: GPU; adapter: GPUAdapter | null }> {
  const key = icd ?? 'system';
  let gpu = instances.get(key);
  if (gpu !== undefined) return { gpu, adapter: await gpu.requestAdapter(options) };
  const previous = process.env.VK_ICD_FILENAMES;
  if (icd !== undefined) process.env.VK_ICD_FILENAMES = icd;
  try {
    gpu = module.create([]);
    const adapter = await gpu.requestAdapter(options);
    instances.set(key, gpu);
    return { gpu, adapter };
  } finally {
    if (previous === undefined) delete process.env.VK_ICD_FILENAMES;
    else process.env.VK_ICD_FILENAMES = previous;
  }
}

function hasVulkanLoader(): boolean {
  return ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1', '/usr/lib/libvulkan.so.1'].some((p) =>
    existsSync(p),
  );
}

/**
 * Whether any Vulkan driver (ICD manifest) is installed where the Vulkan
 * loader looks. Checked before starting Dawn, which otherwise prints native
 * warnings on machines without any driver.
 */
export function hasVulkanDriver(): boolean {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES || process.env.VK_ADD_DRIVER_FILES) return true;
  const data = (process.env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':');
  const config = (process.env.XDG_CONFIG_DIRS ?? '/etc/xdg').split(':');
  const dirs = [...config, '/etc', ...data, '/usr/local/share', '/usr/share'].map((d) => join(d, 'vulkan', 'icd.d'));
  return dirs.some((d) => {
    try {
      return readdirSync(d).some((f) => f.endsWith('.json'));
    } catch {
      return false;
    }
  });
}

export interface DawnAdapterOptions {
  /** Accept a software adapter, and fall back to chromium's SwiftShader when no driver offers one. */
  allowSoftware: boolean;
  log?: (message: string) => void;
}

/** An adapter from the machine's Vulkan drivers, or (when allowed) SwiftShader. Throws BackendUnavailableError saying why not. */
export async function requestDawnAdapter(options: DawnAdapterOptions): Promise<DawnAdapter> {
  const log = options.log ?? (() => {});
  if (process.platform === 'linux' && !hasVulkanLoader()) {
    throw new BackendUnavailableError('WebGPU in Node needs the Vulkan loader: install it with apt-get install libvulkan1 (and a Vulkan driver, or chromium for SwiftShader)');
  }
  const module = await loadDawn();
  const preset = process.env.VK_ICD_FILENAMES;
  const driverInstalled = process.platform !== 'linux' || hasVulkanDriver();
  if (driverInstalled) {
    const { gpu: system, adapter } = await requestFrom(module, undefined, { powerPreference: 'high-performance' });
    if (adapter !== null) {
      const d = describeAdapter(adapter);
      return { gpu: system, adapter, description: d.text, software: d.software, driver: preset ?? 'system' };
    }
  }
  if (!options.allowSoftware) {
    throw new BackendUnavailableError(
      driverInstalled
        ? 'no Vulkan driver offered a WebGPU adapter (no GPU, or its driver does not support WebGPU)'
        : 'no Vulkan driver is installed (no ICD in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d): no GPU, or its Vulkan driver is missing',
    );
  }
  const icd = findSwiftShaderIcd();
  if (icd === undefined) {
    throw new BackendUnavailableError(
      'no Vulkan driver offered a WebGPU adapter, and chromium\'s SwiftShader driver was not found to fall back on: install a GPU driver, or apt-get install chromium',
    );
  }
  log(`webgpu: no Vulkan driver offered an adapter; using chromium's SwiftShader driver (${icd})`);
  const { gpu: sw, adapter: swAdapter } = await requestFrom(module, icd);
  if (swAdapter === null) throw new BackendUnavailableError(`SwiftShader (${icd}) offered no WebGPU adapter`);
  const d = describeAdapter(swAdapter);
  return { gpu: sw, adapter: swAdapter, description: d.text, software: true, driver: icd };
}

/** Expose a Dawn instance as navigator.gpu, which tfjs-backend-webgpu reads. */
export function installNavigatorGpu(gpu: GPU): void {
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (g.navigator === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  } else if (g.navigator.gpu !== gpu) {
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
  }
}
