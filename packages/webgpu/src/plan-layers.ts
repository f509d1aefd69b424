/**
 * One layer call of a plan: its output shape (TensorFlow's rules), its
 * weights checked against the layer, and the operations it adds. Returns the
 * tensor holding its output (view-only layers return their input tensor
 * under the new shape).
 */
import { ModelError } from '@tamp/core';
import { ACTIVATIONS, type Activation, type LayerContext, type Shape3, VIEW_ONLY_LAYERS, type Window, sizeOf, unsupported } from './plan-types.js';

type Out = { readonly id: number; readonly shape: readonly number[] };

function pair(value: unknown, what: string): [number, number] {
  const v = Array.isArray(value) ? value : [value, value];
  const a = Number(v[0]);
  const b = Number(v[1]);
  if (!Number.isInteger(a) || !Number.isInteger(b) || a < 1 || b < 1) throw new ModelError('MODEL_INVALID', `${what} is ${JSON.stringify(value)}, expected one or two positive whole numbers`);
  return [a, b];
}

function activationOf(value: unknown, ctx: LayerContext): Activation {
  const a = (value ?? 'linear') as string;
  if ((ACTIVATIONS as readonly string[]).includes(a)) return a as Activation;
  throw unsupported(`layer "${ctx.name}" (${ctx.cls}) uses the activation "${a}"`);
}

