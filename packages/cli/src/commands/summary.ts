import type { TrainReport } from '@tamp/core/node';
import { percent, table } from '../output.js';

export function trainSummary(r: TrainReport): string {
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
    ['model', r.modelPath],
  ]);
}
