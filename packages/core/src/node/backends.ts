/**
 * Training backends in Node, fastest first: tensorflow (tfjs-node-gpu, then
 * tfjs-node: optional, installed in the container images only), WebGPU on
 * Dawn, WASM, CPU.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendUnavailableError, errorMessage } from '../errors.js';
import { type BackendCandidate, type BackendRequest, type ProbeResult, type SelectedBackend, selectBackend } from '../backend/select.js';
import { activateTfBackend, cpuCandidate, wasmCandidate } from '../backend/tfjs-backends.js';
import { type DawnAdapter, installNavigatorGpu, requestDawnAdapter } from './webgpu-dawn.js';

const TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/**
 * Why a tfjs-node package cannot load, found without importing it: a package
 * installed without its build script (as here, where libtensorflow cannot be
 * downloaded) registers its kernels and then throws, which would leave a
 * half-registered backend and a screen of warnings behind.
 */
function tfjsNodeProblem(pkg: string): string | undefined {
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return `${pkg} is not installed`;
  }
  const lib = join(dir, 'lib');
  const hasBinding = existsSync(lib) && readdirSync(lib).some((d) => existsSync(join(lib, d, 'tfjs_binding.node')));
  return hasBinding ? undefined : `${pkg} is installed without its native addon (libtensorflow was never downloaded; pnpm rebuild ${pkg} where the internet is reachable)`;
}

function tensorflowCandidate(): BackendCandidate {
  return {
    name: 'tensorflow',
    async probe(_explicit, log): Promise<ProbeResult> {
      const reasons: string[] = [];
      for (const pkg of TFJS_NODE_PACKAGES) {
        const problem = tfjsNodeProblem(pkg);
        if (problem !== undefined) {
          reasons.push(problem);
          continue;
        }
        try {
          await import(pkg);
          // Bringing libtensorflow up is the only way to learn whether it found
          // CUDA: tfjs-node-gpu on a CUDA 12 image silently runs on the CPU.
          await activateTfBackend('tensorflow');
          const usesGpu = (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
          if (pkg.endsWith('-gpu') && !usesGpu) log(`tensorflow: ${pkg} loaded but found no CUDA device; it runs on the CPU`);
          return { available: true, gpu: usesGpu, software: false, adapter: `${pkg} (libtensorflow${usesGpu ? ' on CUDA' : ' on CPU'})` };
        } catch (error) {
          const msg = errorMessage(error).split('\n')[0] ?? '';
          reasons.push(/Cannot find (package|module)/.test(msg) ? `${pkg} is not installed` : `${pkg} failed to load: ${msg}`);
        }
      }
      return {
        available: false,
        gpu: false,
        software: false,
        reason: `${reasons.join('; ')} (they need libtensorflow, which the container images install; see docker/)`,
      };
    },
    async activate() {
      await activateTfBackend('tensorflow');
    },
  };
}

function dawnWebGpuCandidate(): BackendCandidate {
  let found: DawnAdapter | undefined;
  return {
    name: 'webgpu',
    async probe(explicit, log): Promise<ProbeResult> {
      found = await requestDawnAdapter({ allowSoftware: explicit, log });
      return { available: true, gpu: true, software: found.software, adapter: found.description };
    },
    async activate(log) {
      // selectBackend activates only a candidate whose probe succeeded, and the probe sets `found`.
      if (found === undefined) throw new Error('webgpu backend activated before its probe');
      installNavigatorGpu(found.gpu);
      await import('@tensorflow/tfjs-backend-webgpu');
      if (tf.findBackendFactory('webgpu') === null) {
        throw new BackendUnavailableError('tfjs-backend-webgpu did not register its backend (navigator.gpu was missing when it first loaded)', [{ name: 'webgpu', reason: 'tfjs-backend-webgpu did not register' }]);
      }
      await activateTfBackend('webgpu');
      log(`webgpu: running on ${found.description}${found.software ? ' (software: for correctness, not speed)' : ''}`);
    },
  };
}

/** Node's training backend candidates in priority order. */
export function nodeBackendCandidates(): BackendCandidate[] {
  return [tensorflowCandidate(), dawnWebGpuCandidate(), wasmCandidate(), cpuCandidate()];
}

export interface UseBackendOptions {
  requireGpu?: boolean;
  log?: (message: string) => void;
}

/** Select and activate a training backend in Node (ARCHITECTURE.md, `@tamp/core`: backend/select.ts, and `@tamp/core/node`: backends.ts). */
export async function useBackend(requested: BackendRequest, options: UseBackendOptions = {}): Promise<SelectedBackend> {
  return selectBackend({
    requested,
    candidates: nodeBackendCandidates(),
    ...(options.requireGpu !== undefined ? { requireGpu: options.requireGpu } : {}),
    ...(options.log !== undefined ? { log: options.log } : {}),
  });
}
