/**
 * `--wire auto`: before its first step a worker times whole-model pulls in
 * fp32, fp16, int8 and int4 over its own link (the best of a few rounds each), and
 * takes the codec whose transfer is fastest for both directions: the links
 * the lab and real clusters give are symmetric, and each codec's work
 * (quantizing on one side, reading back on the other) is the same pushing as
 * pulling. Compression is taken only when it saves at least a fifth of the
 * fp32 time and a millisecond in every round (its slowest against fp32's
 * fastest): on loopback the bytes cost almost nothing and
 * the quantizing would be pure overhead (as datacenter studies of gradient
 * compression find on fast links).
 *
 * Top-k changes what training sees (the others round within their bounds,
 * their losses carried by error feedback), so it is considered only on a link
 * so slow that int8 or int4 still leaves the step dominated by communication:
 * once one of them was chosen, the first push measures
 * the first step's compute (from the first pull's answer to the first push:
 * setting weights, gradients, reading back; tfjs's first-step warm-up makes
 * it an overestimate, which only makes top-k rarer), and when the chosen
 * codec's estimated wire time per step (a push and a pull, each about its pull
 * measured) exceeds TOPK_DOMINANCE times that compute, pushes go as topk:0.01
 * with DGC's warm-up (and momentum correction where the job has it); pulls
 * stay in the chosen codec.
 */
import { type WireCodec, isDeltaPull } from '@tamp/core/base';

export type AutoCandidate = 'fp32' | 'fp16' | 'int8' | 'int4';
export const AUTO_CANDIDATES: readonly AutoCandidate[] = ['fp32', 'fp16', 'int8', 'int4'];

export interface WireChoice {
  readonly push: WireCodec;
  readonly pull: WireCodec;
  /** What was measured and why this codec: for the log and report.json. */
  readonly reason: string;
}

/** Rounds of probe pulls per candidate codec, at most (the best of them counts). */
const AUTO_ROUNDS = 3;

/**
 * The probe: time `pull(kind)` (a whole-model pull in that codec, resolving
 * to the float32 bytes it carried) for each candidate, interleaved, up to
 * AUTO_ROUNDS rounds, dropping a codec once it cannot pay (mayStillPay) and
 * stopping when only fp32 is left; then chooseWire. The first change-coded
 * pull (int8 or int4) has no reference yet and comes as whole fp32 values
 * (pull-deltas.ts): a one-time cost, not the codec's, so it counts for the
 * fastest rounds only. `now` is the clock (ms; tests pass their own).
 */
export async function probeWire(
  pull: (kind: AutoCandidate) => Promise<number>,
  now: () => number = () => performance.now(),
): Promise<{ choice: WireChoice; times: Record<AutoCandidate, number> }> {
  const times: Record<AutoCandidate, number> = { fp32: Infinity, fp16: Infinity, int8: Infinity, int4: Infinity };
  const slowest: Record<AutoCandidate, number> = { fp32: 0, fp16: 0, int8: 0, int4: 0 };
  let referenced = false;
  let bytes = 0;
  let probing: readonly AutoCandidate[] = AUTO_CANDIDATES;
  for (let round = 0; round < AUTO_ROUNDS && probing.length > 1; round++) {
    for (const kind of probing) {
      const started = now();
      bytes = await pull(kind);
      const ms = now() - started;
      times[kind] = Math.min(times[kind], ms);
      if (isDeltaPull(kind) && !referenced) referenced = true;
      else slowest[kind] = Math.max(slowest[kind], ms);
    }
    // A codec that cannot pay now never will (more rounds only make that surer): not pulled again.
    probing = probing.filter((kind) => mayStillPay(kind, times.fp32, slowest));
  }
  return { choice: chooseWire(times, bytes, slowest), times };
}

/** Compression must save this fraction of the fp32 time, and at least MIN_SAVING_MS. */
const MIN_SAVING = 0.2;
const MIN_SAVING_MS = 1;

/** Whether a codec whose slowest round took `worst` ms pays against fp32's fastest: it saves the fifth and the millisecond. */
function pays(fp32Fastest: number, worst: number): boolean {
  const saving = fp32Fastest - worst;
  return saving >= MIN_SAVING * fp32Fastest && saving >= MIN_SAVING_MS;
}

/** Top-k is taken when the chosen int8 or int4's wire time per step exceeds this many times the step's compute. */
export const TOPK_DOMINANCE = 2;
/** The density --wire auto sends top-k at (DGC's 99% sparsity, the 0.01). */
export const AUTO_TOPK_FRACTION = 0.01;

