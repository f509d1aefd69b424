/**
 * A link cut in the network lab: the parameter server, the chief and two
 * workers each on their own host (network namespace); one worker's link goes
 * down for 10 s in mid-job, then comes back. Whatever the heartbeat timeout
 * says, the job completes: with a timeout shorter than the cut the worker is
 * dropped and comes back (the chief logs both), with a longer one it rides the
 * cut out and is never dropped.
 *
 * Slowness by construction: every worker step takes at least
 * TAMP_TEST_STEP_DELAY_MS, so the job outlasts the cut however fast the
 * machine is; the cut starts once the chief has reported progress, not after a
 * guessed delay.
 */
import { type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUnavailable, NetworkLab } from './helpers/netlab.js';
import { TAMP_BIN } from './helpers/tamp.js';

const CUT_MS = 10_000;
const STEP_DELAY_MS = 400;
// 2 workers, async, batch 64: 50 steps each (MNIST's training split here holds 7,000 digits, so a larger
// --epoch-size would be cut to it). The cut starts once 10 steps are done, so the other worker has at least
// 40 steps, at least 16 s, left: the job outlasts the 10 s cut by construction, and the cut worker comes back
// to a running job.
const EPOCH_SIZE = 2 * 50 * 64;

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function finished(child: ChildProcess, onLine?: (line: string) => void): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) onLine?.(line);
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('a link cut in the network lab', () => {
  let lab: NetworkLab;
  const outs: string[] = [];

  beforeAll(() => {
    const why = labUnavailable();
    if (why !== undefined) throw new Error(why);
    lab = NetworkLab.create([{ name: 'ps' }, { name: 'chief' }, { name: 'w0' }, { name: 'w1' }]);
  });

  afterAll(() => {
    lab?.close();
    for (const out of outs) rmSync(out, { recursive: true, force: true });
  });

  async function cutJob(heartbeatTimeoutSeconds: number, port: number): Promise<{ chief: Finished; workers: Finished[]; ps: Finished; report: { steps: number; workers: number } }> {
    const out = mkdtempSync(join(tmpdir(), 'tamp-linkcut-'));
    outs.push(out);
    const io: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TAMP_TEST_STEP_DELAY_MS: String(STEP_DELAY_MS) } };
    // The lab's addresses are not loopback: plaintext must be asked for.
    const job = ['--job-id', 'linkcut', '--insecure'];
    const psHost = lab.host('ps').address;
    const chiefHost = lab.host('chief').address;
    const ps = finished(lab.spawn('ps', process.execPath, [TAMP_BIN, 'ps', '--index', '0', '--host', psHost, '--port', String(port), ...job], io));
    let resolveProgress: () => void = () => undefined;
    const progressed = new Promise<void>((resolve) => (resolveProgress = resolve));
    const chief = finished(
      lab.spawn(
        'chief',
        process.execPath,
        [
          TAMP_BIN, 'chief', '--host', chiefHost, '--port', String(port + 1), '--ps', `${psHost}:${port}`, '--workers', '2', '--mode', 'async',
          '--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', String(EPOCH_SIZE), '--lr', '0.01', '--checkpoint-every', '0',
          '--heartbeat-timeout', String(heartbeatTimeoutSeconds), '--out', out, '--json', ...job,
        ],
        io,
      ),
      (line) => {
        // The chief's progress lines carry the steps done so far: cut once training is under way.
        const done = /"done":(\d+)/.exec(line);
        if (done !== null && Number(done[1]) >= 10) resolveProgress();
      },
    );
    const workers = ['w0', 'w1'].map((host, i) =>
      finished(lab.spawn(host, process.execPath, [TAMP_BIN, 'worker', '--chief', `${chiefHost}:${port + 1}`, '--index', String(i), ...job], io)),
    );
    await progressed;
    lab.setLink('w1', false);
    await new Promise((r) => setTimeout(r, CUT_MS));
    lab.setLink('w1', true);
    const [c, p, ...w] = await Promise.all([chief, ps, ...workers]);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { steps: number; workers: number };
    return { chief: c, ps: p, workers: w, report };
  }

  it('with a heartbeat timeout shorter than the cut, the worker is dropped, comes back, and the job completes', async () => {
    const { chief, ps, workers, report } = await cutJob(3, 2222);
    expect(chief.code, chief.stderr.slice(-3000)).toBe(0);
    expect(ps.code, ps.stderr.slice(-2000)).toBe(0);
    for (const w of workers) expect(w.code, w.stderr.slice(-2000)).toBe(0);
    expect(chief.stderr).toMatch(/worker-1 lost: no heartbeat/);
    expect(chief.stderr).toMatch(/worker-1 (is back|\(.*\) rejoined)/);
    expect(report.workers).toBe(2);
    expect(report.steps).toBeGreaterThan(0);
  });

  it('with a heartbeat timeout longer than the cut, the worker rides it out and is never dropped', async () => {
    const { chief, ps, workers, report } = await cutJob(30, 2232);
    expect(chief.code, chief.stderr.slice(-3000)).toBe(0);
    expect(ps.code, ps.stderr.slice(-2000)).toBe(0);
    for (const w of workers) expect(w.code, w.stderr.slice(-2000)).toBe(0);
    expect(chief.stderr).not.toMatch(/lost: no heartbeat/);
    expect(report.workers).toBe(2);
    expect(report.steps).toBeGreaterThan(0);
  });
});
