/**
 * Batch norm folded into the layer before it, before anything is quantized
 * (quantizing first would round the kernel, then scale the rounding error
 * by γ/σ per channel). At inference a BatchNormalization after a linear
 * Conv2D, DepthwiseConv2D, SeparableConv2D (its pointwise kernel) or Dense
 * is y = m_c·(x − mean_c) + β_c with m_c = γ_c / √(var_c + ε), so the layer's
 * kernel is scaled by m_c along its output channels and its bias becomes
 * (b_c − mean_c)·m_c + β_c. The topology is rewritten: the BN layer is gone,
 * the convolution gets a bias (use_bias true) and every reader of the BN's
 * output reads the convolution's. The result is an ordinary tfjs model:
 * stock tf.loadLayersModel, Tamp's planner and the compressor all take it.
 *
 * A BN is left alone when folding would change what the model computes: its
 * producer has a nonlinear activation, is another kind of layer, is called
 * more than once, or has other readers; or the BN normalises another axis.
 */

export interface FoldWeight {
  readonly name: string;
  readonly shape: number[];
  readonly data: Float32Array;
}

interface Layer {
  class_name: string;
  config: Record<string, unknown>;
  name?: string;
  inbound_nodes?: unknown[];
}

const FOLDS_INTO = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Dense']);

function nameOf(l: Layer): string {
  const n = l.config.name ?? l.name;
  return typeof n === 'string' ? n : JSON.stringify(n);
}

/** Weights a layer holds, in order, and whether each is trainable (tfjs's defaults for missing keys). */
function roles(l: Layer): boolean[] {
  const c = l.config;
  const bias = c.use_bias === false ? [] : [true];
  let r: boolean[] = [];
  if (l.class_name === 'SeparableConv2D') r = [true, true, ...bias];
  else if (FOLDS_INTO.has(l.class_name)) r = [true, ...bias];
  else if (l.class_name === 'BatchNormalization') r = [...(c.scale === false ? [] : [true]), ...(c.center === false ? [] : [true]), false, false];
  return c.trainable === false ? r.map(() => false) : r;
}

/** The model's weight order (model.getWeights()): trainable weights layer by layer, then the non-trainable ones. */
function positions(layers: readonly Layer[]): { at: number[][]; count: number } {
  const all = layers.map(roles);
  let t = 0;
  let n = all.reduce((k, r) => k + r.filter(Boolean).length, 0);
  const at = all.map((r) => r.map((trainable) => (trainable ? t++ : n++)));
  return { at, count: n };
}

/** References [layer, node, tensor, kwargs] anywhere in a value. */
function references(value: unknown, out: unknown[][] = []): unknown[][] {
  if (Array.isArray(value)) {
    if (value.length >= 3 && typeof value[0] === 'string' && typeof value[1] === 'number') out.push(value);
    else for (const v of value) references(v, out);
  }
  return out;
}

