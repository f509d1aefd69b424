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
    ['validation accuracy', percent(r.validationAccuracy)],
    ['test accuracy', percent(r.testAccuracy)],
    ['model', r.modelPath],
  ]);
}
