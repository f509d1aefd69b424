/**
 * Every role's Prometheus metrics in a real `tamp train --local` job
 * (`--metrics-port-base`): each role is scraped during the job and once more
 * after its work ended (TAMP_TEST_HOLD_METRICS_MS, the test hook that keeps a
 * role's /metrics up until that scrape); every scrape parses as strict
 * Prometheus text, and the final counts agree exactly with report.json and
 * with each other (pushes, bytes, steps, samples).
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Family, parsePrometheusText, valueOf } from './helpers/prometheus.js';
import { freePortRange } from './helpers/ports.js';
import { jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1024', '--lr', '0.003'];
const PS = 2;
const WORKERS = 2;

interface Report {
  steps: number;
  samples: number;
  epochs: number;
  checkpoints: string[];
  history: Array<{ validationAccuracy?: number }>;
  workerStats: Array<{ workerId: string; steps: number; samples: number }>;
}

/** Scrape every port until the job ends; keep each port's last good scrape and whether one came while the job ran. */
async function scrapeUntil(done: () => boolean, ports: readonly number[]): Promise<{ last: Map<number, Map<string, Family>>; during: Map<number, Map<string, Family>> }> {
  const last = new Map<number, Map<string, Family>>();
  const during = new Map<number, Map<string, Family>>();
  while (!done()) {
    await Promise.all(
      ports.map(async (port) => {
        let text: string;
        try {
          text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
        } catch {
          return; // not up yet, or gone
        }
        const families = parsePrometheusText(text); // throws on anything that is not Prometheus text
        if (!during.has(port) && valueOf(families, 'tamp_chief_job_state', { state: 'running' }) === 1) during.set(port, families);
        if (!during.has(port) && (valueOf(families, 'tamp_worker_step', { worker: String(port - ports[0]! - PS - 1) }) ?? 0) > 0) during.set(port, families);
        last.set(port, families);
      }),
    );
    await new Promise((r) => setTimeout(r, 250));
  }
  return { last, during };
}

describe('the strict Prometheus text reader (test/helpers/prometheus.ts)', () => {
  it('reads labels, escapes and special values, and refuses what Prometheus would', () => {
    const ok = parsePrometheusText(
      '# HELP a_total Things.\n# TYPE a_total counter\na_total{k="x\\"y\\\\z\\n"} 3\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 4.5e0\nh_count 2\ng Nan\n',
    );
    expect(valueOf(ok, 'a_total', { k: 'x"y\\z\n' })).toBe(3);
    expect(valueOf(ok, 'h', {}, 'h_count')).toBe(2);
    expect(valueOf(ok, 'g')).toBeNaN();
    for (const bad of [
      'a x\n', // not a number
      'a{k="v" 1\n', // unterminated labels
      'a{k=v} 1\n', // unquoted label value
      'a 1\na 2\n', // the same series twice
      'a 1\n# TYPE a gauge\n', // TYPE after samples
      '# TYPE c counter\nc -1\n', // a counter below zero
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n', // buckets not cumulative
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n', // no +Inf bucket
      'a 1', // no final line feed
    ]) {
      expect(() => parsePrometheusText(bad), bad).toThrow();
    }
  });
});

