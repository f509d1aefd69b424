/**
 * For tests of the chief against real parameter servers (replica-failover,
 * shard-recovery): the tiny job they train and the two servers each test
 * starts and closes. A `.fixture.ts` file: typechecked with the rest, left
 * out of the compiled packages (docker/tsconfig.build.json) like the tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConsistencyMode, optimizerSettings } from '@tamp/core';
import { type RunningParameterServer, type ShardClient, startParameterServer } from '@tamp/parameter-server';
import type { Chief } from './chief.js';
import type { TrainingSettings } from './job-config.js';

/** mlp-tiny on MNIST, one epoch of 256 samples in batches of 32. */
export const tinyTraining = (mode: ConsistencyMode): TrainingSettings => ({
  model: 'mlp-tiny',
  dataset: 'mnist',
  epochs: 1,
  epochSize: 256,
  batchSize: 32,
  optimizer: optimizerSettings('adam', 0.01),
  mode,
  staleness: 1,
  backupWorkers: 0,
  seed: 1,
});

export interface ShardFixture {
  readonly servers: RunningParameterServer[];
  readonly out: string;
  readonly clients: ShardClient[];
}

/** Two parameter servers of `jobId` pinned to `secret`, and an --out folder. */
export async function openShardFixture(jobId: string, secret: string, prefix: string): Promise<ShardFixture> {
  const servers = await Promise.all([0, 1].map((index) => startParameterServer({ jobId, index, chiefSecret: secret })));
  return { servers, out: mkdtempSync(join(tmpdir(), prefix)), clients: [] };
}

/** Close the test's clients, its chief, every server (the fixture's, and any a test put in their place) and the folder. */
export async function closeShardFixture(f: ShardFixture, chief: Chief | undefined): Promise<void> {
  for (const c of f.clients) c.close();
  await chief?.close();
  await Promise.all(f.servers.map((s) => s.close()));
  rmSync(f.out, { recursive: true, force: true });
}
