/**
 * Deep Gradient Compression's sender side (Lin et al., ICLR 2018), which keeps
 * accuracy while sending 0.1-1% of each gradient:
 *  - momentum correction: accumulate the velocity u = m·u + g, not the raw
 *    gradient, into v = v + u, and send the top-k of v;
 *  - momentum factor masking: zero u where it was sent, so stale momentum
 *    does not push the same coordinates again, and take what was sent from
 *    v (zero but for what the wire's half precision rounded off);
 *  - local gradient clipping (`clipScale`): scale a worker's gradient to a
 *    norm bound before it is accumulated;
 *  - warm-up: start dense and reach the target density in stages, each a
 *    quarter of the last, over the first `warmupSteps` steps.
 * With momentum 0 this is plain top-k with error feedback. When momentum
 * correction is on, the momentum lives here, and the receiver applies plain
 * SGD to what arrives.
 */
import { encodeTopkAt, topkCount, topkPositions } from './topk.js';

export interface DgcOptions {
  /** Target density: the fraction of each tensor sent once warm-up is over (0.01 = 1%). */
  readonly fraction: number;
  /** Momentum of the velocity accumulated here (0: plain error feedback). */
  readonly momentum: number;
  /** Steps over which density falls from 1 to `fraction` (0: no warm-up). */
  readonly warmupSteps: number;
}

/** Density at `step`: 1, 1/4, 1/16, ... in equal stages over the warm-up, never below the target. */
export function dgcDensity(step: number, options: DgcOptions): number {
  if (step >= options.warmupSteps) return options.fraction;
  const stages = Math.max(1, Math.ceil(Math.log(1 / options.fraction) / Math.log(4)));
  const stage = Math.floor((step / options.warmupSteps) * (stages + 1));
  return Math.max(options.fraction, 0.25 ** stage);
}

/** The factor that scales gradients of total L2 norm `norm` down to `maxNorm` (1 when already within). */
export function clipScale(grads: readonly Float32Array[], maxNorm: number): number {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += (g[i] as number) * (g[i] as number);
  const norm = Math.sqrt(sq);
  return norm > maxNorm && norm > 0 ? maxNorm / norm : 1;
}

/** Whether a job's workers keep the momentum (DGC's momentum correction), or Adam's second moment (the Adam correction), and why: for report.json and the log. */
export interface MomentumCorrection {
  readonly on: boolean;
  readonly why: string;
}

/**
 * Momentum correction is DGC's for momentum SGD: on for a top-k (or auto) push
 * codec with the momentum optimizer unless `off`; the workers then keep the
 * momentum and the parameter servers apply plain SGD to what they push, so
 * momentum is applied once. Adam and Adagrad keep their state on the servers
 * (DGC defines no correction for them) and top-k sends error-fed gradients.
 */
export function dgcMomentumCorrection(optimizer: { readonly name: string; readonly momentum: number }, push: { readonly kind: string } | 'auto', off: boolean): MomentumCorrection {
  const codec = push === 'auto' ? 'auto' : push.kind;
  if (codec !== 'topk' && codec !== 'auto') return { on: false, why: `${codec} pushes are dense: the parameter servers apply the ${optimizer.name} optimizer as usual` };
  if (optimizer.name !== 'momentum' || !(optimizer.momentum > 0)) {
    if (optimizer.name === 'adam') return { on: false, why: "DGC defines momentum correction for momentum SGD only; with adam, top-k's Adam correction applies instead (wireAdamCorrection)" };
    const state = optimizer.name === 'sgd' ? 'sgd has no momentum to move' : `DGC defines momentum correction for momentum SGD only; the parameter servers keep ${optimizer.name}'s state`;
    return { on: false, why: `${state}, and top-k sends error-fed gradients` };
  }
  if (off) return { on: false, why: 'turned off (--wire-no-momentum-correction): the parameter servers keep the momentum, and top-k sends error-fed gradients' };
  const when = codec === 'auto' ? 'a worker whose link makes --wire auto pick top-k keeps' : 'the workers keep';
  return { on: true, why: `${when} the momentum (m=${optimizer.momentum}) and push DGC's momentum-corrected top-k; the parameter servers apply plain SGD to it, so momentum is applied once` };
}

/**
 * Tamp's Adam correction for top-k (ARCHITECTURE.md, the wire section): on
 * for a top-k (or auto) push codec with the Adam optimizer unless `off`.
 * DGC's corrections are for momentum SGD. With Adam on the parameter servers,
 * a coordinate that top-k sends once in about 1/F steps arrives as the sum of
 * those steps' gradients, and Adam's second moment, fed that burst, shrinks
 * it: the steps after it move the coordinate about lr/√(1−β2) (31.6·lr)
 * whatever the burst's size, where 1/F dense steps would move it about
 * (1/F)·lr. So, as DGC's momentum correction keeps the momentum on the
 * workers, a worker pushing top-k keeps Adam's moments (AdamDirection) and
 * accumulates Adam's update direction, not the gradient; the servers apply
 * plain SGD at the job's learning rate to those pushes (marked
 * PushRequest.adam_corrected), so a burst moves a coordinate as far as the
 * steps it stands for. Dense pushes, including those of a --wire auto worker
 * whose link took fp32, fp16, int8 or int4, are plain gradients that the
 * servers apply with Adam as usual: the correction changes nothing for them.
 */
export type AdamCorrection = MomentumCorrection;

