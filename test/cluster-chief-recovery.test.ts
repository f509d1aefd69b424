/**
 * The chief killed with SIGKILL mid-job under `tamp train --local`: the
 * supervisor restarts it on its port, it finds the parameter servers
 * holding the job and takes it over (chief-rejoin.ts) without rolling
 * anything back, the workers resume with it, and the job completes: sync
 * ends with exactly the variables of an uninterrupted run. Then a worker
 * killed and restarted in async and ssp modes: it rejoins its slot, the
 * job completes and report.json `recoveries` names it (sync is covered by
 * cluster-supervisor.test.ts).
 *
 * Timing by construction: every worker step takes at least
 * TAMP_TEST_STEP_DELAY_MS; the kill lands once the chief reports a global
 * step of at least KILL_AT_STEP, before the checkpoint at step 8 (sync); a
 * worker cannot pass a checkpoint barrier without a chief (async waits at
 * them too), so the job cannot end before the restarted chief has taken
 * over, however slow or fast the machine.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChiefReport, launchLocalCluster } from '@tamp/worker';
import { TAMP_BIN } from './helpers/tamp.js';
import { useTestLoad } from './helpers/load.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-chief-recovery-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 2 workers of batch 32: 20 steps each; a checkpoint every 4 steps; each step at least 150 ms.
const JOB = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1280', '--batch-size', '32', '--optimizer', 'adam', '--lr', '0.003', '--seed', '7', '--checkpoint-every', '4'];
const KILL_AT_STEP = 5;
const STEP_DELAY = { TAMP_TEST_STEP_DELAY_MS: '150' };

function weights(out: string): Buffer {
  return readFileSync(join(out, 'model', 'weights.bin'));
}

interface Run {
  readonly report: ChiefReport;
  readonly killed: boolean;
  readonly log: string;
}

/** A job of `mode`; with `victim`, that role's first process is killed (SIGKILL) once the chief reports step KILL_AT_STEP. */
async function run(name: string, mode: string, victim?: 'chief' | 'worker-1'): Promise<Run> {
  const out = join(dir, name);
  let target: ChildProcess | undefined;
  let killed = false;
  const lines: string[] = [];
  const report = await launchLocalCluster({
    tamp: [process.execPath, TAMP_BIN],
    jobId: name,
    ps: 2,
    workers: 2,
    chiefArgs: [...JOB, '--mode', mode, '--out', out, '--backend', 'wasm'],
    workerArgs: ['--backend', 'wasm'],
    workerEnvByIndex: [STEP_DELAY, STEP_DELAY],
    out,
    log: (line) => lines.push(line),
    onSpawn: (role, child) => {
      // Only the first: its restart is what the test waits for.
      if (role === victim) target ??= child;
    },
    onProgress: (s) => {
      if (!killed && target !== undefined && s.globalStep >= KILL_AT_STEP) {
        killed = true;
        target.kill('SIGKILL');
      }
    },
  });
  return { report, killed, log: lines.join('\n') };
}

describe('the chief killed with SIGKILL mid-job', () => {
  it('sync: restarted, it takes the running job over; no step is lost and the variables equal an uninterrupted run', async () => {
    const { report: reference } = await run('sync-reference', 'sync');
    const { report, killed, log } = await run('sync-chief-killed', 'sync', 'chief');
    expect(killed).toBe(true);
    expect(log).toMatch(/chief exited with signal SIGKILL; restarting it on port \d+ \(restart 1 of 3\)/);
    // Every planned step applied, none twice: the servers were never rolled back.
    expect(report.steps).toBe(reference.steps);
    expect(report.steps).toBe(20);
    expect(report.recoveries).toHaveLength(1);
    const r = report.recoveries[0];
    expect(r).toMatchObject({ role: 'chief', index: 0, stepsLost: 0, restoredFrom: 'parameter servers', generation: 0 });
    expect(r?.restoredStep).toBeGreaterThanOrEqual(KILL_AT_STEP);
    expect(r?.resumedAfterSeconds).toBeGreaterThan(0);
    if (r?.detectedAfterSeconds !== null) expect(r?.resumedAfterSeconds).toBeGreaterThanOrEqual(r?.detectedAfterSeconds ?? Infinity);
    // The workers resumed with the new chief, keeping their slots (no new Join) and their counts.
    expect(report.workerStats.map((w) => w.state)).toEqual(['finished', 'finished']);
    expect(report.workerStats.map((w) => w.joins)).toEqual([1, 1]);
    expect(report.workerStats.map((w) => w.backend)).toEqual(reference.workerStats.map((w) => w.backend));
    expect(report.workerStats.reduce((n, w) => n + w.samples, 0)).toBe(reference.workerStats.reduce((n, w) => n + w.samples, 0));
    // The checkpoints on disk before the crash are still listed, with those written after it.
    expect(report.history.map((h) => h.epoch)).toEqual([1]);
    const steps = (list: readonly string[]) => list.map((f) => /step-(\d+)/.exec(f)?.[1]);
    expect(steps(reference.checkpoints)).toEqual(expect.arrayContaining(steps(report.checkpoints)));
    expect(steps(report.checkpoints).slice(-3)).toEqual(steps(reference.checkpoints).slice(-3));
    expect(weights(join(dir, 'sync-chief-killed')).equals(weights(join(dir, 'sync-reference')))).toBe(true);
  });
});

