import * as tf from '@tensorflow/tfjs-layers';

/** LeNet-300-100: 784-300-100-10, 266,610 parameters (LeCun et al. 1998; Deep Compression's Table 1). */
export function lenet300100(seed: number): tf.LayersModel {
  const init = (i: number) => tf.initializers.glorotUniform({ seed: seed + i });
  return tf.sequential({
    name: 'lenet-300-100',
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [784], units: 300, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ name: 'fc2', units: 100, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.dense({ name: 'fc3', units: 10, activation: 'softmax', kernelInitializer: init(3) }),
    ],
  });
}

/** 784-32-10: the tiny model tests and smoke runs train (25,450 parameters). */
export function mlpTiny(seed: number): tf.LayersModel {
  const init = (i: number) => tf.initializers.glorotUniform({ seed: seed + i });
  return tf.sequential({
    name: 'mlp-tiny',
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [784], units: 32, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ name: 'fc2', units: 10, activation: 'softmax', kernelInitializer: init(2) }),
    ],
  });
}

/**
 * LeNet-5 as in Caffe's examples/mnist (the variant Deep Compression used):
 * conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, dense 500 + ReLU, dense 10.
 * Caffe's convolutions have no activation; neither do these. 431,080 parameters.
 */
export function lenet5(seed: number): tf.LayersModel {
  const init = (i: number) => tf.initializers.glorotUniform({ seed: seed + i });
  return tf.sequential({
    name: 'lenet-5',
    layers: [
      tf.layers.conv2d({ name: 'conv1', inputShape: [28, 28, 1], filters: 20, kernelSize: 5, kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2, strides: 2 }),
      tf.layers.conv2d({ name: 'conv2', filters: 50, kernelSize: 5, kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2, strides: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ name: 'fc1', units: 500, activation: 'relu', kernelInitializer: init(3) }),
      tf.layers.dense({ name: 'fc2', units: 10, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
}
