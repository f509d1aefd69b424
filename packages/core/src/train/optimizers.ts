import * as tf from '@tensorflow/tfjs-core';
import type { OptimizerSettings } from './optimizer-settings.js';

export * from './optimizer-settings.js';

/** The tfjs optimizer with exactly these settings (the reference the parameter servers match). */
export function createTfOptimizer(s: OptimizerSettings): tf.Optimizer {
  switch (s.name) {
    case 'sgd':
      return tf.train.sgd(s.learningRate);
    case 'momentum':
      return tf.train.momentum(s.learningRate, s.momentum);
    case 'adam':
      return tf.train.adam(s.learningRate, s.beta1, s.beta2, s.epsilon);
    case 'adagrad':
      return tf.train.adagrad(s.learningRate, s.initialAccumulatorValue);
  }
}
