import type { TrainReport } from '@tamp/core/node';
import { percent, table } from '../output.js';

/** What a cluster's report adds that the summary shows when it happened (ARCHITECTURE.md, "Faults"). */
interface FaultFields {
  readonly nonFiniteUpdates?: number;
  readonly recoveries?: readonly Recovery[];
  /** async/ssp: batches a lost worker held that others trained, and batches never trained. */
  readonly batchesPlanned?: number;
  readonly batchesTrained?: number;
  readonly batchesLost?: number;
  readonly batchesReassigned?: number;
}

/** A report.json `recoveries` entry as the summary reads it (a worker never back has no resume time or step). */
interface Recovery {
  readonly role: string;
  readonly index: number;
  readonly cause: string;
  readonly resumedAfterSeconds: number | null;
  readonly restoredStep: number | null;
  readonly stepsLost: number;
}

function describeRecovery(f: Recovery): string {
  const after = (what: string) => (f.resumedAfterSeconds === null ? '' : `${what} after ${f.resumedAfterSeconds.toFixed(1)} s, `);
  if (f.role === 'chief') return `chief (${f.cause}): ${after('answering again')}at step ${f.restoredStep ?? '?'}, nothing redone`;
  if (f.role === 'worker') {
    return f.resumedAfterSeconds === null
      ? `worker ${f.index} (${f.cause}): the job went on without it, nothing redone`
      : `worker ${f.index} (${f.cause}): ${after('live again')}at step ${f.restoredStep ?? '?'}, nothing redone`;
  }
  return `${f.role} ${f.index} (${f.cause}): ${after('state restored')}back to step ${f.restoredStep ?? '?'}, ${f.stepsLost} step(s) redone`;
}

export function trainSummary(r: TrainReport & FaultFields): string {
  const faults: Array<[string, string]> = [];
  if ((r.nonFiniteUpdates ?? 0) > 0) {
    faults.push(['non-finite updates', `${r.nonFiniteUpdates} refused (they would have made a variable or optimizer slot NaN/Infinity; lower the learning rate or clip gradients)`]);
  }
  for (const f of r.recoveries ?? []) {
    faults.push([f.resumedAfterSeconds === null && f.role === 'worker' ? 'lost' : 'recovered', describeRecovery(f)]);
  }
  if ((r.batchesReassigned ?? 0) > 0 || (r.batchesLost ?? 0) > 0) {
    const lost = r.batchesLost ?? 0;
    faults.push(['batches', `${r.batchesTrained ?? 0} of ${r.batchesPlanned ?? 0} trained; ${r.batchesReassigned ?? 0} a lost worker held were trained by the others${lost > 0 ? `; ${lost} never trained (no worker was left)` : ''}`]);
  }
  return table([
    ['model', r.model],
    ['dataset', r.dataset],
    ['backend', `${r.backend}${r.adapter !== undefined ? ` (${r.adapter})` : ''}`],
    ['mode', `${r.mode}, ${r.workers} worker(s), ${r.ps} parameter server(s)`],
    ['steps', r.steps],
    ['samples/s', r.samplesPerSecond],
    ...(r.task === 'detection'
      ? [
          ['validation mAP@0.5', (r.validationMAP ?? NaN).toFixed(3)],
          ['test mAP@0.5', (r.mAP ?? NaN).toFixed(3)],
        ]
      : [
          ['validation accuracy', percent(r.validationAccuracy ?? NaN)],
          ['test accuracy', percent(r.testAccuracy ?? NaN)],
        ]),
    ...faults,
    ['model', r.modelPath],
  ]);
}
