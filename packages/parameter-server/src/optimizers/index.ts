import type { OptimizerSettings } from '@tamp/core/base';
import { adagrad } from './adagrad.js';
import { adam } from './adam.js';
import { momentum } from './momentum.js';
import type { ServerOptimizer } from './optimizer.js';
import { sgd } from './sgd.js';
import type { KernelArena } from './wasm-kernels.js';

export { OPTIMIZER_SLOTS, type ServerOptimizer } from './optimizer.js';
export { KERNELS_ENV, KernelArena, type KernelKind, kernelsFromEnv, serverKernels, setServerKernels } from './wasm-kernels.js';

/**
 * A server optimizer; with an arena, its update loops run in WebAssembly SIMD
 * over arrays allocated there (initSlot allocates slots there too).
 */
export function createServerOptimizer(settings: OptimizerSettings, arena: KernelArena | null = null): ServerOptimizer {
  switch (settings.name) {
    case 'sgd':
      return sgd(settings, arena);
    case 'momentum':
      return momentum(settings, arena);
    case 'adam':
      return adam(settings, arena);
    case 'adagrad':
      return adagrad(settings, arena);
  }
}
