/**
 * A Keras (tfjs LayersModel) topology as a graph: every layer call ("node")
 * in an order where each node comes after the nodes that feed it, with the
 * names of the tensors it reads and writes, and where each layer's weights
 * sit in the model's weight list (the order of model.getWeights(): every
 * trainable weight, layer by layer, then every non-trainable one, such as
 * batch norm's moving statistics, layer by layer). Sequential models become a chain; functional models ("Model",
 * "Functional") follow their inbound_nodes, so residual blocks and
 * concatenations plan like any other layer.
 */
import { ModelError } from '@tamp/core';

export interface KerasLayer {
  readonly class_name: string;
  readonly config: Record<string, unknown>;
  readonly name?: string;
  readonly inbound_nodes?: unknown[];
}

export interface GraphNode {
  readonly layer: KerasLayer;
  readonly name: string;
  /** Tensor keys ("layer:node:index") this call reads, in order. */
  readonly inputs: readonly string[];
  readonly output: string;
  /** Where each of the layer's weights (in the order the layer creates them) is in the model's weight list. */
  readonly weights: readonly number[];
}

export interface Graph {
  readonly name: string;
  /** Shape of one sample (the batch axis dropped). */
  readonly inputShape: readonly number[];
  readonly input: string;
  readonly output: string;
  /** Layer calls in an order where every node follows the nodes that feed it. */
  readonly nodes: readonly GraphNode[];
  readonly weightCount: number;
}

/** Weights a layer creates, in order, and whether each is trainable (from its config alone, tfjs's defaults when a key is missing). */
export function layerWeights(layer: KerasLayer): boolean[] {
  const c = layer.config;
  const frozen = c.trainable === false;
  const bias = c.use_bias === false ? [] : [true];
  let roles: boolean[];
  switch (layer.class_name) {
    case 'Dense':
    case 'Conv2D':
    case 'DepthwiseConv2D':
      roles = [true, ...bias];
      break;
    case 'SeparableConv2D':
      roles = [true, true, ...bias];
      break;
    case 'BatchNormalization':
      roles = [...(c.scale === false ? [] : [true]), ...(c.center === false ? [] : [true]), false, false];
      break;
    default:
      roles = [];
  }
  return frozen ? roles.map(() => false) : roles;
}

/** Each layer's weight positions: trainable weights first (layer by layer), then the others. */
export function weightPositions(layers: readonly KerasLayer[]): { positions: number[][]; count: number } {
  const roles = layers.map(layerWeights);
  const trainable = roles.reduce((n, r) => n + r.filter(Boolean).length, 0);
  let t = 0;
  let n = trainable;
  const positions = roles.map((r) => r.map((isTrainable) => (isTrainable ? t++ : n++)));
  return { positions, count: n };
}

export function layerName(layer: KerasLayer): string {
  const n = layer.config.name ?? layer.name ?? layer.class_name;
  return typeof n === 'string' ? n : JSON.stringify(n);
}

function key(name: unknown, node: unknown, index: unknown): string {
  return `${String(name)}:${Number(node ?? 0)}:${Number(index ?? 0)}`;
}

/** Tensor keys of one inbound node: tfjs/Keras 2 lists [layer, node, tensor, kwargs]; Keras 3 nests keras_history in args. */
function inboundTensors(node: unknown): string[] {
  if (Array.isArray(node)) {
    if (node.length >= 3 && typeof node[0] === 'string' && typeof node[1] === 'number') return [key(node[0], node[1], node[2])];
    return node.flatMap(inboundTensors);
  }
  if (node !== null && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (Array.isArray(o.keras_history)) return [key(o.keras_history[0], o.keras_history[1], o.keras_history[2])];
    return Object.entries(o)
      .filter(([k]) => k !== 'kwargs')
      .flatMap(([, v]) => inboundTensors(v));
  }
  return [];
}

/** input_layers / output_layers: one [name, node, index] or a list of them. */
function endpoints(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  if (value.length >= 1 && typeof value[0] === 'string') return [key(value[0], value[1], value[2])];
  return value.flatMap(endpoints);
}

function declaredShape(layer: KerasLayer, unsupported: (what: string) => ModelError): number[] {
  const c = layer.config;
  const declared = (c.batch_input_shape ?? c.batchInputShape ?? c.batch_shape) as Array<number | null> | undefined;
  if (!Array.isArray(declared)) throw new ModelError('MODEL_INVALID', `the first layer ("${layerName(layer)}") declares no input shape`);
  const dims = declared.slice(1);
  if (dims.some((d) => d === null || !Number.isInteger(d) || (d as number) < 1)) throw unsupported(`the input shape [${declared.map(String).join(',')}] has unknown dimensions`);
  return dims as number[];
}

