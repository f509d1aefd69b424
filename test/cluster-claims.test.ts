/**
 * async and ssp batch claims with real processes (ARCHITECTURE.md,
 * "@tamp/worker"): a worker killed for good leaves no data untrained (the
 * others train its share and the batches it held), and a resumed async job
 * continues from the batches its checkpoint recorded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChiefReport, type CheckpointManifest, launchLocalCluster } from '@tamp/worker';
import { TAMP_BIN, runTamp } from './helpers/tamp.js';
import { useTestLoad } from './helpers/load.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-claims-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function waitFor(file: string): Promise<void> {
  for (let i = 0; i < 1200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
  expect(existsSync(file), file).toBe(true);
}

describe('batch claims', () => {
  for (const mode of ['async', 'ssp'] as const) {
    it(`${mode}: a worker killed for good (no restart) leaves none of the planned batches untrained`, async () => {
      const name = `killed-${mode}`;
      const out = join(dir, name);
      let victim: ChildProcess | undefined;
      let armed = false;
      // 30 steps × 2 workers = 60 batches of 64. Worker 1 waits 1 s after each step's gradients
      // (TAMP_TEST_STEP_DELAY_MS) and logs that it does first. It is killed on the first such line after checkpoint 3
      // is written: then it holds the batch of that step (claimed, not pushed, so not reported) for the whole second,
      // rather than at whatever point of its loop the checkpoint's file happened to appear (idle at the barrier, or
      // not yet claiming after it, on a busy machine).
      const job = launchLocalCluster({
        tamp: [process.execPath, TAMP_BIN],
        jobId: name,
        ps: 1,
        workers: 2,
        chiefArgs: ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '3840', '--mode', mode, '--staleness', '3', '--heartbeat-timeout', '2', '--checkpoint-every', '3', '--out', out, '--backend', 'wasm'],
        workerArgs: ['--backend', 'wasm'],
        workerEnvByIndex: [{}, { TAMP_TEST_STEP_DELAY_MS: '1000' }],
        maxRestarts: 0,
        onSpawn: (role, child) => {
          if (role === 'worker-1') victim = child;
        },
        // Every role's log lines, prefixed with the role: the victim's step-delay lines are the trigger.
        verbose: true,
        log: (line) => {
          if (armed && line.startsWith('[worker-1]') && line.includes('test step delay')) {
            armed = false;
            victim?.kill('SIGKILL');
          }
        },
        out,
      });
      await waitFor(join(out, 'checkpoints', 'step-000000003', 'manifest.json'));
      expect(victim).toBeDefined();
      armed = true;
      const report: ChiefReport = await job;
      expect(report.lostWorkers).toBe(1);
      expect(report.workerStats.find((w) => w.workerId === 'worker-0')?.state).toBe('finished');
      expect(report.batchesPlanned).toBe(60);
      expect(report.batchesTrained).toBe(60);
      expect(report.batchesLost).toBe(0);
      // It held at least the batch it was training: handed to worker 0.
      expect(report.batchesReassigned).toBeGreaterThan(0);
      // Every planned batch's push was applied (a reassigned one may have been applied twice).
      expect(report.steps).toBeGreaterThanOrEqual(60);
      const last = JSON.parse(readFileSync(join(out, 'checkpoints', 'step-000000030', 'manifest.json'), 'utf8')) as CheckpointManifest;
      expect(last.batches).toEqual({ done: [[0, 60]], total: 60 });
    });
  }

  it('async: resuming after the whole cluster was killed continues from the batches its checkpoint recorded', async () => {
    const out = join(dir, 'resume');
    // 20 steps × 2 workers = 40 batches; every step made slow, so the kill comes well before the end.
    const flags = ['train', '--local', '--ps', '1', '--workers', '2', '--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '2560', '--mode', 'async', '--checkpoint-every', '5', '--backend', 'wasm'];
    const launcher = spawn(process.execPath, [TAMP_BIN, ...flags, '--out', out], { detached: true, stdio: 'ignore', env: { ...process.env, TAMP_TEST_STEP_DELAY_MS: '150' } });
    await waitFor(join(out, 'checkpoints', 'step-000000005', 'manifest.json'));
    process.kill(-(launcher.pid as number), 'SIGKILL'); // the launcher and every role: a crash
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(join(out, 'report.json'))).toBe(false);

    // The newest complete checkpoint, read now: the resumed job prunes it once it wrote three of its own.
    const newest = readdirSync(join(out, 'checkpoints'))
      .sort()
      .reverse()
      .map((d) => join(out, 'checkpoints', d))
      .find((d) => existsSync(join(d, 'manifest.json'))) as string;
    const from = JSON.parse(readFileSync(join(newest, 'manifest.json'), 'utf8')) as CheckpointManifest;

    const r = await runTamp(['train', '--local', '--ps', '1', '--workers', '2', '--resume', out, '--verbose']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ChiefReport;
    expect(report.resumedFrom).toBe(newest);
    // The checkpoint recorded its data position per batch: every batch before its barrier, and its state holds exactly those pushes.
    expect(from.batches).toEqual({ done: [[0, from.step * 2]], total: 40 });
    expect(from.versions).toEqual([String(from.step * 2)]);
    // The resumed run trained exactly the rest: no batch twice, none left out.
    expect(report.batchesTrained).toBe(40);
    expect(report.batchesLost).toBe(0);
    expect(report.steps).toBe(40);
  });
});
