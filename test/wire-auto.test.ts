/**
 * `--wire auto` picks codecs from what the worker's own link measures: fp32
 * on loopback (bytes are nearly free, quantizing is not), int4 pulls and
 * top-k pushes (DGC, with momentum correction) across a link of the network
 * lab (test/helpers/netlab.ts) so slow that int4 would still leave the step
 * dominated by communication. The choice and its reason are in report.json.
 */
import { type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { labUnavailable, NetworkLab } from './helpers/netlab.js';
import { TAMP_BIN, jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-wire-auto-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1024', '--lr', '0.003'];
// Across the lab link (8 steps, to keep CI short): LeNet-300-100's 1.07 MB of parameters, many times the link's token bucket (tbf's
// 128 KiB burst, netlab.ts), so the probe's pulls measure the link's rate, not a burst: with mlp-tiny's
// 0.1 MB a whole pull fitted in the bucket, ran at ~50 Mbit/s, and fp32 looked fastest on a quiet machine.
// Momentum SGD, so a worker that takes top-k keeps the momentum (DGC's momentum correction).
const LAB_JOB = ['--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '512', '--optimizer', 'momentum', '--lr', '0.05'];

interface AutoReport {
  steps: number;
  wirePush: string;
  wirePull: string;
  wireMomentumCorrection: boolean;
  wireAdamCorrection: boolean;
  wireAdamCorrectionWhy: string;
  testAccuracy: number;
  pushBytesPerStep: number;
  workerStats: Array<{ wireChoice?: string }>;
}

function finished(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stdout?.resume();
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

describe('--wire auto', () => {
  it('keeps fp32 on loopback, saying why, and trains exactly as fp32 does', async () => {
    // Sync with one worker and a seed: deterministic, so fp32's weights are the reference, bit for bit.
    const job = ['train', '--local', '--ps', '1', '--workers', '1', ...TINY, '--mode', 'sync', '--seed', '3', '--backend', 'wasm'];
    const fp32 = await runTamp([...job, '--out', join(dir, 'loopback-fp32'), '--json']);
    expect(fp32.code, fp32.stderr).toBe(0);
    const r = await runTamp([...job, '--wire', 'auto', '--out', join(dir, 'loopback'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    // Dense pushes under auto are plain gradients that the servers apply with Adam, as fp32's are (no Adam correction for them).
    expect(readFileSync(join(dir, 'loopback', 'model', 'weights.bin')).equals(readFileSync(join(dir, 'loopback-fp32', 'model', 'weights.bin')))).toBe(true);
    const report = jsonOf<AutoReport>(r);
    // Adam (the default optimizer): the job allows the Adam correction, for a worker whose link takes top-k; fp32 pushes get Adam on the servers.
    expect(report).toMatchObject({ steps: 16, wirePush: 'auto', wirePull: 'auto', wireAdamCorrection: true });
    expect(report.wireAdamCorrectionWhy).toMatch(/--wire auto pick top-k.*dense pushes get Adam on the parameter servers as usual/);
    expect(report.workerStats[0]?.wireChoice).toMatch(/^push fp32, pull fp32: .*fp32 [\d.]+(-[\d.]+)? ms, fp16 [\d.]+(-[\d.]+)? ms, int8 [\d.]+(-[\d.]+)? ms, int4 [\d.]+(-[\d.]+)? ms/);
  });

  it('pushes top-k with momentum correction and pulls int4 across a 2 Mbit/s link of the network lab, saying why', async () => {
    const why = labUnavailable();
    if (why !== undefined) throw new Error(why);
    const lab = NetworkLab.create([
      { name: 'ps', mbit: 1000 },
      { name: 'w', mbit: 2 },
    ]);
    try {
      const ps = lab.host('ps');
      const io: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'] };
      // The lab's addresses are not loopback: plaintext must be asked for.
      const job = ['--job-id', 'wire-auto', '--insecure'];
      const out = join(dir, 'lab');
      const server = finished(lab.spawn('ps', process.execPath, [TAMP_BIN, 'ps', '--index', '0', '--host', ps.address, '--port', '2222', ...job], io));
      const chief = finished(
        lab.spawn('ps', process.execPath, [TAMP_BIN, 'chief', '--host', ps.address, '--port', '2223', '--ps', `${ps.address}:2222`, '--workers', '1', ...LAB_JOB, '--wire', 'auto', '--out', out, ...job], io),
      );
      const worker = finished(lab.spawn('w', process.execPath, [TAMP_BIN, 'worker', '--chief', `${ps.address}:2223`, '--index', '0', '--backend', 'wasm', ...job], io));
      const [c, wk, p] = await Promise.all([chief, worker, server]);
      expect(c.code, c.stderr).toBe(0);
      expect(wk.code, wk.stderr).toBe(0);
      expect(p.code, p.stderr).toBe(0);
      const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as AutoReport;
      expect(report.steps).toBe(8);
      // 1.07 MB of parameters: about 4.3 s in fp32 at 2 Mbit/s, 1.1 s in int8 and 0.6 s in int4 (the fastest), so about
      // 1.2 s a step on the wire in int4 (a push and a pull) against tens of milliseconds of compute (the first step,
      // which is what counts, took 0.4 s at a load average of 10 here, with tfjs's warm-up: top-k is taken below 0.6 s).
      expect(report.workerStats[0]?.wireChoice).toMatch(
        /^push topk:0\.01, pull int4: int4 both ways: .* saves \d+% of the fp32 transfer time; then pushes as topk:0\.01: int4 puts about \d+ ms a step on the wire .* over 2x, .*momentum correction on \(m=0\.9/,
      );
      expect(report.wireMomentumCorrection).toBe(true);
      // Dense (fp32) only in the warm-up's one step of 8, then about 14 kB a step: about 0.14x of fp32 (int8 pushes would be
      // 0.25x; int4 pushes, 0.141x, would pass this too: the wire choice above is what says top-k).
      expect(report.pushBytesPerStep).toBeLessThan(0.2 * 1_066_440);
      // Twice chance after 8 steps (about 0.41 here).
      expect(report.testAccuracy).toBeGreaterThan(0.2);
    } finally {
      lab.close();
    }
  });
});
