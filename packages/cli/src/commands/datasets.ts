import { listDatasets } from '@tamp/core/node';
import { defineCommand } from '../command.js';
import { table } from '../output.js';
import { COMMAND_SUMMARIES } from './summaries.js';

export const datasetsCommand = defineCommand({
  name: 'datasets',
  summary: COMMAND_SUMMARIES.datasets,
  positionals: [],
  options: {},
  async run() {
    const datasets = listDatasets();
    const rows = datasets.map((d) => [
      d.name,
      d.task,
      d.available ? 'yes' : `no: ${d.install ?? ''}`,
      d.splits !== undefined ? `${d.trainUnlimited === true ? 'unlimited' : d.splits.train}/${d.splits.validation}/${d.splits.test}` : '-',
      d.source,
    ]);
    return { result: { datasets }, text: table(rows, ['name', 'task', 'available', 'train/val/test', 'source']) };
  },
});
