/**
 * `--wire auto`: before its first step a worker times whole-model pulls in
 * fp32, fp16 and int8 over its own link (the best of a few rounds each), and
 * takes the codec whose transfer is fastest for both directions: the links
 * the lab and real clusters give are symmetric, and each codec's work
 * (quantizing on one side, reading back on the other) is the same pushing as
 * pulling. Compression is taken only when it saves at least a fifth of the
 * fp32 time and a millisecond: on loopback the bytes cost almost nothing and
 * the quantizing would be pure overhead (as datacenter studies of gradient
 * compression find on fast links). Top-k is never chosen automatically: it
 * changes what training sees, the others round within their bounds.
 */
import type { WireCodec } from '@tamp/core';

export type AutoCandidate = 'fp32' | 'fp16' | 'int8';
export const AUTO_CANDIDATES: readonly AutoCandidate[] = ['fp32', 'fp16', 'int8'];

export interface WireChoice {
  readonly push: WireCodec;
  readonly pull: WireCodec;
  /** What was measured and why this codec: for the log and report.json. */
  readonly reason: string;
}

/** Compression must save this fraction of the fp32 time, and at least MIN_SAVING_MS. */
const MIN_SAVING = 0.2;
const MIN_SAVING_MS = 1;

/** The choice from each candidate's best pull time (ms) for `bytes` of fp32 values. */
export function chooseWire(times: Readonly<Record<AutoCandidate, number>>, bytes: number): WireChoice {
  const fp32 = times.fp32;
  let best: AutoCandidate = 'fp32';
  for (const c of AUTO_CANDIDATES) if (times[c] < times[best]) best = c;
  const saving = fp32 - times[best];
  const pays = best !== 'fp32' && saving >= MIN_SAVING * fp32 && saving >= MIN_SAVING_MS;
  const chosen: AutoCandidate = pays ? best : 'fp32';
  const measured = AUTO_CANDIDATES.map((c) => `${c} ${times[c].toFixed(1)} ms`).join(', ');
  const mbps = fp32 > 0 ? (bytes * 8) / (fp32 / 1000) / 1e6 : Infinity;
  const why = pays
    ? `${chosen} saves ${((saving / fp32) * 100).toFixed(0)}% of the fp32 transfer time`
    : best === 'fp32'
      ? 'fp32 was fastest: the link is fast enough that quantizing costs more than the bytes it saves'
      : `${best} would save only ${saving.toFixed(1)} ms (${((saving / fp32) * 100).toFixed(0)}%), under the ${MIN_SAVING * 100}% and ${MIN_SAVING_MS} ms it must save`;
  return {
    push: { kind: chosen },
    pull: { kind: chosen },
    reason: `${chosen} both ways: pulls of ${(bytes / 1e6).toFixed(2)} MB of parameters took ${measured} (fp32 ≈ ${mbps.toFixed(0)} Mbit/s); ${why}`,
  };
}
