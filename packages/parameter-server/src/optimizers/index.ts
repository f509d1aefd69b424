import type { OptimizerSettings } from '@tamp/core';
import { adagrad } from './adagrad.js';
import { adam } from './adam.js';
import { momentum } from './momentum.js';
import type { ServerOptimizer } from './optimizer.js';
import { sgd } from './sgd.js';

export type { ServerOptimizer } from './optimizer.js';

export function createServerOptimizer(settings: OptimizerSettings): ServerOptimizer {
  switch (settings.name) {
    case 'sgd':
      return sgd(settings);
    case 'momentum':
      return momentum(settings);
    case 'adam':
      return adam(settings);
    case 'adagrad':
      return adagrad(settings);
  }
}
