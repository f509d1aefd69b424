/**
 * The servers a hostile client attacks, in a process of their own so its
 * memory is theirs alone: one parameter server (shard 0, the chief's secret
 * pinned from TAMP_CHIEF_SECRET) and the chief's Coordinator service. Run by
 * test/helpers/hostile.ts through tsx; answers over IPC:
 *   → { type: 'ready', ps, chief }           once both listen
 *   ← 'state' → { type: 'state', rss, ... }  memory and what the servers hold
 * A Shutdown from the chief is recorded, not obeyed, so the process lives on
 * for the test to inspect.
 */
import { startParameterServer } from '@tamp/parameter-server';
import { startCoordinator } from '@tamp/worker';

const jobId = process.env.HOSTILE_JOB ?? 'hostile-job';
const chiefSecret = process.env.TAMP_CHIEF_SECRET ?? '';
const shutdowns: string[] = [];
const logLines: string[] = [];
const log = (m: string) => {
  logLines.push(m);
  if (logLines.length > 200) logLines.shift();
};

const ps = await startParameterServer({ jobId, index: 0, chiefSecret, log, onShutdown: (reason) => shutdowns.push(reason) });
const chief = await startCoordinator({
  jobId,
  numWorkers: 2,
  epochs: 2,
  totalSteps: 40,
  jobConfigJson: '{}',
  psAddresses: [`127.0.0.1:${ps.port}`],
  heartbeatIntervalMs: 200,
  heartbeatTimeoutMs: 60_000,
  chiefSecret,
  log,
});

process.on('message', (m) => {
  if (m !== 'state') return;
  const s = chief.state;
  process.send?.({
    type: 'state',
    rss: process.memoryUsage().rss,
    shutdowns,
    ps: { version: ps.shard.version.toString(), bytes: ps.shard.bytes, initialized: ps.shard.initialized, live: [...ps.shard.liveWorkers] },
    chief: { epoch: s.completedEpochs, workers: s.workers.map((w) => ({ clientId: w.clientId, workerId: w.workerId, state: w.state, epoch: w.epoch, joins: w.joins, localStep: w.localStep.toString() })) },
    unknownErrors: logLines.filter((l) => l.startsWith('internal error')),
  });
});
process.on('disconnect', () => process.exit(0));
process.send?.({ type: 'ready', ps: ps.port, chief: chief.port });
