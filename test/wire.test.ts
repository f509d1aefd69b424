/**
 * Compressed communication end to end: tiny local clusters (real processes on
 * loopback) train with each push and pull codec, and their report.json says
 * how many bytes crossed the wire per step. The ratios are checked against
 * fp32 from the same job; accuracy only against a sanity bound (32 steps of
 * mlp-tiny).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonOf, runTamp } from './helpers/tamp.js';
import { useTestLoad } from './helpers/load.js';

useTestLoad(); // TAMP_TEST_LOAD=N: run under N busy processes (test/helpers/load.ts)

const dir = mkdtempSync(join(tmpdir(), 'tamp-wire-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// mlp-tiny: 25,450 float32 values, 101,800 bytes per step each way in fp32.
const FP32_BYTES = 25_450 * 4;
const TINY = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '2048', '--lr', '0.003', '--backend', 'wasm'];

interface WireReport {
  testAccuracy: number;
  optimizer: string;
  wireMomentumCorrection: boolean;
  wireMomentumCorrectionWhy: string;
  wireAdamCorrection: boolean;
  wireAdamCorrectionWhy: string;
  wireErrorFeedback: boolean;
  wireSparseBiases: boolean;
  steps: number;
  wirePush: string;
  wirePull: string;
  pushBytesPerStep: number;
  pullBytesPerStep: number;
  workerStats: Array<{ seconds: number; computeSeconds: number; pushWaitSeconds: number; pullWaitSeconds: number }>;
}

async function train(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<WireReport> {
  const r = await runTamp(['train', '--local', '--ps', '1', '--workers', '1', ...TINY, ...args, '--out', join(dir, name), '--json'], { env });
  expect(r.code, r.stderr).toBe(0);
  return jsonOf<WireReport>(r);
}

const reports = new Map<string, WireReport>();

describe('compressed communication in a local cluster', () => {
  beforeAll(async () => {
    // One at a time: the machine has few cores, and each run is 4 processes.
    reports.set('fp32', await train('fp32', []));
    reports.set('fp16', await train('fp16', ['--wire-push', 'fp16', '--wire-pull', 'fp16', '--mode', 'sync']));
    reports.set('int8', await train('int8', ['--wire-push', 'int8', '--wire-pull', 'int8']));
    reports.set('int4', await train('int4', ['--wire-push', 'int4', '--wire-pull', 'int4']));
    // Through the environment, as containers set it; no warm-up, so every step is sparse.
    reports.set('topk', await train('topk', [], { TAMP_WIRE_PUSH: 'topk:0.01', TAMP_WIRE_PULL: 'int8', TAMP_WIRE_WARMUP: '0' }));
  }, 400_000);

  it('trains with every codec (above a sanity accuracy) and reports the codecs and each worker\'s time split', () => {
    for (const [name, r] of reports) {
      expect(r.steps, name).toBe(32);
      // Five times chance after 32 steps (fp32, int8 and int4 reach about 0.79 here; top-k 1% about 0.56).
      expect(r.testAccuracy, name).toBeGreaterThan(name === 'topk' ? 0.4 : 0.5);
      const w = r.workerStats[0];
      expect(w, name).toBeDefined();
      if (w === undefined) continue;
      expect(w.computeSeconds, name).toBeGreaterThan(0);
      expect(w.pushWaitSeconds, name).toBeGreaterThanOrEqual(0);
      expect(w.pullWaitSeconds, name).toBeGreaterThan(0);
      expect(w.computeSeconds + w.pushWaitSeconds + w.pullWaitSeconds, name).toBeLessThanOrEqual(w.seconds * 1.01 + 0.05);
    }
    // Adam (the default optimizer) with top-k: the workers keep Adam's moments, the servers apply plain SGD to their direction.
    expect([...reports.values()].map((r) => r.wireAdamCorrection)).toEqual([false, false, false, false, true]);
    expect(reports.get('topk')?.wireAdamCorrectionWhy).toMatch(/keeps Adam's moments.*plain SGD/);
    // By default error feedback is on and top-k sends biases whole; report.json says so.
    for (const [name, r] of reports) expect([r.wireErrorFeedback, r.wireSparseBiases], name).toEqual([true, false]);
    expect([...reports.values()].map((r) => [r.wirePush, r.wirePull])).toEqual([
      ['fp32', 'fp32'],
      ['fp16', 'fp16'],
      ['int8', 'int8'],
      ['int4', 'int4'],
      ['topk:0.01', 'int8'],
    ]);
  });

  it('sends the bytes each codec promises, measured on the wire', () => {
    const at = (name: string) => reports.get(name) as WireReport;
    expect(at('fp32').pushBytesPerStep).toBe(FP32_BYTES);
    expect(at('fp32').pullBytesPerStep).toBe(FP32_BYTES);
    expect(at('fp16').pushBytesPerStep / FP32_BYTES).toBeLessThanOrEqual(0.51);
    expect(at('fp16').pullBytesPerStep / FP32_BYTES).toBeLessThanOrEqual(0.51);
    expect(at('int8').pushBytesPerStep / FP32_BYTES).toBeLessThanOrEqual(0.27);
    // Two values a byte and a float32 scale per 64: 0.141x.
    expect(at('int4').pushBytesPerStep / FP32_BYTES).toBeLessThanOrEqual(0.141);
    // Half-precision values and one-byte gaps: about 3.3 bytes a kept value, 0.008x, and the biases (42 values) whole at 2 bytes each, 0.001x (the goal is 0.02x).
    expect(at('topk').pushBytesPerStep / FP32_BYTES).toBeLessThanOrEqual(0.01);
    // int8 pulls: the first pull carries whole fp32 values, every later one a quarter: over 33 pulls that is under 0.3x.
    for (const name of ['int8', 'topk']) expect(at(name).pullBytesPerStep / FP32_BYTES, name).toBeLessThanOrEqual(0.3);
    // int4 pulls: the same first fp32 pull, then 0.141x each: under 0.17x over 33 pulls.
    expect(at('int4').pullBytesPerStep / FP32_BYTES).toBeLessThanOrEqual(0.17);
  });
});

describe('measurement switches', () => {
  it('--wire-no-feedback and --wire-sparse-biases reach the job and report.json records them', async () => {
    // Four steps (the later --epoch-size wins): only the settings are checked.
    const r = await train('switches', ['--wire-push', 'topk:0.01', '--wire-no-feedback', '--wire-sparse-biases', '--epoch-size', '256']);
    expect(r).toMatchObject({ steps: 4, wirePush: 'topk:0.01', wireErrorFeedback: false, wireSparseBiases: true });
  }, 200_000);
});

describe('top-k with DGC momentum correction', () => {
  it('trains with momentum SGD at 1% density, the workers keeping the momentum, and the report says so', async () => {
    // The default warm-up (5% of the steps: 2 dense ones), then 1%; momentum 0.9 on the worker, plain SGD on the server.
    const r = await train('dgc', ['--optimizer', 'momentum', '--lr', '0.1', '--wire-push', 'topk:0.01', '--wire-pull', 'int8']);
    expect(r).toMatchObject({ steps: 32, optimizer: 'momentum', wirePush: 'topk:0.01', wireMomentumCorrection: true });
    expect(r.wireMomentumCorrectionWhy).toMatch(/workers keep the momentum \(m=0\.9\).*plain SGD/);
    expect(r.wireAdamCorrection).toBe(false);
    // Three times chance after 32 steps (it reaches about 0.44 here; fp32 with the servers' momentum about 0.47).
    expect(r.testAccuracy).toBeGreaterThan(0.3);
    // One dense warm-up step of 32 at 2 bytes a value (a whole tensor sends no positions), then 1% as half values and gaps,
    // biases whole: about 0.025x of fp32 (0.033x when a dense step sent its gaps, 0.046x when values went as float32).
    expect(r.pushBytesPerStep / FP32_BYTES).toBeLessThanOrEqual(0.03);
  }, 200_000);
});
