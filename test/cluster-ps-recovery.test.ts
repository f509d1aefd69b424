/**
 * A parameter server killed with SIGKILL mid-job under `tamp train --local`:
 * the supervisor restarts it on its port, the chief notices it came back
 * without its state and restores it from the newest checkpoint, and the job
 * completes. sync: every shard goes back to that step and the workers replay
 * from it, so the final variables equal an uninterrupted run's exactly;
 * async: only the lost shard is restored, and the job completes with the
 * recovery recorded.
 *
 * Timing by construction: every worker step takes at least
 * TAMP_TEST_STEP_DELAY_MS, the kill lands once the chief reports a global
 * step past the first checkpoint (well before the last step), and no worker
 * can finish without the killed server back: the job cannot end before the
 * recovery, however slow or fast the machine.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChiefReport, launchLocalCluster } from '@tamp/worker';
import { TAMP_BIN } from './helpers/tamp.js';
import { useTestLoad } from './helpers/load.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-ps-recovery-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 2 workers of batch 32: 20 steps; a checkpoint every 4; each step at least 150 ms.
const JOB = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1280', '--batch-size', '32', '--optimizer', 'adam', '--lr', '0.003', '--seed', '7', '--checkpoint-every', '4'];
const KILL_AT_STEP = 6;

function weights(out: string): Buffer {
  return readFileSync(join(out, 'model', 'weights.bin'));
}

function cluster(name: string, mode: string, options: { onSpawn?: (role: string, c: ChildProcess) => void; onStep?: (step: number) => void; stepDelayMs?: number } = {}): Promise<ChiefReport> {
  const out = join(dir, name);
  const delay = options.stepDelayMs !== undefined ? { TAMP_TEST_STEP_DELAY_MS: String(options.stepDelayMs) } : undefined;
  return launchLocalCluster({
    tamp: [process.execPath, TAMP_BIN],
    jobId: name,
    ps: 2,
    workers: 2,
    chiefArgs: [...JOB, '--mode', mode, '--out', out, '--backend', 'wasm'],
    workerArgs: ['--backend', 'wasm'],
    ...(delay !== undefined ? { workerEnvByIndex: [delay, delay] } : {}),
    ...(options.onSpawn !== undefined ? { onSpawn: options.onSpawn } : {}),
    ...(options.onStep !== undefined ? { onProgress: (s: { globalStep: number }) => options.onStep?.(s.globalStep) } : {}),
    out,
  });
}

/** Run `mode` with parameter server 1 killed (SIGKILL) once the chief reports global step KILL_AT_STEP. */
async function killedRun(name: string, mode: string): Promise<{ report: ChiefReport; killed: boolean }> {
  let victim: ChildProcess | undefined;
  let killed = false;
  const report = await cluster(name, mode, {
    stepDelayMs: 150,
    onSpawn: (role, child) => {
      // Only the first ps-1: its restart is what the test waits for.
      if (role === 'ps-1') victim ??= child;
    },
    onStep: (step) => {
      if (!killed && step >= KILL_AT_STEP && victim !== undefined) {
        killed = true;
        victim.kill('SIGKILL');
      }
    },
  });
  return { report, killed };
}

describe('a parameter server killed with SIGKILL mid-job', () => {
  it('sync: restored from the newest checkpoint, every shard rolled back, the workers replay: the same variables as an uninterrupted run', async () => {
    const reference = await cluster('sync-reference', 'sync');
    const { report, killed } = await killedRun('sync-killed', 'sync');
    expect(killed).toBe(true);
    expect(report.steps).toBe(reference.steps);
    // Only the server's fault: the workers replayed the undone steps and finished (no Leave refused for
    // counting a replayed step twice), each with the steps and samples of the uninterrupted run.
    expect(report.recoveries, JSON.stringify(report.recoveries)).toHaveLength(1);
    expect(report.workerStats.map((w) => [w.state, w.steps])).toEqual(reference.workerStats.map((w) => [w.state, w.steps]));
    expect(report.samples).toBe(reference.samples);
    const r = report.recoveries[0];
    expect(r).toMatchObject({ role: 'ps', index: 1, cause: 'restarted without its state', generation: 1 });
    // The newest complete checkpoint when the fault was found: one of the every-4 ones at or past the first.
    expect(r?.restoredStep).toBeGreaterThanOrEqual(4);
    expect((r?.restoredStep ?? 1) % 4).toBe(0);
    expect(r?.restoredFrom).toContain(`step-${String(r?.restoredStep).padStart(9, '0')}`);
    expect(r?.resumedAfterSeconds).toBeGreaterThanOrEqual(r?.detectedAfterSeconds ?? Infinity);
    expect(weights(join(dir, 'sync-killed')).equals(weights(join(dir, 'sync-reference')))).toBe(true);
  });

  it('async: only the lost shard is restored and the job completes with the recovery recorded', async () => {
    const { report, killed } = await killedRun('async-killed', 'async');
    expect(killed).toBe(true);
    // The lost server's recovery. A worker may have a fault entry of its own too (one run on a loaded
    // machine recorded one during the outage); it undoes nothing.
    const ps = report.recoveries.filter((r) => r.role === 'ps');
    expect(ps, JSON.stringify(report.recoveries)).toHaveLength(1);
    expect(ps[0]).toMatchObject({ role: 'ps', index: 1, cause: 'restarted without its state', generation: 1 });
    expect(report.recoveries.every((r) => r.role === 'ps' || (r.role === 'worker' && r.stepsLost === 0)), JSON.stringify(report.recoveries)).toBe(true);
    expect(report.workerStats.map((w) => w.state)).toEqual(['finished', 'finished']);
    expect(Number.isFinite(report.testAccuracy)).toBe(true);
  });
});
