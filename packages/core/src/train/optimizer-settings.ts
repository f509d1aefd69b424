/**
 * Optimizer names and hyper-parameters: no tfjs here, so the parameter
 * servers and the CLI's role commands load without it (base.ts).
 */
import { InvalidArgumentError } from '../errors.js';

/** Optimizers the trainer (and the parameter servers) implement. */
export const OPTIMIZER_NAMES = Object.freeze(['sgd', 'momentum', 'adam', 'adagrad'] as const);
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** Hyper-parameters, with tfjs's defaults where tfjs has them. */
export interface OptimizerSettings {
  name: OptimizerName;
  learningRate: number;
  /** momentum: 0.9 */
  momentum: number;
  /** adam: 0.9, 0.999, 1e-7 (tfjs's defaults) */
  beta1: number;
  beta2: number;
  epsilon: number;
  /** adagrad: 0.1 (tfjs's default) */
  initialAccumulatorValue: number;
}

export function optimizerSettings(name: string, learningRate: number): OptimizerSettings {
  if (!(OPTIMIZER_NAMES as readonly string[]).includes(name)) {
    throw new InvalidArgumentError(`unknown optimizer "${name}": choose one of ${OPTIMIZER_NAMES.join(', ')}`);
  }
  if (!(learningRate > 0) || !Number.isFinite(learningRate)) {
    throw new InvalidArgumentError(`learning rate must be a positive number, got ${learningRate}`);
  }
  return { name: name as OptimizerName, learningRate, momentum: 0.9, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, initialAccumulatorValue: 0.1 };
}