/** The folded topology and weights, and the names of the BN layers folded. */
export function foldBatchNorm(topology: unknown, weights: readonly FoldWeight[]): { modelTopology: unknown; weights: FoldWeight[]; folded: string[] } {
  const topo = structuredClone(topology) as { class_name?: string; config?: { layers?: Layer[]; output_layers?: unknown } | Layer[]; model_config?: unknown };
  const root = (topo.model_config !== undefined && topo.class_name === undefined ? topo.model_config : topo) as typeof topo;
  const config = root.config;
  const layers = Array.isArray(config) ? config : config?.layers;
  const sequential = root.class_name === 'Sequential';
  if (!Array.isArray(layers) || (!sequential && root.class_name !== 'Model' && root.class_name !== 'Functional')) return { modelTopology: topology, weights: [...weights], folded: [] };
  const order = positions(layers);
  if (order.count !== weights.length) return { modelTopology: topology, weights: [...weights], folded: [] };
  const groups: FoldWeight[][] = order.at.map((ps) => ps.map((p) => weights[p] as FoldWeight));
  const outputs = Array.isArray(config) ? [] : references(config?.output_layers);
  const readers = (name: string) => layers.flatMap((l) => references(l.inbound_nodes).filter((r) => r[0] === name)).length + outputs.filter((r) => r[0] === name).length;
  const folded: string[] = [];
  const removed = new Set<number>();
  layers.forEach((bn, j) => {
    if (bn.class_name !== 'BatchNormalization' || j === 0) return;
    const c = bn.config;
    const axis: unknown = Array.isArray(c.axis) && c.axis.length === 1 ? (c.axis as unknown[])[0] : (c.axis ?? -1);
    let p: number;
    if (sequential) p = j - 1;
    else {
      const ins = references(bn.inbound_nodes);
      if ((bn.inbound_nodes ?? []).length !== 1 || ins.length !== 1) return;
      p = layers.findIndex((l) => nameOf(l) === (ins[0] as unknown[])[0]);
    }
    const prev = layers[p];
    if (prev === undefined || removed.has(p) || !FOLDS_INTO.has(prev.class_name)) return;
    if (!sequential && ((prev.inbound_nodes ?? []).length !== 1 || readers(nameOf(prev)) !== 1)) return;
    if ((prev.config.activation ?? 'linear') !== 'linear') return;
    const w = groups[p] as FoldWeight[];
    const kernel = w[prev.class_name === 'SeparableConv2D' ? 1 : 0] as FoldWeight;
    const rank = kernel.shape.length;
    if (axis !== -1 && axis !== rank - 1 && !(prev.class_name === 'Dense' && axis === 1)) return;
    // Output channels: in × multiplier for a depthwise kernel (the last two axes), else the last axis.
    const C = prev.class_name === 'DepthwiseConv2D' ? (kernel.shape[2] as number) * (kernel.shape[3] as number) : (kernel.shape[rank - 1] as number);
    const bnw = groups[j] as FoldWeight[];
    let k = 0;
    const gamma = c.scale === false ? undefined : bnw[k++]?.data;
    const beta = c.center === false ? undefined : bnw[k++]?.data;
    const mean = bnw[k++]?.data as Float32Array;
    const variance = bnw[k++]?.data as Float32Array;
    const epsilon = Number(c.epsilon ?? 1e-3);
    const m = Float64Array.from({ length: C }, (_, i) => (gamma?.[i] ?? 1) / Math.sqrt((variance[i] as number) + epsilon));
    const scaled = Float32Array.from(kernel.data, (v, i) => v * (m[i % C] as number));
    const hasBias = prev.config.use_bias !== false;
    const oldBias = hasBias ? (w[w.length - 1] as FoldWeight).data : undefined;
    const bias = Float32Array.from({ length: C }, (_, i) => ((oldBias?.[i] ?? 0) - (mean[i] as number)) * (m[i] as number) + (beta?.[i] ?? 0));
    const kernelAt = w.indexOf(kernel);
    w[kernelAt] = { ...kernel, data: scaled };
    const biasWeight = { name: `${nameOf(prev)}/bias`, shape: [C], data: bias };
    if (hasBias) w[w.length - 1] = { ...(w[w.length - 1] as FoldWeight), data: bias };
    else w.push(biasWeight);
    prev.config.use_bias = true;
    groups[j] = [];
    removed.add(j);
    folded.push(nameOf(bn));
    // Readers of the BN now read the layer before it (called once, so node 0).
    const bnName = nameOf(bn);
    for (const r of [...layers.flatMap((l) => references(l.inbound_nodes)), ...outputs]) {
      if (r[0] === bnName) {
        r[0] = nameOf(prev);
        r[1] = 0;
      }
    }
  });
  const kept = layers.filter((_, i) => !removed.has(i));
  if (Array.isArray(config)) root.config = kept;
  else if (config !== undefined) config.layers = kept;
  const keptGroups = groups.filter((_, i) => !removed.has(i));
  const after = positions(kept);
  const out = new Array<FoldWeight>(after.count);
  keptGroups.forEach((g, i) => g.forEach((w, k) => (out[(after.at[i] as number[])[k] as number] = w)));
  return { modelTopology: topo, weights: out, folded };
}