/** Kill `role`'s first process, once (a restarted one is left alone). */
type Kill = (role: string) => void;

/**
 * A verbose 2-ps, 2-worker job of `mode` whose roles `onLine` (each launcher log line) and `onStep` (the
 * chief's progress) may kill, each role's first process at most once.
 */
async function killing(name: string, mode: string, extra: readonly string[], plan: { onLine?: (line: string, kill: Kill, killed: ReadonlySet<string>) => void; onStep?: (step: number, kill: Kill) => void }): Promise<Run & { killedRoles: ReadonlySet<string> }> {
  const out = join(dir, name);
  const first = new Map<string, ChildProcess>();
  const killed = new Set<string>();
  const lines: string[] = [];
  const kill: Kill = (role) => {
    if (killed.has(role)) return;
    killed.add(role);
    first.get(role)?.kill('SIGKILL');
  };
  const report = await launchLocalCluster({
    tamp: [process.execPath, TAMP_BIN],
    jobId: name,
    ps: 2,
    workers: 2,
    chiefArgs: [...JOB, '--mode', mode, '--out', out, '--backend', 'wasm', ...extra],
    workerArgs: ['--backend', 'wasm'],
    workerEnvByIndex: [STEP_DELAY, STEP_DELAY],
    out,
    verbose: true,
    log: (line) => {
      lines.push(line);
      plan.onLine?.(line, kill, killed);
    },
    onSpawn: (role, child) => {
      if (!first.has(role)) first.set(role, child);
    },
    ...(plan.onStep !== undefined ? { onProgress: (s: { globalStep: number }) => plan.onStep?.(s.globalStep, kill) } : {}),
  });
  return { report, killed: false, killedRoles: killed, log: lines.join('\n') };
}

/**
 * Worker 1 killed as soon as it joined, then the chief killed as soon as it logged the restarted worker's
 * rejoin (written to <out>/recoveries.json before that line: recovery-journal.ts). A long heartbeat timeout
 * and disconnect grace keep the first checkpoint barrier (step 4) waiting for worker 1's slot, so the rejoin
 * comes before it is released; three more barriers (steps 8, 12, 16: 24 batches of at least 150 ms, two workers) stand between
 * the chief's kill and the end of the job, which cannot pass them without a chief.
 */
async function workerThenChief(name: string, mode: string): Promise<Run> {
  const r = await killing(name, mode, ['--heartbeat-timeout', '120', '--disconnect-grace', '120'], {
    onLine: (line, kill) => {
      if (/\[chief\] .*worker-1 \(.*\) joined/.test(line)) kill('worker-1');
      if (/\[chief\] .*worker-1 \(.*\) rejoined/.test(line)) kill('chief');
    },
  });
  return { ...r, killed: r.killedRoles.has('worker-1') && r.killedRoles.has('chief') };
}

/**
 * --ps-replicas 1: parameter server 1 killed at step KILL_AT_STEP (its shard fails over to the backup on
 * server 0), then the chief killed as soon as it logs that failover (saved to <out>/recoveries.json before
 * the line). No sync step passes without shard 1, so the failover, and with it the chief's kill, comes
 * before the job's end; the job cannot end without a chief, so the restarted chief takes it over, with
 * shard 1 on server 0, where no flag says it is.
 */
async function psThenChief(name: string): Promise<Run> {
  const r = await killing(name, 'sync', ['--ps-replicas', '1'], {
    onStep: (step, kill) => {
      if (step >= KILL_AT_STEP) kill('ps-1');
    },
    onLine: (line, kill, killed) => {
      if (killed.has('ps-1') && /\[chief\] .*recovery: ps shard 1 \(failover\)/.test(line)) kill('chief');
    },
  });
  return { ...r, killed: r.killedRoles.has('ps-1') && r.killedRoles.has('chief') };
}

