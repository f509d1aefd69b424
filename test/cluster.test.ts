/**
 * The cluster trainer with real processes on loopback: a local cluster
 * launched by `tamp train --local`, one launched through the API (to see each
 * role's command line), and one described by TF_CONFIG alone.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateClassifier } from '@tamp/core';
import { loadMnist } from '@tamp/core/node';
import { launchLocalCluster } from '@tamp/worker';
import { freePorts } from './helpers/ports.js';
import { TAMP_BIN, jsonOf, runTamp, serveFolder } from './helpers/tamp.js';
import { useTestLoad } from './helpers/load.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-cluster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1024', '--lr', '0.003'];

describe('cluster trainer (real processes)', () => {
  it('tamp train --local: chief, 2 parameter servers, 2 workers; stock tfjs loads the model', async () => {
    const out = join(dir, 'local');
    const r = await runTamp(['train', '--local', '--ps', '2', '--workers', '2', ...TINY, '--backend', 'wasm', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = jsonOf<{ workers: number; ps: number; mode: string; steps: number; testAccuracy: number; samplesPerSecond: number; lostWorkers: number; workerStats: Array<{ steps: number; samples: number; seconds: number; samplesPerSecond: number }> }>(r);
    expect(report).toMatchObject({ workers: 2, ps: 2, mode: 'async', lostWorkers: 0 });
    // 1,024 samples, global batches of 2 × 64: 16 batches, each applied on every shard. async workers
    // claim them from the chief in blocks, so how they split depends on which started first.
    expect(report.steps).toBe(16);
    expect(report.workerStats.reduce((n, w) => n + w.steps, 0)).toBe(16);
    expect(report.samplesPerSecond).toBeGreaterThan(0);
    // Each worker's own time and rate (of those that trained); the job's rate (all samples over the longest time) is at most their sum.
    for (const w of report.workerStats.filter((x) => x.steps > 0)) {
      expect(w.seconds).toBeGreaterThan(0);
      expect(w.samplesPerSecond).toBeCloseTo(w.samples / w.seconds, 6);
    }
    expect(report.samplesPerSecond).toBeLessThanOrEqual(report.workerStats.reduce((n, w) => n + w.samplesPerSecond, 0) * (1 + 1e-9));
    // 16 async steps of mlp-tiny: the order gradients arrive in varies, and so does the accuracy (one run scored 0.47);
    // three times chance (0.1) shows it trained without making the test depend on timing.
    expect(report.testAccuracy).toBeGreaterThan(0.3);
    // Progress went to stderr as JSON lines; stdout held only the report.
    expect(r.stderr).toMatch(/\{"progress":\{"label":"epoch 1\/1"/);
    const server = await serveFolder(join(out, 'model'));
    try {
      await tf.setBackend('cpu');
      const model = await tfl.loadLayersModel(`${server.url}/model.json`);
      const evaluation = await evaluateClassifier(model, loadMnist().test);
      expect(Math.abs(evaluation.accuracy - report.testAccuracy)).toBeLessThanOrEqual(0.001);
    } finally {
      await server.close();
    }
  });

  it('runs each role as its own `tamp <role>` process', async () => {
    const out = join(dir, 'api');
    const roles: string[][] = [];
    const report = await launchLocalCluster({
      tamp: [process.execPath, TAMP_BIN],
      jobId: 'api-test',
      ps: 1,
      workers: 2,
      chiefArgs: [...TINY, '--out', out, '--backend', 'wasm'],
      workerArgs: ['--backend', 'wasm'],
      out,
      onSpawn: (role, child) => roles.push([role, child.spawnargs[2] as string]),
    });
    expect(roles).toEqual([
      ['ps-0', 'ps'],
      ['chief', 'chief'],
      ['worker-0', 'worker'],
      ['worker-1', 'worker'],
    ]);
    expect(report.jobId).toBe('api-test');
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
  });

  it('trains from TF_CONFIG alone (the same command in every role)', async () => {
    const [chief, ps, w0, w1] = (await freePorts(4)).map((p) => `127.0.0.1:${p}`) as [string, string, string, string];
    const cluster = { chief: [chief], ps: [ps], worker: [w0, w1] };
    const out = join(dir, 'tfconfig');
    const tasks: Array<[string, number]> = [['ps', 0], ['chief', 0], ['worker', 0], ['worker', 1]];
    const runs = tasks.map(
      ([type, index]) =>
        new Promise<{ type: string; code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [TAMP_BIN, 'train', ...TINY, '--out', out], {
            // TF_CONFIG listens on every interface: plaintext there needs TAMP_INSECURE (protected by default).
            env: { ...process.env, TAMP_INSECURE: '1', TF_CONFIG: JSON.stringify({ cluster, task: { type, index } }) },
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
          child.on('close', (code) => {
            clearTimeout(timer);
            resolve({ type: `${type}-${index}`, code, stderr });
          });
        }),
    );
    const results = await Promise.all(runs);
    for (const r of results) {
      expect(r.code, `${r.type}:\n${r.stderr}`).toBe(0);
      expect(r.stderr).toMatch(/TF_CONFIG: running as/);
    }
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { workers: number; ps: number; steps: number };
    expect(report).toMatchObject({ workers: 2, ps: 1, steps: 16 });
    // The parameter server exited because the chief shut it down.
    expect(results.find((r) => r.type === 'ps-0')?.stderr).toMatch(/shutdown requested by the chief/);
  });

  it('a failed job stops its parameter servers too (so `docker compose up` returns)', async () => {
    const [chief, ps, w0] = (await freePorts(3)).map((p) => `127.0.0.1:${p}`) as [string, string, string];
    const cluster = { chief: [chief], ps: [ps], worker: [w0] };
    const out = join(dir, 'failed');
    const start = (type: string) => {
      const child = spawn(process.execPath, [TAMP_BIN, 'train', ...TINY, '--heartbeat-timeout', '1', '--out', out], {
        env: { ...process.env, TAMP_INSECURE: '1', TF_CONFIG: JSON.stringify({ cluster, task: { type, index: 0 } }) },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stderr });
        }),
      );
      return { child, done, stderr: () => stderr };
    };
    const psRole = start('ps');
    const chiefRole = start('chief');
    const worker = start('worker');
    // Once the worker has joined, kill it: with no worker left the job fails.
    for (let i = 0; i < 1200 && !/worker-0 \(.*\) joined/.test(chiefRole.stderr()); i++) await new Promise((r) => setTimeout(r, 50));
    worker.child.kill('SIGKILL');
    const [c, p] = await Promise.all([chiefRole.done, psRole.done]);
    expect(c.code, c.stderr).toBe(1);
    expect(c.stderr).toMatch(/every worker was lost before finishing/);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/shutdown requested by the chief.*job failed/);
  });
});