/**
 * After the first step: `choice` (chooseWire's) with pushes as top-k when it
 * took int8 or int4 and that codec's estimated wire time per step (2 ×
 * `times[kind]`) exceeds TOPK_DOMINANCE × `computeMs`; otherwise `choice`
 * with why not added. `dgc` describes the sender's corrections for the
 * reason (warm-up, momentum correction).
 */
export function considerTopk(choice: WireChoice, times: Readonly<Record<AutoCandidate, number>>, computeMs: number, dgc: string): WireChoice {
  const kind = choice.push.kind;
  if (kind !== 'int8' && kind !== 'int4') return choice;
  const wire = 2 * times[kind];
  const estimate = `${kind} puts about ${wire.toFixed(0)} ms a step on the wire (a push and a pull) against ${computeMs.toFixed(0)} ms of compute in the first step`;
  if (!(wire > TOPK_DOMINANCE * computeMs)) return { ...choice, reason: `${choice.reason}; top-k not needed: ${estimate}, under ${TOPK_DOMINANCE}x` };
  return {
    push: { kind: 'topk', fraction: AUTO_TOPK_FRACTION },
    pull: choice.pull,
    reason: `${choice.reason}; then pushes as topk:${AUTO_TOPK_FRACTION}: ${estimate}, over ${TOPK_DOMINANCE}x, so the step is dominated by communication even in ${kind} (${dgc})`,
  };
}

/**
 * Whether `candidate` may still pay in a later round of the probe: until it
 * has a counted round (`slowest` 0: int8's first pull, which has no
 * reference yet, does not count), or while its slowest round saves the fifth
 * and the millisecond against fp32's fastest. More rounds only raise a
 * candidate's slowest and lower fp32's fastest, so one that cannot pay now
 * never will: the probe stops pulling it, and stops altogether when no
 * compressed codec can pay (on loopback, after a round or two).
 */
export function mayStillPay(candidate: AutoCandidate, fp32Fastest: number, slowest: Readonly<Record<AutoCandidate, number>>): boolean {
  if (candidate === 'fp32') return true;
  const worst = slowest[candidate];
  if (worst === 0) return true;
  return pays(fp32Fastest, worst);
}

/**
 * The choice from each candidate's best pull time (ms) for `bytes` of fp32
 * values. With `slowest` (each candidate's slowest round), a compressed
 * codec must save the fifth and the millisecond with its slowest round
 * against fp32's fastest: every round of it beat every round of fp32. On a
 * slow link that holds by a wide margin (int8 moves a quarter of the bytes,
 * int4 an eighth);
 * on a busy loopback, where a scheduling hiccup can make one fp32 round look
 * slow, a codec that merely won the best-of comparison by luck is not taken
 * (bench:wire once saw auto take fp16 on loopback and run 1.43x slower).
 */
export function chooseWire(times: Readonly<Record<AutoCandidate, number>>, bytes: number, slowest: Readonly<Record<AutoCandidate, number>> = times): WireChoice {
  const fp32 = times.fp32;
  let best: AutoCandidate = 'fp32';
  for (const c of AUTO_CANDIDATES) if (times[c] < times[best]) best = c;
  const saving = fp32 - slowest[best];
  const taken = best !== 'fp32' && pays(fp32, slowest[best]);
  const chosen: AutoCandidate = taken ? best : 'fp32';
  const spread = (c: AutoCandidate) => (slowest[c] > times[c] ? `-${slowest[c].toFixed(1)}` : '');
  const measured = AUTO_CANDIDATES.map((c) => `${c} ${times[c].toFixed(1)}${spread(c)} ms`).join(', ');
  const mbps = fp32 > 0 ? (bytes * 8) / (fp32 / 1000) / 1e6 : Infinity;
  const why = taken
    ? `${chosen} saves ${((saving / fp32) * 100).toFixed(0)}% of the fp32 transfer time`
    : best === 'fp32'
      ? 'fp32 was fastest: the link is fast enough that quantizing costs more than the bytes it saves'
      : `${best} would save only ${saving.toFixed(1)} ms (${((saving / fp32) * 100).toFixed(0)}%${slowest[best] > times[best] ? ', its slowest round against fp32\'s fastest' : ''}), under the ${MIN_SAVING * 100}% and ${MIN_SAVING_MS} ms it must save`;
  return {
    push: { kind: chosen },
    pull: { kind: chosen },
    reason: `${chosen} both ways: pulls of ${(bytes / 1e6).toFixed(2)} MB of parameters took ${measured} (fp32 ≈ ${mbps.toFixed(0)} Mbit/s); ${why}`,
  };
}
