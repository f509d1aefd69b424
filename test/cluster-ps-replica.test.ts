/**
 * `--ps-replicas 1` (chain replication) under `tamp train --local`: a
 * parameter server killed with SIGKILL mid-job. The chief promotes the
 * backup of its shard (hosted by the other server), the workers follow the
 * new address, nothing is rolled back, the supervisor's restart of the
 * killed server becomes the new backup, and the job ends with exactly the
 * variables of an uninterrupted run (sync, fixed seeds); async completes with
 * the failover recorded and no step lost.
 *
 * Timing by construction, as test/cluster-ps-recovery.test.ts: every worker
 * step takes at least TAMP_TEST_STEP_DELAY_MS, the kill lands once the chief
 * reports step 6 of 20, and no worker can finish without the killed shard's
 * variables (its backup's promotion), however slow or fast the machine.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChiefReport, launchLocalCluster } from '@tamp/worker';
import { TAMP_BIN, jsonOf, runTamp } from './helpers/tamp.js';
import { useTestLoad } from './helpers/load.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-ps-replica-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 2 workers of batch 32: 20 steps; each step at least 150 ms. No checkpoint before the end: a restore could only go back to the start.
const JOB = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1280', '--batch-size', '32', '--optimizer', 'adam', '--lr', '0.003', '--seed', '7', '--checkpoint-every', '0'];
const KILL_AT_STEP = 6;

function weights(out: string): Buffer {
  return readFileSync(join(out, 'model', 'weights.bin'));
}

function cluster(name: string, extra: string[], options: { onSpawn?: (role: string, c: ChildProcess) => void; onStep?: (step: number) => void; stepDelayMs?: number } = {}): Promise<ChiefReport> {
  const out = join(dir, name);
  const delay = options.stepDelayMs !== undefined ? { TAMP_TEST_STEP_DELAY_MS: String(options.stepDelayMs) } : undefined;
  return launchLocalCluster({
    tamp: [process.execPath, TAMP_BIN],
    jobId: name,
    ps: 2,
    workers: 2,
    chiefArgs: [...JOB, '--out', out, '--backend', 'wasm', ...extra],
    workerArgs: ['--backend', 'wasm'],
    ...(delay !== undefined ? { workerEnvByIndex: [delay, delay] } : {}),
    ...(options.onSpawn !== undefined ? { onSpawn: options.onSpawn } : {}),
    ...(options.onStep !== undefined ? { onProgress: (s: { globalStep: number }) => options.onStep?.(s.globalStep) } : {}),
    out,
  });
}

describe('--ps-replicas 1: a parameter server killed with SIGKILL mid-job', () => {
  it('sync: its shard fails over to the backup, no step is lost, and the variables equal an uninterrupted run\'s', async () => {
    const reference = await cluster('reference', ['--mode', 'sync']);
    let victim: ChildProcess | undefined;
    let killed = false;
    const report = await cluster('killed', ['--mode', 'sync', '--ps-replicas', '1'], {
      stepDelayMs: 150,
      onSpawn: (role, child) => {
        if (role === 'ps-1') victim ??= child;
      },
      onStep: (step) => {
        if (!killed && step >= KILL_AT_STEP && victim !== undefined) {
          killed = true;
          victim.kill('SIGKILL');
        }
      },
    });
    expect(killed).toBe(true);
    expect(report.steps).toBe(reference.steps);
    expect(report.recoveries).toHaveLength(1);
    const r = report.recoveries[0];
    expect(r).toMatchObject({ role: 'ps', index: 1, cause: 'failover', stepsLost: 0 });
    // Promoted where it was: at least the step the kill waited for, nothing rolled back.
    expect(r?.restoredStep).toBeGreaterThanOrEqual(KILL_AT_STEP);
    expect(r?.resumedAfterSeconds).toBeGreaterThanOrEqual(r?.detectedAfterSeconds ?? Infinity);
    expect(report.workerStats.map((w) => w.state)).toEqual(['finished', 'finished']);
    expect(weights(join(dir, 'killed')).equals(weights(join(dir, 'reference')))).toBe(true);
  });
});

describe('--ps-replicas 1, async', () => {
  it('a parameter server killed with SIGKILL: its shard fails over with no step lost and every worker finishes', async () => {
    let victim: ChildProcess | undefined;
    let killed = false;
    const report = await cluster('async-killed', ['--ps-replicas', '1', '--mode', 'async'], {
      stepDelayMs: 150,
      onSpawn: (role, child) => {
        if (role === 'ps-1') victim ??= child;
      },
      onStep: (step) => {
        if (!killed && step >= KILL_AT_STEP && victim !== undefined) {
          killed = true;
          victim.kill('SIGKILL');
        }
      },
    });
    expect(killed).toBe(true);
    expect(report.recoveries).toHaveLength(1);
    expect(report.recoveries[0]).toMatchObject({ role: 'ps', index: 1, cause: 'failover', stepsLost: 0 });
    expect(report.workerStats.map((w) => w.state)).toEqual(['finished', 'finished']);
    expect(Number.isFinite(report.testAccuracy)).toBe(true);
  });
});

describe('--ps-replicas checks', () => {
  it('refuses anything but 0 or 1, and 1 with fewer than 2 parameter servers, before starting anything (REPLICA_CONFIG)', async () => {
    const base = ['train', '--local', '--model', 'mlp-tiny', '--dataset', 'mnist', '--json'];
    for (const [ps, replicas, pattern] of [
      ['1', '1', /needs at least 2 parameter servers/],
      ['3', '2', /0 or 1 backup per shard/],
    ] as const) {
      const out = join(dir, `refused-${ps}-${replicas}`);
      const r = await runTamp([...base, '--ps', ps, '--ps-replicas', replicas, '--out', out]);
      expect(r.code).toBe(1);
      const { error } = jsonOf<{ error: { code: string; message: string } }>(r);
      expect(error.code).toBe('REPLICA_CONFIG');
      expect(error.message).toMatch(pattern);
    }
  });
});
