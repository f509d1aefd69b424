/**
 * The plan as the GPU runs it: operations merged where one dispatch can do
 * the work of several (ARCHITECTURE.md, @tamp/webgpu).
 *
 *  - ZeroPadding2D before a convolution becomes the convolution's padding
 *    (out-of-range reads are zeros either way);
 *  - BatchNormalization after a convolution, depthwise convolution or dense
 *    layer becomes a per-channel multiply-add in its epilogue (the bias is
 *    folded in at load: y = acc·scale_k·m_c + a_c);
 *  - an Add of a convolution's output and an earlier tensor becomes the
 *    convolution's residual input, added before the activation;
 *  - an elementwise activation after any of these joins its epilogue.
 *
 * A merge happens only when the intermediate tensor has no other reader and
 * is not the model's output, so nothing that is read goes missing.
 */
import type { BatchNormOp, Conv2dOp, DenseOp, DepthwiseOp, Elementwise, Op, Plan } from '../plan.js';

export type MainOp = Conv2dOp | DepthwiseOp | DenseOp;

export interface Step {
  readonly op: Op;
  /** Batch norm folded into the epilogue (conv, depthwise, dense). */
  bn: BatchNormOp | undefined;
  /** Tensor added before the activation (conv, depthwise). */
  residual: number | undefined;
  activation: Elementwise;
  inputs: number[];
  output: number;
  /** Padding added by a folded ZeroPadding2D, and the input shape before it. */
  window: Pick<Conv2dOp, 'inShape' | 'padTop' | 'padLeft'> | undefined;
  label: string;
  /** Merged into the step after it (a ZeroPadding2D folded into a convolution). */
  dropped: boolean;
}

function readers(plan: Plan): Map<number, number> {
  const count = new Map<number, number>([[plan.output, 1]]);
  for (const op of plan.ops) for (const t of op.inputs) count.set(t, (count.get(t) ?? 0) + 1);
  return count;
}

export function fusePlan(plan: Plan): Step[] {
  const count = readers(plan);
  const steps: Step[] = [];
  /** Step index that writes each tensor (the input: -1). */
  const producer = new Map<number, number>([[0, -1]]);
  const only = (t: number) => count.get(t) === 1 && t !== plan.output;
  const from = (t: number): Step | undefined => {
    const i = producer.get(t);
    return i === undefined || i < 0 ? undefined : steps[i];
  };
  const retarget = (step: Step, output: number, what: string) => {
    producer.delete(step.output);
    step.output = output;
    step.label = `${step.label} + ${what}`;
    producer.set(output, steps.indexOf(step));
  };
  for (const op of plan.ops) {
    const input = op.inputs[0] as number;
    const prev = from(input);
    if ((op.kind === 'conv2d' || op.kind === 'depthwise') && prev?.op.kind === 'pad' && only(input)) {
      const pad = prev.op;
      prev.dropped = true;
      push(op, [pad.inputs[0] as number], { inShape: pad.inShape, padTop: op.padTop + pad.padTop, padLeft: op.padLeft + pad.padLeft }, `${pad.name} + ${op.name}`);
      continue;
    }
    const main = prev !== undefined && only(input) && prev.activation === 'linear';
    if (op.kind === 'batchnorm' && main && isMain(prev.op) && prev.bn === undefined && prev.residual === undefined) {
      prev.bn = op;
      retarget(prev, op.output, op.name);
      continue;
    }
    if (op.kind === 'activation' && op.activation !== 'softmax' && main && (isMain(prev.op) || prev.op.kind === 'add' || prev.op.kind === 'batchnorm')) {
      prev.activation = op.activation;
      retarget(prev, op.output, op.name);
      continue;
    }
    if (op.kind === 'add' && op.inputs.length === 2) {
      const fused = [0, 1].some((side) => {
        const t = op.inputs[side] as number;
        const other = op.inputs[1 - side] as number;
        const s = from(t);
        if (s === undefined || !only(t) || s.activation !== 'linear' || s.residual !== undefined || (s.op.kind !== 'conv2d' && s.op.kind !== 'depthwise')) return false;
        // The other operand must exist when the convolution runs.
        if ((producer.get(other) ?? Infinity) >= steps.indexOf(s)) return false;
        s.residual = other;
        s.inputs.push(other);
        retarget(s, op.output, op.name);
        return true;
      });
      if (fused) continue;
    }
    push(op, [...op.inputs], undefined, op.name);
  }
  return steps.filter((s) => !s.dropped);

  function push(op: Op, inputs: number[], window: Step['window'], label: string): void {
    steps.push({ op, bn: undefined, residual: undefined, activation: 'activation' in op && op.kind !== 'activation' ? op.activation : 'linear', inputs, output: op.output, window, label, dropped: false });
    producer.set(op.output, steps.length - 1);
  }
}

export function isMain(op: Op): op is MainOp {
  return op.kind === 'conv2d' || op.kind === 'depthwise' || op.kind === 'dense';
}
