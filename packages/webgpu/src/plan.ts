/**
 * A Keras (tfjs LayersModel) topology turned into a list of operations with
 * every shape worked out: what the WGSL kernels, the float64 reference and
 * the error messages all read. Operations read and write numbered tensors
 * (tensor 0 is the model's input), so functional models with residual
 * additions and concatenations plan as well as chains. Layers that only
 * change the view (Flatten, Reshape, Dropout, InputLayer) leave no
 * operation: activations are NHWC and row-major, so their output is their
 * input tensor under another shape.
 *
 * Anything outside SUPPORTED is a ModelError('MODEL_UNSUPPORTED') naming the
 * layer and its class. The plan is unfused (batch norm, activations and
 * additions are their own operations); gpu/fuse.ts merges them for the GPU.
 */
import { ModelError } from '@tamp/core';
import type { TampTensor } from '@tamp/compress';
import { type Graph, modelGraph } from './plan-graph.js';
import { planLayer } from './plan-layers.js';
import { type LayerContext, type Op, type Plan, sizeOf, unsupported } from './plan-types.js';

export * from './plan-types.js';

/** Turn a topology and its weights into a plan; checks every weight's shape against its layer. */
export function planModel(topology: unknown, weights: readonly TampTensor[]): Plan {
  const graph: Graph = modelGraph(topology, unsupported);
  const ops: Op[] = [];
  const tensorSizes: number[] = [sizeOf(graph.inputShape)];
  const tensors = new Map<string, { id: number; shape: readonly number[] }>([[graph.input, { id: 0, shape: graph.inputShape }]]);
  for (const node of graph.nodes) {
    const c = node.layer.config;
    if (c.data_format !== undefined && c.data_format !== 'channels_last') throw unsupported(`layer "${node.name}" (${node.layer.class_name}) uses ${JSON.stringify(c.data_format)}`);
    const inputs = node.inputs.map((k) => tensors.get(k) as { id: number; shape: readonly number[] });
    const ctx: LayerContext = {
      name: node.name,
      cls: node.layer.class_name,
      config: c,
      inputs,
      weight(i, role, expected) {
        const index = node.weights[i] ?? weights.length;
        const w = weights[index];
        if (w === undefined) throw new ModelError('MODEL_INVALID', `layer "${node.name}" needs a ${role} of shape [${expected.join(',')}], but the model has only ${weights.length} weights`);
        if (w.shape.length !== expected.length || w.shape.some((d, j) => d !== expected[j])) {
          throw new ModelError('MODEL_INVALID', `layer "${node.name}": its ${role} "${w.name}" has shape [${w.shape.join(',')}], expected [${expected.join(',')}]`);
        }
        return index;
      },
      tensor(shape) {
        tensorSizes.push(sizeOf(shape));
        return tensorSizes.length - 1;
      },
      push(op) {
        ops.push(op);
      },
    };
    tensors.set(node.output, planLayer(ctx));
  }
  if (graph.weightCount !== weights.length) {
    const n = graph.weightCount;
    throw new ModelError('MODEL_INVALID', `the layers use ${n} weights, the model holds ${weights.length}${weights[n] === undefined ? '' : ` ("${weights[n]?.name}" is left over)`}`);
  }
  const out = tensors.get(graph.output) as { id: number; shape: readonly number[] };
  if (ops.length === 0) throw unsupported('the model computes nothing (no Dense, Conv2D, pooling or activation layer)');
  return { name: graph.name, inputShape: graph.inputShape, outputShape: out.shape, ops, tensorSizes, output: out.id, maxActivation: Math.max(...tensorSizes) };
}

