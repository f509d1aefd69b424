/**
 * Progress of a cluster job (a local cluster's launcher, or the chief role).
 * Until the workers take their first step the job's status shows the same
 * step over and over (on a pipe, a "done":0 JSON line a second while workers
 * load the dataset and their backend); say once what the job waits for
 * instead, then show the steps.
 */
import type { Output } from '../output.js';
import { percent } from '../output.js';

/** What both the launcher's status and the chief's progress carry. */
export interface ClusterStatus {
  readonly globalStep: number;
  readonly totalSteps: number;
  readonly epoch: number;
  readonly epochs: number;
  readonly samplesPerSecond: number;
  readonly loss: number;
  readonly validationAccuracy?: number;
  /** A detector's validation mAP (validationAccuracy is for classifiers). */
  readonly validationMAP?: number;
}

export function clusterProgress(out: Output, workers: number, options: { indent?: string } = {}): (p: ClusterStatus) => void {
  const indent = options.indent ?? '';
  let firstStep: number | undefined;
  let started = false;
  let waitingSaid = false;
  return (p) => {
    firstStep ??= p.globalStep;
    if (!started && p.globalStep === firstStep) {
      if (!waitingSaid) {
        const who = workers === 1 ? 'the worker to join and take its' : `the ${workers} workers to join and take their`;
        out.log(`${indent}waiting for ${who} first step (each loads the dataset and starts its backend first)`);
        waitingSaid = true;
      }
      return;
    }
    started = true;
    out.progress({
      label: `${indent}epoch ${Math.min(p.epoch + 1, p.epochs)}/${p.epochs}`,
      done: p.globalStep,
      total: p.totalSteps,
      loss: p.loss,
      'samples/s': p.samplesPerSecond,
      ...(p.validationAccuracy !== undefined && p.validationAccuracy > 0 ? { 'val acc': percent(p.validationAccuracy) } : {}),
      ...(p.validationMAP !== undefined && p.validationMAP > 0 ? { 'val mAP': p.validationMAP.toFixed(3) } : {}),
    });
  };
}
