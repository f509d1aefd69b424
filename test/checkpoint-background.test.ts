/**
 * Checkpoints off the critical path, against real parameter-server
 * processes (ARCHITECTURE.md, "@tamp/parameter-server"): a shard answers
 * SaveShard once it copied its state and writes the file after; the chief's
 * manifest follows only once every file is durable. A parameter server
 * SIGKILLed between its copy and its write (held there by the
 * TAMP_TEST_CHECKPOINT_WRITE_DELAY_MS test hook) leaves a folder without a
 * manifest, and the newest complete checkpoint stays the one before.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { optimizerSettings } from '@tamp/core';
import { Chief, checkpointDir, commitCheckpoint, copyCheckpoint, findLatestCheckpoint, saveCheckpoint } from '@tamp/worker';
import { TAMP_BIN } from './helpers/tamp.js';
import { freePorts } from './helpers/ports.js';

const JOB = 'ckpt-bg';
const dir = mkdtempSync(join(tmpdir(), 'tamp-ckpt-bg-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function startPs(index: number, port: number, env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [TAMP_BIN, 'ps', '--index', String(index), '--port', String(port), '--job-id', JOB], { stdio: 'ignore', env: { ...process.env, ...env } });
  children.push(child);
  return child;
}

describe('background checkpoint writes', () => {
  it('a complete checkpoint loads; a parameter server killed between its copy and its write leaves no manifest', async () => {
    const ports = await freePorts(2);
    // Shard 1 waits 1.5 s between copying its state and writing it: the window this test kills it in.
    startPs(0, ports[0] as number);
    const slow = startPs(1, ports[1] as number, { TAMP_TEST_CHECKPOINT_WRITE_DELAY_MS: '1500' });
    const out = join(dir, 'out');
    const chief = await Chief.create({
      jobId: JOB,
      psAddresses: ports.map((p) => `127.0.0.1:${p}`),
      numWorkers: 1,
      training: { model: 'mlp-tiny', dataset: 'mnist', epochs: 1, epochSize: 256, batchSize: 32, optimizer: optimizerSettings('adam', 0.01), mode: 'async', staleness: 1, backupWorkers: 0, seed: 1 },
      out,
      backend: 'cpu',
    });
    try {
      await chief.startShards();
      const base = { jobId: JOB, training: chief.job.training, numWorkers: 1, checkpointEvery: 2, variables: chief.job.specs, history: [], samples: 0 };

      // Complete: the manifest names both files, and it loads back as the shards' state.
      const manifest = await saveCheckpoint(chief.params, out, base, 2);
      expect(manifest).toBe(join(checkpointDir(out, 2), 'manifest.json'));
      const restored = findLatestCheckpoint(out, (m) => expect.fail(m));
      expect(restored?.manifest.step).toBe(2);
      expect(restored?.manifest.parts.map((p) => p.file)).toEqual(['shard-0.bin', 'shard-1.bin']);
      for (const [name, initial] of chief.job.initial) expect(restored?.values.get(name)).toEqual(initial);

      // Copied, then shard 1 dies before writing: the commit fails and writes no manifest.
      const copied = await copyCheckpoint(chief.params, out, base, 4);
      slow.kill('SIGKILL');
      await expect(commitCheckpoint(chief.params, copied)).rejects.toThrow();
      const folder = checkpointDir(out, 4);
      expect(existsSync(join(folder, 'manifest.json'))).toBe(false);
      expect(readdirSync(folder)).not.toContain('shard-1.bin');
      // The newest complete checkpoint is still step 2, undamaged.
      expect(findLatestCheckpoint(out, () => undefined)?.manifest.step).toBe(2);
    } finally {
      await chief.close();
    }
  });
});