describe('the chief killed with SIGKILL mid-job, --ps-replicas 1', () => {
  it('sync: killed right after a failover, the restarted chief finds the moved shard on its backup; nothing is rolled back and the variables equal an uninterrupted run', async () => {
    if (!existsSync(join(dir, 'sync-reference', 'model', 'weights.bin'))) await run('sync-reference', 'sync');
    const { report, killed, log } = await psThenChief('sync-replica-chief-killed');
    expect(killed).toBe(true);
    expect(log).toMatch(/chief exited with signal SIGKILL; restarting it on port \d+/);
    // The new chief read the chain back from the servers.
    expect(log).toMatch(/\[chief\] .*replica: shard 1 is on parameter server 0 /);
    expect(report.steps).toBe(20);
    const roles = report.recoveries.filter((r) => r.role !== 'worker').map((r) => [r.role, r.index, r.role === 'ps' ? r.cause : '', r.stepsLost]);
    expect(roles).toEqual([
      ['ps', 1, 'failover', 0],
      ['chief', 0, '', 0],
    ]);
    expect(report.recoveries.every((r) => r.stepsLost === 0)).toBe(true);
    expect(weights(join(dir, 'sync-replica-chief-killed')).equals(weights(join(dir, 'sync-reference')))).toBe(true);
  });
});

describe('the chief killed with SIGKILL mid-job, async', () => {
  it('async: restarted, it takes the job over; every planned push is applied, the job completes, and the earlier chief\'s recoveries are reported', async () => {
    const { report, killed, log } = await workerThenChief('async-chief-killed', 'async');
    expect(killed).toBe(true);
    expect(log).toMatch(/worker-1 exited with signal SIGKILL; restarting it/);
    expect(log).toMatch(/chief exited with signal SIGKILL; restarting it on port \d+/);
    // Every planned batch trained. async's step counts pushes applied: the 40 planned, plus any batch
    // the crashed chief had been told was done after the newest checkpoint on disk, which the new chief,
    // starting from that checkpoint, hands out again (trained twice, none undone). The kill lands at a
    // global step of at least 5, and the old chief hands out no batch past a checkpoint (every 4 steps
    // of 2 workers: 8 batches) before its barrier is released, so at most two checkpoints' worth: 16.
    expect(report.batchesPlanned).toBe(40);
    expect(report.batchesTrained).toBe(40);
    expect(report.steps).toBeGreaterThanOrEqual(40);
    expect(report.steps).toBeLessThanOrEqual(56);
    // The worker's restart, recorded by the first chief and read back by the second, then the chief's own.
    expect(report.recoveries.map((r) => [r.role, r.index, r.stepsLost, 'outcome' in r ? r.outcome : ''])).toEqual([
      ['worker', 1, 0, 'restarted'],
      ['chief', 0, 0, ''],
    ]);
    // (Each slot's join count starts again with the new chief, which rebuilt the slots from the servers.)
    expect(report.workerStats.map((w) => w.state)).toEqual(['finished', 'finished']);
  });
});

describe('a worker killed with SIGKILL and restarted by the supervisor', () => {
  for (const mode of ['async', 'ssp'] as const) {
    it(`${mode}: it rejoins its slot and the job completes`, async () => {
      const { report, killed, log } = await run(`${mode}-worker-killed`, mode, 'worker-1');
      expect(killed).toBe(true);
      expect(log).toMatch(/worker-1 exited with signal SIGKILL; restarting it \(restart 1 of 3\)/);
      expect(report.workerStats.map((w) => w.state)).toEqual(['finished', 'finished']);
      // Its slot was joined twice: the first process, and the restarted one.
      expect(report.workerStats[1]?.joins).toBe(2);
      expect(report.workerStats[0]?.joins).toBe(1);
      // report.json `recoveries` names the fault: worker 1, back in its slot (a restart the detector found lost, or not yet), nothing undone.
      const workers = report.recoveries.filter((r) => r.role === 'worker');
      expect(workers.filter((r) => r.index === 1 && r.outcome === 'restarted')).toHaveLength(1);
      expect(workers.find((r) => r.index === 1 && r.outcome === 'restarted')).toMatchObject({ stepsLost: 0, restoredFrom: 'parameter servers' });
      expect(workers.every((r) => r.stepsLost === 0 && (r.outcome === 'not back') === (r.resumedAfterSeconds === null))).toBe(true);
      expect(Number.isFinite(report.testAccuracy)).toBe(true);
    });
  }
});