/** A config value in a message or comparison: strings as they are, anything else as JSON. */
function str(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Output size and leading padding of one spatial axis (TensorFlow's rules). */
function axis(input: number, size: number, stride: number, padding: string, ctx: LayerContext): { out: number; pad: number } {
  if (padding === 'valid') {
    const out = Math.floor((input - size) / stride) + 1;
    if (out < 1) throw new ModelError('MODEL_INVALID', `layer "${ctx.name}": a window of ${size} does not fit an input of ${input}`);
    return { out, pad: 0 };
  }
  if (padding === 'same') {
    const out = Math.ceil(input / stride);
    const total = Math.max((out - 1) * stride + size - input, 0);
    return { out, pad: Math.floor(total / 2) };
  }
  throw unsupported(`layer "${ctx.name}" (${ctx.cls}) uses padding "${padding}"`);
}

function image(ctx: LayerContext, i = 0): Shape3 {
  const s = ctx.inputs[i]?.shape ?? [];
  if (s.length !== 3) throw unsupported(`layer "${ctx.name}" (${ctx.cls}) gets an input of shape [${s.join(',')}]; it needs [height, width, channels]`);
  return s as unknown as Shape3;
}

/** Kernel size, strides and padding of a convolution or pooling window over the input. */
function windowOf(ctx: LayerContext, size: [number, number], strides: [number, number], outChannels: number): Window {
  const inShape = image(ctx);
  const padding = str(ctx.config.padding ?? 'valid');
  const y = axis(inShape[0], size[0], strides[0], padding, ctx);
  const x = axis(inShape[1], size[1], strides[1], padding, ctx);
  return { inShape, outShape: [y.out, x.out, outChannels], kernelSize: size, strides, padTop: y.pad, padLeft: x.pad };
}

function convWindow(ctx: LayerContext, outChannels: (inChannels: number) => number): Window {
  const c = ctx.config;
  const dilation = pair(c.dilation_rate ?? 1, `layer "${ctx.name}" dilation_rate`);
  if (dilation[0] !== 1 || dilation[1] !== 1) throw unsupported(`layer "${ctx.name}" (${ctx.cls}) uses dilation ${dilation.join('x')}`);
  if (c.groups !== undefined && c.groups !== 1) throw unsupported(`layer "${ctx.name}" (${ctx.cls}) uses grouped convolution`);
  const inShape = image(ctx);
  return windowOf(ctx, pair(c.kernel_size, `layer "${ctx.name}" kernel_size`), pair(c.strides ?? 1, `layer "${ctx.name}" strides`), outChannels(inShape[2]));
}

/** A softmax activation becomes its own operation after the layer's. */
function withActivation(ctx: LayerContext, activation: Activation, out: Out): Out {
  if (activation !== 'softmax') return out;
  return standalone(ctx, `${ctx.name}/softmax`, 'softmax', out);
}

function standalone(ctx: LayerContext, name: string, activation: Activation, input: Out): Out {
  if (activation === 'linear') return input;
  const id = ctx.tensor(input.shape);
  ctx.push({ kind: 'activation', name, inputs: [input.id], output: id, activation, lastDim: input.shape[input.shape.length - 1] as number, size: sizeOf(input.shape) });
  return { id, shape: input.shape };
}

function single(ctx: LayerContext): Out {
  if (ctx.inputs.length !== 1) throw unsupported(`layer "${ctx.name}" (${ctx.cls}) is called on ${ctx.inputs.length} tensors`);
  return ctx.inputs[0] as Out;
}

/** ZeroPadding2D's padding: n, [h, w] or [[top, bottom], [left, right]]. */
function padding2d(value: unknown, ctx: LayerContext): [number, number, number, number] {
  const v = value ?? 1;
  const whole = (n: unknown) => {
    if (!Number.isInteger(n) || (n as number) < 0) throw new ModelError('MODEL_INVALID', `layer "${ctx.name}" padding is ${JSON.stringify(value)}`);
    return n as number;
  };
  if (typeof v === 'number') return [whole(v), whole(v), whole(v), whole(v)];
  if (Array.isArray(v) && v.length === 2 && Array.isArray(v[0]) && Array.isArray(v[1])) return [whole(v[0][0]), whole(v[0][1]), whole(v[1][0]), whole(v[1][1])];
  if (Array.isArray(v) && v.length === 2) return [whole(v[0]), whole(v[0]), whole(v[1]), whole(v[1])];
  throw new ModelError('MODEL_INVALID', `layer "${ctx.name}" padding is ${JSON.stringify(value)}`);
}

export function planLayer(ctx: LayerContext): Out {
  const { cls, config: c, name } = ctx;
  if (VIEW_ONLY_LAYERS.has(cls)) {
    const input = single(ctx);
    if (cls === 'Flatten') return { id: input.id, shape: [sizeOf(input.shape)] };
    if (cls !== 'Reshape') return input;
    const target = (c.target_shape ?? c.targetShape) as number[];
    const known = target.filter((d) => d !== -1);
    const size = sizeOf(input.shape);
    const resolved = target.map((d) => (d === -1 ? size / sizeOf(known) : d));
    if (sizeOf(resolved) !== size || resolved.some((d) => !Number.isInteger(d))) throw new ModelError('MODEL_INVALID', `layer "${name}" reshapes [${input.shape.join(',')}] to [${target.join(',')}]`);
    return { id: input.id, shape: resolved };
  }
  if (cls === 'Add' || cls === 'Concatenate') return merge(ctx);
  const input = single(ctx);
  const hasBias = c.use_bias !== false;
  switch (cls) {
    case 'Dense': {
      if (input.shape.length !== 1) throw unsupported(`layer "${name}" (Dense) gets an input of shape [${input.shape.join(',')}]; add a Flatten before it`);
      const units = Number(c.units);
      const inFeatures = input.shape[0] as number;
      const kernel = ctx.weight(0, 'kernel', [inFeatures, units]);
      const bias = hasBias ? ctx.weight(1, 'bias', [units]) : undefined;
      const activation = activationOf(c.activation, ctx);
      const id = ctx.tensor([units]);
      ctx.push({ kind: 'dense', name, inputs: [input.id], output: id, inFeatures, units, kernel, bias, activation: activation === 'softmax' ? 'linear' : activation });
      return withActivation(ctx, activation, { id, shape: [units] });
    }
    case 'Conv2D': {
      const filters = Number(c.filters);
      const w = convWindow(ctx, () => filters);
      const kernel = ctx.weight(0, 'kernel', [w.kernelSize[0], w.kernelSize[1], w.inShape[2], filters]);
      const bias = hasBias ? ctx.weight(1, 'bias', [filters]) : undefined;
      const activation = activationOf(c.activation, ctx);
      const id = ctx.tensor(w.outShape);
      ctx.push({ kind: 'conv2d', name, inputs: [input.id], output: id, ...w, kernel, bias, activation: activation === 'softmax' ? 'linear' : activation });
      return withActivation(ctx, activation, { id, shape: w.outShape });
    }
    case 'DepthwiseConv2D':
    case 'SeparableConv2D': {
      const multiplier = Number(c.depth_multiplier ?? 1);
      if (!Number.isInteger(multiplier) || multiplier < 1) throw new ModelError('MODEL_INVALID', `layer "${name}" depth_multiplier is ${str(c.depth_multiplier)}`);
      const w = convWindow(ctx, (ch) => ch * multiplier);
      const kernel = ctx.weight(0, 'depthwise kernel', [w.kernelSize[0], w.kernelSize[1], w.inShape[2], multiplier]);
      const activation = activationOf(c.activation, ctx);
      const act = activation === 'softmax' ? 'linear' : activation;
      const separable = cls === 'SeparableConv2D';
      const bias = hasBias ? ctx.weight(separable ? 2 : 1, 'bias', [separable ? Number(c.filters) : w.outShape[2]]) : undefined;
      const id = ctx.tensor(w.outShape);
      ctx.push({ kind: 'depthwise', name: separable ? `${name}/depthwise` : name, inputs: [input.id], output: id, ...w, multiplier, kernel, bias: separable ? undefined : bias, activation: separable ? 'linear' : act });
      if (!separable) return withActivation(ctx, activation, { id, shape: w.outShape });
      // The pointwise half: a 1x1 convolution over the depthwise output.
      const filters = Number(c.filters);
      const mid = w.outShape;
      const pointwise = ctx.weight(1, 'pointwise kernel', [1, 1, mid[2], filters]);
      const outShape: Shape3 = [mid[0], mid[1], filters];
      const out = ctx.tensor(outShape);
      ctx.push({ kind: 'conv2d', name: `${name}/pointwise`, inputs: [id], output: out, inShape: mid, outShape, kernelSize: [1, 1], strides: [1, 1], padTop: 0, padLeft: 0, kernel: pointwise, bias, activation: act });
      return withActivation(ctx, activation, { id: out, shape: outShape });
    }
    case 'BatchNormalization': {
      const ax: unknown = Array.isArray(c.axis) && c.axis.length === 1 ? (c.axis as unknown[])[0] : (c.axis ?? -1);
      if (ax !== -1 && ax !== input.shape.length) throw unsupported(`layer "${name}" (BatchNormalization) normalises axis ${str(c.axis)}; only the last (channels) axis runs here`);
      const channels = input.shape[input.shape.length - 1] as number;
      let i = 0;
      const gamma = c.scale === false ? undefined : ctx.weight(i++, 'gamma', [channels]);
      const beta = c.center === false ? undefined : ctx.weight(i++, 'beta', [channels]);
      const mean = ctx.weight(i++, 'moving mean', [channels]);
      const variance = ctx.weight(i++, 'moving variance', [channels]);
      const id = ctx.tensor(input.shape);
      ctx.push({ kind: 'batchnorm', name, inputs: [input.id], output: id, channels, size: sizeOf(input.shape), gamma, beta, mean, variance, epsilon: Number(c.epsilon ?? 1e-3) });
      return { id, shape: input.shape };
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const poolSize = pair(c.pool_size ?? 2, `layer "${name}" pool_size`);
      const w = windowOf(ctx, poolSize, pair(c.strides ?? poolSize, `layer "${name}" strides`), image(ctx)[2]);
      const id = ctx.tensor(w.outShape);
      ctx.push({ kind: 'pool', name, inputs: [input.id], output: id, mode: cls === 'MaxPooling2D' ? 'max' : 'avg', inShape: w.inShape, outShape: w.outShape, poolSize, strides: w.strides, padTop: w.padTop, padLeft: w.padLeft });
      return { id, shape: w.outShape };
    }
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D': {
      const inShape = image(ctx);
      const shape = c.keepdims === true ? [1, 1, inShape[2]] : [inShape[2]];
      const id = ctx.tensor(shape);
      ctx.push({ kind: 'globalpool', name, inputs: [input.id], output: id, mode: cls === 'GlobalMaxPooling2D' ? 'max' : 'avg', inShape });
      return { id, shape };
    }
    case 'ZeroPadding2D': {
      const inShape = image(ctx);
      const [top, bottom, left, right] = padding2d(c.padding, ctx);
      const outShape: Shape3 = [inShape[0] + top + bottom, inShape[1] + left + right, inShape[2]];
      const id = ctx.tensor(outShape);
      ctx.push({ kind: 'pad', name, inputs: [input.id], output: id, inShape, outShape, padTop: top, padLeft: left });
      return { id, shape: outShape };
    }
    case 'UpSampling2D': {
      if ((c.interpolation ?? 'nearest') !== 'nearest') throw unsupported(`layer "${name}" (UpSampling2D) uses ${str(c.interpolation)} interpolation; only nearest runs here`);
      const inShape = image(ctx);
      const size = pair(c.size ?? 2, `layer "${name}" size`);
      const outShape: Shape3 = [inShape[0] * size[0], inShape[1] * size[1], inShape[2]];
      const id = ctx.tensor(outShape);
      ctx.push({ kind: 'upsample', name, inputs: [input.id], output: id, inShape, outShape });
      return { id, shape: outShape };
    }
    case 'Activation':
      return standalone(ctx, name, activationOf(c.activation, ctx), input);
    case 'ReLU': {
      const max = c.max_value ?? c.maxValue;
      if ((max !== undefined && max !== null && max !== 6) || (c.negative_slope ?? 0) !== 0 || (c.threshold ?? 0) !== 0) throw unsupported(`layer "${name}" (ReLU) with options other than max_value 6`);
      return standalone(ctx, name, max === 6 ? 'relu6' : 'relu', input);
    }
    case 'Softmax':
      if (c.axis !== undefined && c.axis !== -1 && c.axis !== input.shape.length) throw unsupported(`layer "${name}" (Softmax) over axis ${str(c.axis)}`);
      return standalone(ctx, name, 'softmax', input);
    default:
      throw unsupported(`layer "${name}" is a ${cls}`);
  }
}

/** Add and Concatenate: several inputs. */
function merge(ctx: LayerContext): Out {
  const { cls, name } = ctx;
  if (ctx.inputs.length < 2) throw new ModelError('MODEL_INVALID', `layer "${name}" (${cls}) has ${ctx.inputs.length} input`);
  const shapes = ctx.inputs.map((t) => t.shape);
  const first = shapes[0] as readonly number[];
  if (cls === 'Add') {
    if (shapes.some((s) => s.length !== first.length || s.some((d, i) => d !== first[i]))) {
      throw unsupported(`layer "${name}" (Add) adds shapes ${shapes.map((s) => `[${s.join(',')}]`).join(' and ')}; only equal shapes (no broadcasting) run here`);
    }
    const id = ctx.tensor(first);
    ctx.push({ kind: 'add', name, inputs: ctx.inputs.map((t) => t.id), output: id, size: sizeOf(first) });
    return { id, shape: first };
  }
  // Keras counts the batch axis: axis k > 0 is k − 1 of one sample's shape; negative axes count from the end.
  const raw = Number(ctx.config.axis ?? -1);
  const ax = raw < 0 ? first.length + raw : raw - 1;
  if (!Number.isInteger(ax) || ax < 0 || ax >= first.length) throw new ModelError('MODEL_INVALID', `layer "${name}" (Concatenate) axis ${raw} is outside shape [${first.join(',')}]`);
  for (const s of shapes) {
    if (s.length !== first.length || s.some((d, i) => i !== ax && d !== first[i])) throw new ModelError('MODEL_INVALID', `layer "${name}" (Concatenate) joins shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')} along axis ${raw}`);
  }
  const shape = first.map((d, i) => (i === ax ? shapes.reduce((n, s) => n + (s[ax] as number), 0) : d));
  const outer = sizeOf(first.slice(0, ax));
  const id = ctx.tensor(shape);
  ctx.push({ kind: 'concat', name, inputs: ctx.inputs.map((t) => t.id), output: id, outer, widths: shapes.map((s) => sizeOf(s.slice(ax))) });
  return { id, shape };
}
