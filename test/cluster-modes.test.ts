/**
 * sync, ssp and checkpoints with real processes: parity with one process,
 * backup workers (a slow worker made slow by TAMP_TEST_STEP_DELAY_MS), a worker killed with SIGKILL, bounded staleness, and
 * resume after the whole cluster is killed (falling back over a truncated
 * checkpoint).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChiefReport, launchLocalCluster } from '@tamp/worker';
import { TAMP_BIN, runTamp } from './helpers/tamp.js';
import { useTestLoad } from './helpers/load.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-modes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function weights(out: string): Float32Array {
  const b = readFileSync(join(out, 'model', 'weights.bin'));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d;
}

function cluster(
  name: string,
  o: { ps?: number; workers: number; chief: string[]; byIndex?: string[][]; envByIndex?: NodeJS.ProcessEnv[]; maxRestarts?: number; onSpawn?: (role: string, c: ChildProcess) => void },
): Promise<ChiefReport> {
  const out = join(dir, name);
  return launchLocalCluster({
    tamp: [process.execPath, TAMP_BIN],
    jobId: name,
    ps: o.ps ?? 1,
    workers: o.workers,
    chiefArgs: [...o.chief, '--out', out, '--backend', 'wasm'],
    workerArgs: ['--backend', 'wasm'],
    ...(o.byIndex !== undefined ? { workerArgsByIndex: o.byIndex } : {}),
    ...(o.envByIndex !== undefined ? { workerEnvByIndex: o.envByIndex } : {}),
    ...(o.onSpawn !== undefined ? { onSpawn: o.onSpawn } : {}),
    ...(o.maxRestarts !== undefined ? { maxRestarts: o.maxRestarts } : {}),
    out,
  });
}

// 20 steps of 2 workers × 64 samples = 20 steps of one process with batch 128.
const PARITY = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '2560', '--seed', '7'];

describe('sync mode', () => {
  for (const optimizer of ['sgd', 'adam'] as const) {
    it(`${optimizer}: 2 workers × batch 64 equal one process × batch 128 (1e-5), and P=1 equals P=3 exactly`, async () => {
      const lr = optimizer === 'sgd' ? '0.1' : '0.003';
      const single = join(dir, `single-${optimizer}`);
      const r = await runTamp(['train', ...PARITY, '--batch-size', '128', '--optimizer', optimizer, '--lr', lr, '--backend', 'wasm', '--out', single]);
      expect(r.code, r.stderr).toBe(0);
      const p1 = await cluster(`sync-${optimizer}-p1`, { ps: 1, workers: 2, chief: [...PARITY, '--mode', 'sync', '--batch-size', '64', '--optimizer', optimizer, '--lr', lr, '--checkpoint-every', '0'] });
      const p3 = await cluster(`sync-${optimizer}-p3`, { ps: 3, workers: 2, chief: [...PARITY, '--mode', 'sync', '--batch-size', '64', '--optimizer', optimizer, '--lr', lr, '--checkpoint-every', '0'] });
      expect(p1.steps).toBe(20);
      expect(p3.steps).toBe(20);
      expect(maxDiff(weights(join(dir, `sync-${optimizer}-p1`)), weights(join(dir, `sync-${optimizer}-p3`)))).toBe(0);
      expect(maxDiff(weights(join(dir, `sync-${optimizer}-p1`)), weights(single))).toBeLessThanOrEqual(1e-5);
    });
  }

  it('backup workers: a slow worker (made slow by the step-delay test hook) has its late gradients dropped and counted', async () => {
    // Worker 2 waits 1.5 s after computing each step's gradients (TAMP_TEST_STEP_DELAY_MS), far longer
    // than a step of this tiny model takes the others: its gradient is the third to arrive by construction.
    const report = await cluster('backup', {
      workers: 3,
      chief: ['--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1920', '--mode', 'sync', '--backup-workers', '1', '--checkpoint-every', '0'],
      envByIndex: [{}, {}, { TAMP_TEST_STEP_DELAY_MS: '1500' }],
    });
    expect(report.steps).toBe(10);
    expect(report.droppedGradients).toBeGreaterThan(0);
    const [fast0, fast1, slow] = report.workerStats;
    // Each step applied exactly 3 − 1 gradients of 64 samples (the first two to arrive);
    // the slow worker's came late far more often than the others'.
    expect((fast0?.samples ?? 0) + (fast1?.samples ?? 0) + (slow?.samples ?? 0), JSON.stringify(report.workerStats)).toBe(10 * 2 * 64);
    expect(slow?.samples ?? 0).toBeLessThan(Math.min(fast0?.samples ?? 0, fast1?.samples ?? 0));
  });

  it('a worker killed with SIGKILL is dropped once its connection closes, not after the heartbeat timeout; the job finishes', async () => {
    let victim: ChildProcess | undefined;
    const out = join(dir, 'sigkill');
    // A heartbeat timeout of 300 s, longer than this job takes: only the closed connection (and the
    // default disconnect grace of 1 s) can drop the killed worker before the others finish.
    const job = cluster('sigkill', {
      workers: 2,
      chief: ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '3840', '--mode', 'sync', '--heartbeat-timeout', '300', '--checkpoint-every', '3'],
      maxRestarts: 0, // the chief's side of a lost worker: the launcher does not restart it
      onSpawn: (role, child) => {
        if (role === 'worker-1') victim = child;
      },
    });
    // Kill worker 1 once the cluster has taken a few steps (the first checkpoint is at step 3).
    for (let i = 0; i < 600 && !existsSync(join(out, 'checkpoints', 'step-000000003', 'manifest.json')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(victim).toBeDefined();
    victim?.kill('SIGKILL');
    const report = await job;
    expect(report.steps).toBe(30);
    expect(report.lostWorkers).toBe(1);
    expect(report.workerStats.find((w) => w.workerId === 'worker-1')?.state).toBe('lost');
    expect(report.workerStats.find((w) => w.workerId === 'worker-0')?.state).toBe('finished');
    const fault = report.recoveries.filter((r) => r.role === 'worker');
    expect(fault, JSON.stringify(report.recoveries)).toEqual([expect.objectContaining({ index: 1, outcome: 'not back' })]);
    expect(fault[0]?.cause).toMatch(/^lost: its connection to the chief closed, silent for [\d.]+ s; not back$/);
  });
});

describe('ssp mode', () => {
  it('a slow worker (the step-delay test hook) makes a fast one wait at exactly τ steps ahead', async () => {
    // Worker 1 waits 1 s after each step's gradients: the other reaches τ steps ahead by construction.
    const report = await cluster('ssp', {
      workers: 2,
      chief: ['--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1280', '--mode', 'ssp', '--staleness', '2', '--checkpoint-every', '0'],
      envByIndex: [{}, { TAMP_TEST_STEP_DELAY_MS: '1000' }],
    });
    expect(report.sspWaits).toBeGreaterThan(0);
    expect(report.maxLead).toBe(2);
    expect(report.steps).toBe(20);
  });
});

describe('checkpoints and resume', () => {
  const FLAGS = ['train', '--local', '--ps', '2', '--workers', '2', ...PARITY, '--mode', 'sync', '--batch-size', '64', '--optimizer', 'adam', '--lr', '0.003', '--checkpoint-every', '5', '--backend', 'wasm'];

  it('resuming after the whole cluster was killed ends with the same variables; a truncated latest checkpoint falls back to the one before', async () => {
    const whole = join(dir, 'whole');
    const r1 = await runTamp([...FLAGS, '--out', whole]);
    expect(r1.code, r1.stderr).toBe(0);

    const broken = join(dir, 'broken');
    const launcher = spawn(process.execPath, [TAMP_BIN, ...FLAGS, '--out', broken], { detached: true, stdio: 'ignore' });
    const ckpt10 = join(broken, 'checkpoints', 'step-000000010', 'manifest.json');
    for (let i = 0; i < 1200 && !existsSync(ckpt10); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(ckpt10)).toBe(true);
    process.kill(-(launcher.pid as number), 'SIGKILL'); // the launcher and every role: a crash
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(join(broken, 'model', 'model.json'))).toBe(false);

    const r2 = await runTamp(['train', '--local', '--ps', '2', '--workers', '2', '--resume', broken, '--verbose']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toMatch(/resuming from .*step-0000000(10|15)/);
    expect(maxDiff(weights(broken), weights(whole))).toBe(0);

    // Damage the newest checkpoint: resuming takes the one before, and still ends the same.
    const steps = readdirSync(join(broken, 'checkpoints')).sort();
    const newest = join(broken, 'checkpoints', steps[steps.length - 1] as string, 'shard-0.bin');
    truncateSync(newest, statSync(newest).size - 100);
    rmSync(join(broken, 'model'), { recursive: true });
    // Without --verbose: the children's warnings and the line saying where the resume starts are still shown,
    // and the launcher's first line names the checkpoint's mode.
    const r3 = await runTamp(['train', '--local', '--ps', '2', '--workers', '2', '--resume', broken]);
    expect(r3.code, r3.stderr).toBe(0);
    expect(r3.stderr).toMatch(/^local cluster .*, sync, resuming /);
    expect(r3.stderr).toMatch(/skipping checkpoint .*step-000000020.*shard-0\.bin holds \d+ bytes, the manifest says \d+ \(truncated\?\)/);
    expect(r3.stderr).toMatch(/resuming from .*step-000000015/);
    expect(maxDiff(weights(broken), weights(whole))).toBe(0);
  });
});
