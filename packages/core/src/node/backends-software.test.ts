// This file runs in its own process. Pointing the Vulkan loader at SwiftShader
// before Dawn starts makes the machine's "system" adapter a software one: the
// situation of a GPU-less machine whose only Vulkan driver is a software one.
import { describe, expect, it } from 'vitest';
import { findSwiftShaderIcd } from './webgpu-dawn.js';

const icd = findSwiftShaderIcd();
if (icd !== undefined) process.env.VK_ICD_FILENAMES = icd;

describe('auto and a software WebGPU adapter', () => {
  it('skips the software adapter with the reason logged, and takes WASM', async () => {
    expect(icd, 'install Debian chromium (apt-get install chromium) for its SwiftShader Vulkan driver').toBeDefined();
    const { useBackend } = await import('./backends.js');
    const logs: string[] = [];
    const selected = await useBackend('auto', { log: (m) => logs.push(m) });
    expect(selected.name).toBe('wasm');
    const webgpu = selected.skipped.find((s) => s.name === 'webgpu');
    expect(webgpu?.reason).toMatch(/software adapter .*swiftshader/i);
    expect(logs.join('\n')).toMatch(/backend webgpu: skipped \(software adapter/);
  });
});