export function modelGraph(topology: unknown, unsupported: (what: string) => ModelError): Graph {
  const t = topology as { class_name?: string; config?: Record<string, unknown> | KerasLayer[]; model_config?: unknown } | null;
  if (t === null || typeof t !== 'object') throw new ModelError('MODEL_INVALID', 'the model has no topology');
  if (t.model_config !== undefined && t.class_name === undefined) return modelGraph(t.model_config, unsupported);
  const config = t.config;
  const layers = (Array.isArray(config) ? config : config?.layers) as KerasLayer[] | undefined;
  if (!Array.isArray(layers)) throw new ModelError('MODEL_INVALID', `the topology (${String(t.class_name)}) lists no layers`);
  if (layers.length === 0) throw new ModelError('MODEL_INVALID', 'the model has no layers');
  const name = (Array.isArray(config) ? undefined : (config?.name as string | undefined)) ?? 'model';
  const { positions, count: weights } = weightPositions(layers);

  if (t.class_name === 'Sequential') {
    const inputShape = declaredShape(layers[0] as KerasLayer, unsupported);
    let previous = 'input:0:0';
    const nodes = layers.map((layer, i): GraphNode => {
      const output = key(layerName(layer), 0, 0);
      const node = { layer, name: layerName(layer), inputs: [previous], output, weights: positions[i] as number[] };
      previous = output;
      return node;
    });
    return { name, inputShape, input: 'input:0:0', output: previous, nodes, weightCount: weights };
  }
  if (t.class_name !== 'Model' && t.class_name !== 'Functional') throw unsupported(`a ${String(t.class_name)} model`);

  const c = config as Record<string, unknown>;
  const inputs = endpoints(c.input_layers);
  const outputs = endpoints(c.output_layers);
  if (inputs.length !== 1 || outputs.length !== 1) throw unsupported(`a model with ${inputs.length} inputs and ${outputs.length} outputs (one of each runs here)`);
  const inputLayer = layers.find((l) => `${layerName(l)}:0:0` === inputs[0]);
  if (inputLayer === undefined) throw new ModelError('MODEL_INVALID', `the model's input "${inputs[0]}" is not one of its layers`);
  const inputShape = declaredShape(inputLayer, unsupported);
  // Every call of every layer (a layer applied twice shares its weights), InputLayers aside.
  const pending: GraphNode[] = [];
  layers.forEach((layer, i) => {
    if (layer === inputLayer || layer.class_name === 'InputLayer') return;
    (layer.inbound_nodes ?? []).forEach((inbound, n) => {
      const ins = inboundTensors(inbound);
      if (ins.length === 0) throw new ModelError('MODEL_INVALID', `layer "${layerName(layer)}" has a call with no inputs`);
      pending.push({ layer, name: layerName(layer), inputs: ins, output: key(layerName(layer), n, 0), weights: positions[i] as number[] });
    });
  });
  const available = new Set<string>([inputs[0] as string]);
  const nodes: GraphNode[] = [];
  while (pending.length > 0) {
    const ready = pending.findIndex((n) => n.inputs.every((k) => available.has(k)));
    if (ready < 0) {
      const stuck = pending[0] as GraphNode;
      const missing = stuck.inputs.find((k) => !available.has(k));
      throw new ModelError('MODEL_INVALID', `layer "${stuck.name}" reads "${missing}", which no layer of the model computes (or the layers form a cycle)`);
    }
    const [node] = pending.splice(ready, 1) as [GraphNode];
    nodes.push(node);
    available.add(node.output);
  }
  if (!available.has(outputs[0] as string)) throw new ModelError('MODEL_INVALID', `the model's output "${outputs[0]}" is computed by none of its layers`);
  // Only what the output depends on runs (a branch that leads nowhere costs nothing).
  const needed = new Set<string>([outputs[0] as string]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i] as GraphNode;
    if (needed.has(n.output)) for (const k of n.inputs) needed.add(k);
  }
  const used = nodes.filter((n) => needed.has(n.output));
  return { name, inputShape, input: inputs[0] as string, output: outputs[0] as string, nodes: used, weightCount: weights };
}