export function dgcAdamCorrection(optimizer: { readonly name: string }, push: { readonly kind: string } | 'auto', off: boolean): AdamCorrection {
  if (optimizer.name !== 'adam') return { on: false, why: `the optimizer is ${optimizer.name}, not adam` };
  if (push !== 'auto' && push.kind !== 'topk') return { on: false, why: `${push.kind} pushes are dense: the parameter servers apply Adam as usual` };
  if (off) return { on: false, why: 'turned off (--wire-no-adam-correction): the parameter servers keep both of Adam\'s moments, and top-k sends error-fed gradients' };
  const moments =
    "keeps Adam's moments (from its own dense gradients) and pushes the top-k of Adam's accumulated update direction; the parameter servers apply plain SGD to it, so a coordinate sent once in many steps moves as far as those steps would have moved it";
  if (push === 'auto') {
    return {
      on: true,
      why: `a worker whose link makes --wire auto pick top-k ${moments}; dense pushes get Adam on the parameter servers as usual`,
    };
  }
  return { on: true, why: `each worker ${moments}` };
}

/**
 * A worker's half of the Adam correction (dgcAdamCorrection), per key:
 * m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², m̂ = m / (1−β1ᵗ),
 * v̂ = v / (1−β2ᵗ) with t the key's steps, and the direction returned is
 * m̂ / (√v̂ + ε): what the parameter servers' Adam (optimizers/adam.ts, the
 * same formula) would move the coordinate by, per unit of learning rate, so
 * dense it is the job's own Adam. (An AMSGrad form, m̂ / (√max v̂ + ε), kept
 * late steps smaller than fp32's Adam takes: over eight seeds in sync mode
 * top-k lost 0.69 points to fp32 on LeNet-300-100 with it and 0.29 with
 * this, and five seeds of LeNet-5 saw no difference; BENCHMARKS.md,
 * "wire:seeds-sync".)
 */
export class AdamDirection {
  private readonly states = new Map<string, { m: Float32Array; v: Float32Array; out: Float32Array; t: number }>();

  constructor(
    readonly beta1: number,
    readonly beta2: number,
    readonly epsilon: number,
  ) {}

  /**
   * Adam's direction for this key after `grad`. `grad` is not changed; the
   * array returned is this key's own, overwritten by its next call
   * (DgcSender.encode reads it at once).
   */
  direction(key: string, grad: Float32Array): Float32Array {
    const n = grad.length;
    let s = this.states.get(key);
    if (s === undefined || s.v.length !== n) {
      s = { m: new Float32Array(n), v: new Float32Array(n), out: new Float32Array(n), t: 0 };
      this.states.set(key, s);
    }
    s.t += 1;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const invCorrection1 = 1 / (1 - b1 ** s.t);
    const invCorrection2 = 1 / (1 - b2 ** s.t);
    const eps = this.epsilon;
    const { m, v, out } = s;
    for (let i = 0; i < n; i++) {
      const g = grad[i] as number;
      const mi = b1 * (m[i] as number) + (1 - b1) * g;
      m[i] = mi;
      const vi = b2 * (v[i] as number) + (1 - b2) * g * g;
      v[i] = vi;
      out[i] = (mi * invCorrection1) / (Math.sqrt(vi * invCorrection2) + eps);
    }
    return out;
  }

  /** This key's steps so far (0: none). */
  steps(key: string): number {
    return this.states.get(key)?.t ?? 0;
  }

  reset(): void {
    this.states.clear();
  }
}

export class DgcSender {
  private readonly velocity = new Map<string, Float32Array>();
  private readonly accumulated = new Map<string, Float32Array>();

  constructor(readonly options: DgcOptions) {}

  private state(map: Map<string, Float32Array>, key: string, n: number): Float32Array {
    let a = map.get(key);
    if (a === undefined || a.length !== n) {
      a = new Float32Array(n);
      map.set(key, a);
    }
    return a;
  }

  /**
   * Accumulate `grad` (already clipped and scaled by the caller) for `key`
   * and encode what is sent at `step`: the top-k at the step's density, or
   * all of it when `whole` (a bias: PushEncoder's `sparseBiases`). A tensor
   * sent all at once (whole, or at the dense start of the warm-up) keeps its
   * momentum unmasked: momentum SGD on the receiver's side.
   */
  encode(key: string, grad: Float32Array, step: number, whole = false): Uint8Array {
    const n = grad.length;
    const u = this.state(this.velocity, key, n);
    const v = this.state(this.accumulated, key, n);
    const m = this.options.momentum;
    for (let i = 0; i < n; i++) {
      const ui = m * (u[i] as number) + (grad[i] as number);
      u[i] = ui;
      v[i] = (v[i] as number) + ui;
    }
    const positions = topkPositions(v, topkCount(n, whole ? 1 : dgcDensity(step, this.options)));
    const sent = new Float32Array(positions.length);
    const bytes = encodeTopkAt(v, positions, sent);
    const all = positions.length === n;
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i] as number;
      // What half precision rounded off stays owed (error feedback); the velocity is masked where it was sent,
      // unless all of the tensor went (a bias each step, every tensor at the warm-up's dense start): then, as for
      // DGC's dense tensors, what is sent is the velocity itself (momentum SGD exactly), and masking would leave it
      // no momentum at all.
      // A non-finite accumulation goes as a NaN scale, which the receiver refuses: it is dropped, not kept forever.
      const s = sent[i] as number;
      v[p] = Number.isFinite(s) ? (v[p] as number) - s : 0;
      if (!all) u[p] = 0;
    }
    return bytes;
  }

  /** What is accumulated but not yet sent for `key`. */
  pending(key: string): Float32Array | undefined {
    return this.accumulated.get(key);
  }

  reset(): void {
    this.velocity.clear();
    this.accumulated.clear();
  }
}