describe('metrics of every role (real processes)', () => {
  it('a tamp train --local job: each role\'s /metrics parses, and the final counts agree with report.json', async () => {
    const out = join(dir, 'job');
    const base = await freePortRange(PS + 1 + WORKERS);
    const ports = Array.from({ length: PS + 1 + WORKERS }, (_, i) => base + i);
    let finished = false;
    // A checkpoint every 2 steps of each worker: barriers in the middle of the job, whose pulls are counted below.
    const job = runTamp(['train', '--local', '--ps', String(PS), '--workers', String(WORKERS), ...TINY, '--checkpoint-every', '2', '--backend', 'wasm', '--out', out, '--metrics-port-base', String(base), '--json'], {
      env: { TAMP_TEST_HOLD_METRICS_MS: '60000' },
    }).finally(() => (finished = true));
    const { last, during } = await scrapeUntil(() => finished, ports);
    const r = await job;
    expect(r.code, r.stderr).toBe(0);
    const report = jsonOf<Report>(r);
    expect(report.steps).toBe(16);
    expect(report.checkpoints.length).toBeGreaterThan(2);

    const psMetrics = ports.slice(0, PS).map((p) => last.get(p) as Map<string, Family>);
    const chief = last.get(base + PS) as Map<string, Family>;
    const workers = ports.slice(PS + 1).map((p) => last.get(p) as Map<string, Family>);
    for (const m of [...psMetrics, chief, ...workers]) {
      expect(m).toBeDefined();
      // Node's process metrics on every role.
      expect(valueOf(m, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    }
    // Scraped while the job ran: the chief running, each worker part way.
    expect(during.has(base + PS)).toBe(true);

    // Parameter servers: every worker step pushed once to each shard and applied there.
    const workerSteps = report.workerStats.reduce((n, w) => n + w.steps, 0);
    expect(workerSteps).toBe(report.steps);
    const modelBytes = readdirSync(join(out, 'model')).filter((f) => f.endsWith('.bin')).reduce((n, f) => n + statSync(join(out, 'model', f)).size, 0);
    let variableBytes = 0;
    psMetrics.forEach((m, i) => {
      const shard = { shard: String(i) };
      expect(valueOf(m, 'tamp_ps_version', shard)).toBe(report.steps);
      expect(valueOf(m, 'tamp_ps_applied_steps_total', shard)).toBe(report.steps);
      expect(valueOf(m, 'tamp_ps_pushes_total', { ...shard, outcome: 'applied' })).toBe(workerSteps);
      for (const outcome of ['duplicate', 'dropped', 'refused']) expect(valueOf(m, 'tamp_ps_pushes_total', { ...shard, outcome }) ?? 0).toBe(0);
      expect(valueOf(m, 'tamp_ps_push_duration_seconds', shard, 'tamp_ps_push_duration_seconds_count')).toBe(workerSteps);
      expect(valueOf(m, 'tamp_ps_gradient_staleness', shard, 'tamp_ps_gradient_staleness_count')).toBe(workerSteps);
      const bytes = valueOf(m, 'tamp_ps_variable_bytes', shard) as number;
      variableBytes += bytes;
      // A push message is the shard's gradient plus its chunk headers.
      const pushBytes = valueOf(m, 'tamp_ps_push_bytes_total', shard) as number;
      expect(pushBytes).toBeGreaterThanOrEqual(workerSteps * bytes);
      expect(pushBytes).toBeLessThanOrEqual(workerSteps * (bytes + 1024));
      // Workers pull before each step; the chief pulls for each evaluation.
      const pulls = valueOf(m, 'tamp_ps_pulls_total', { ...shard, outcome: 'served' }) as number;
      expect(pulls).toBeGreaterThanOrEqual(workerSteps);
      expect(valueOf(m, 'tamp_ps_pull_bytes_total', shard) as number).toBeGreaterThanOrEqual(pulls * bytes);
      expect(valueOf(m, 'tamp_ps_assigned', shard)).toBe(1);
      // The chief's checkpoints: one SaveShard each.
      expect(valueOf(m, 'tamp_ps_checkpoint_duration_seconds', shard, 'tamp_ps_checkpoint_duration_seconds_count')).toBe(report.checkpoints.length);
    });
    // The shards hold the model's weights between them, exactly.
    expect(variableBytes).toBe(modelBytes);

    // The chief: its view of the job, as report.json has it.
    expect(valueOf(chief, 'tamp_chief_global_step')).toBe(report.steps);
    expect(valueOf(chief, 'tamp_chief_samples_total')).toBe(report.samples);
    expect(valueOf(chief, 'tamp_chief_checkpoints_total')).toBe(report.checkpoints.length);
    expect(valueOf(chief, 'tamp_chief_epochs_evaluated')).toBe(report.epochs);
    const accuracy = report.history.at(-1)?.validationAccuracy;
    expect(accuracy).toBeGreaterThan(0);
    expect(valueOf(chief, 'tamp_chief_validation_accuracy')).toBe(accuracy);
    expect(valueOf(chief, 'tamp_chief_workers', { state: 'finished' })).toBe(WORKERS);
    expect(valueOf(chief, 'tamp_chief_job_state', { state: 'done' })).toBe(1);
    expect(valueOf(chief, 'tamp_rpc_server_handled_total', { method: '/tamp.v1.Coordinator/Join', code: 'OK' })).toBe(WORKERS);

    // Workers: their own counts, and their comm thread's RPCs summed into the same scrape. In async
    // the workers claim batches as they go, so how the 16 split between them is the machine's doing
    // (a worker that started late may train none); each one's metrics must match its own share.
    expect(report.workerStats.filter((w) => w.steps > 0).length).toBeGreaterThan(0);
    workers.forEach((m, i) => {
      const worker = { worker: String(i) };
      const stats = report.workerStats.find((w) => w.workerId === `worker-${i}`);
      expect(stats).toBeDefined();
      const steps = stats?.steps ?? -1;
      expect(valueOf(m, 'tamp_worker_steps_total', worker) ?? 0).toBe(steps);
      expect(valueOf(m, 'tamp_worker_step', worker) ?? 0).toBe(steps);
      expect(valueOf(m, 'tamp_worker_samples_total', worker) ?? 0).toBe(stats?.samples);
      if (steps > 0) {
        expect(valueOf(m, 'tamp_worker_samples_per_second', worker) as number).toBeGreaterThan(0);
        expect(valueOf(m, 'tamp_worker_step_phase_seconds_total', { ...worker, phase: 'compute' }) as number).toBeGreaterThan(0);
      }
      expect(valueOf(m, 'tamp_rpc_client_handled_total', { method: '/tamp.v1.ParameterServer/Push', code: 'OK' }) ?? 0).toBe(steps * PS);
      // One pull of each shard per step: made during the step before, or (the first step, and the first after a
      // checkpoint barrier or a wait for batches) before the step itself; none wasted.
      expect(valueOf(m, 'tamp_rpc_client_handled_total', { method: '/tamp.v1.ParameterServer/Pull', code: 'OK' }) ?? 0).toBe(steps * PS);
      expect(valueOf(m, 'tamp_rpc_client_handled_total', { method: '/tamp.v1.Coordinator/Heartbeat', code: 'OK' }) as number).toBeGreaterThan(0);
    });
  });

  it('tamp train --local takes --metrics-port-base (checked in a dry run), not --metrics-port', async () => {
    const out = join(dir, 'dry');
    const ok = await runTamp(['train', '--local', '--ps', '1', '--workers', '2', ...TINY, '--out', out, '--metrics-port-base', '9100', '--dry-run', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(jsonOf(ok)).toMatchObject({ dryRun: true, local: true, metricsPortBase: 9100 });
    const shared = await runTamp(['train', '--local', ...TINY, '--out', out, '--metrics-port', '9100', '--dry-run']);
    expect(shared.code).toBe(2);
    expect(shared.stderr).toMatch(/--metrics-port serves one role.*--metrics-port-base/);
    const high = await runTamp(['train', '--local', '--ps', '1', '--workers', '2', ...TINY, '--out', out, '--metrics-port-base', '65534', '--dry-run']);
    expect(high.code).toBe(2);
    expect(high.stderr).toMatch(/4 roles need ports up to 65537, past 65535/);
  });
});
