/**
 * pnpm test:arm64: the edge image's arm64 build runs and agrees with x86-64.
 *
 * The compiled /app exactly as docker/edge-arm64.Dockerfile's build stage
 * makes it (test/helpers/image-build.ts runs its instructions), run by Node
 * for linux-arm64 (the image's Node, fetched by the install script the image
 * shares) under qemu-aarch64's user-mode emulation, on WebGPU through Dawn's
 * linux-arm64 build with SwiftShader's arm64 Vulkan driver as the GPU, and on
 * the WASM fallback. The same compiled code run natively on x86-64 gives the
 * reference. Emulation is slow (most of it SwiftShader compiling each
 * pipeline), so this runs a handful of inferences, two processes at a time,
 * and asserts on results only, never on times.
 *
 * Not part of `pnpm test` (vitest.config.ts leaves it out); CI runs it after.
 * scripts/setup-arm64.sh installs what it needs; without it every test fails
 * saying what to install.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Arm64Setup,
  DETECTOR,
  type EdgeRun,
  INSTALL_SCRIPT,
  LENET_DC,
  dawnDirs,
  elfMachine,
  emulatedEnv,
  emulatedTamp,
  findArm64Setup,
  nativeEnv,
  nativeTamp,
  pool,
  prepareEdgeRun,
  run,
} from './helpers/arm64.js';
import { readDockerfile } from './helpers/containers.js';
import { freePorts } from './helpers/ports.js';
import { type RunResult, jsonOf } from './helpers/tamp.js';

interface Top {
  label: string;
  probability: number;
}
interface Where {
  device: string;
  adapter?: string;
  software: boolean;
  gpuWeightBytes: number;
}
type ImageResult = Where & { prediction: string; top: Top[] };
type DatasetResult = Where & { count: number; accuracy: number; predictions: number[]; labels: number[] };
type DetectionResult = Where & { count: number; mAP: number; firstScene: Array<{ label: string; score: number; box: number[] }> };
interface BenchResult {
  arch: string;
  device: string;
  adapter: string;
  software: boolean;
  dispatches: number;
  gpuWeightBytes: number;
  latencyMs: { p50: number };
}

const dir = mkdtempSync(join(tmpdir(), 'tamp-arm64-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let setup: Arm64Setup | undefined;
let setupError: Error | undefined;
try {
  setup = findArm64Setup();
} catch (error) {
  setupError = error as Error;
}
/** The setup, or the error saying what to install: every test fails with it, none is skipped. */
function need(): Arm64Setup {
  if (setup === undefined) throw setupError ?? new Error('arm64 setup missing');
  return setup;
}

let edge: EdgeRun | undefined;
const results = new Map<string, { x64?: RunResult; arm64: RunResult }>();

/** The inferences, each run natively and emulated. */
function cases(e: EdgeRun): Array<{ name: string; args: string[] }> {
  return [
    { name: 'lenet-int8 webgpu', args: ['infer', e.lenetInt8, '--image', e.digit, '--device', 'webgpu', '--json'] },
    { name: 'lenet-dc webgpu', args: ['infer', LENET_DC, '--image', e.digit, '--device', 'webgpu', '--json'] },
    { name: 'detector webgpu', args: ['infer', DETECTOR, '--dataset', 'shapes', '--limit', '2', '--device', 'webgpu', '--json'] },
    { name: 'bench webgpu', args: ['bench', 'infer', e.lenetInt8, '--device', 'webgpu', '--iterations', '2', '--warmup', '1', '--json'] },
    { name: 'lenet-int8 wasm', args: ['infer', e.lenetInt8, '--dataset', 'mnist', '--limit', '10', '--device', 'wasm', '--json'] },
    { name: 'lenet-dc wasm', args: ['infer', LENET_DC, '--image', e.digit, '--device', 'wasm', '--json'] },
    { name: 'detector wasm', args: ['infer', DETECTOR, '--dataset', 'shapes', '--limit', '2', '--device', 'wasm', '--json'] },
  ];
}

beforeAll(async () => {
  const s = need();
  // /app as the edge image's build stage makes it, its x86-64 twin, LeNet-5 int8 and a digit.
  const e = await prepareEdgeRun(dir);
  edge = e;
  // Every inference natively and emulated, two processes at a time.
  const jobs: Array<() => Promise<void>> = [];
  for (const c of cases(e)) {
    const entry: { x64?: RunResult; arm64: RunResult } = { arm64: { code: null, signal: null, stdout: '', stderr: 'not run' } };
    results.set(c.name, entry);
    jobs.push(async () => {
      entry.arm64 = await run(emulatedTamp(s, e.app, c.args), { cwd: dir, env: emulatedEnv(s, e.home), timeoutMs: 1_200_000 });
    });
    jobs.push(async () => {
      entry.x64 = await run(nativeTamp(e.twin, c.args), { cwd: dir, env: nativeEnv(e.home), timeoutMs: 600_000 });
    });
  }
  await pool(jobs, 2);
}, 3_600_000);

function built(): EdgeRun {
  if (edge === undefined) throw new Error('the edge build did not run (see the beforeAll error)');
  return edge;
}

/** Both runs of a case, each checked to have succeeded. */
function pair<T>(name: string): { x64: T; arm64: T } {
  const r = results.get(name);
  if (r === undefined || r.x64 === undefined) throw new Error(`no native run of ${name}`);
  expect(r.x64.code, `x86-64 ${name}:\n${r.x64.stderr}`).toBe(0);
  expect(r.arm64.code, `arm64 ${name}:\n${r.arm64.stderr}`).toBe(0);
  return { x64: jsonOf<T>(r.x64), arm64: jsonOf<T>(r.arm64) };
}

/** Same top-1, and every probability within 1e-4 (a label only one run lists in its top three is below 1e-4 in it). */
function expectSameTop(x64: ImageResult, arm64: ImageResult): void {
  expect(arm64.prediction).toBe(x64.prediction);
  expect(arm64.top[0]?.label).toBe(x64.top[0]?.label);
  for (const [a, b] of [
    [x64.top, arm64.top],
    [arm64.top, x64.top],
  ] as const) {
    for (const t of a) {
      const other = b.find((u) => u.label === t.label);
      if (other === undefined) expect(t.probability).toBeLessThanOrEqual(1e-4);
      else expect(Math.abs(other.probability - t.probability), `label ${t.label}`).toBeLessThanOrEqual(1e-4);
    }
  }
}

function expectSameDetections(x64: DetectionResult, arm64: DetectionResult): void {
  expect(arm64.count).toBe(x64.count);
  expect(x64.firstScene.length).toBeGreaterThan(0);
  expect(arm64.firstScene.map((d) => d.label)).toEqual(x64.firstScene.map((d) => d.label));
  x64.firstScene.forEach((d, i) => {
    const e = arm64.firstScene[i] as (typeof arm64.firstScene)[number];
    expect(Math.abs(e.score - d.score), `score of detection ${i}`).toBeLessThanOrEqual(1e-4);
    d.box.forEach((v, k) => expect(Math.abs((e.box[k] as number) - v), `box ${i} coordinate ${k}`).toBeLessThanOrEqual(1e-3));
  });
  expect(Math.abs(arm64.mAP - x64.mAP)).toBeLessThanOrEqual(1e-3);
}

describe('the arm64 edge build, emulated (qemu-aarch64, SwiftShader arm64)', () => {
  it('is the edge image’s: its build stage, its Node, Dawn’s arm64 build only, its runtime packages', () => {
    const s = need();
    const { app, ran } = built();
    expect(ran).toEqual(['pnpm fetch --offline', 'pnpm install --frozen-lockfile --offline', `node docker/build-dist.mjs --out ${app} --platform linux-arm64`]);
    const check = spawnSync('bash', [INSTALL_SCRIPT, 'check-app', app], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    for (const dist of dawnDirs(app)) expect(elfMachine(readFileSync(join(dist, 'linux-arm64', 'dawn.node')))).toBe(183);
    // The image's Node: the node stage's version, fetched by the same script.
    const df = readDockerfile('edge-arm64.Dockerfile');
    const nodeStage = df.stages.find((st) => st.name === 'node');
    expect(nodeStage?.instructions.some((i) => i.keyword === 'RUN' && i.args.startsWith('bash /tmp/edge-arm64-install.sh node '))).toBe(true);
    const version = /^node:(\d+\.\d+\.\d+)-/.exec(nodeStage?.image ?? '')?.[1];
    expect(readFileSync(join(s.node, '..', '..', 'VERSION'), 'utf8').trim()).toBe(version);
    expect(elfMachine(readFileSync(s.node))).toBe(183);
    // The runtime stage installs every package the script lists.
    const packages = spawnSync('bash', [INSTALL_SCRIPT, 'runtime-packages'], { encoding: 'utf8' }).stdout.trim().split('\n');
    const apt = df.stages.at(-1)?.instructions.find((i) => i.keyword === 'RUN' && /apt-get .*install/.test(i.args))?.args ?? '';
    for (const p of packages) expect(apt.split(/\s+/), p).toContain(p);
  });

  it('tamp infer --device webgpu: LeNet-5 int8 and Deep Compression give the x86-64 probabilities on SwiftShader arm64', () => {
    for (const name of ['lenet-int8 webgpu', 'lenet-dc webgpu']) {
      const { x64, arm64 } = pair<ImageResult>(name);
      expect(arm64.device, name).toBe('webgpu');
      expect(arm64.adapter, name).toMatch(/swiftshader/i);
      expect(arm64.software).toBe(true);
      expect(arm64.gpuWeightBytes).toBe(x64.gpuWeightBytes);
      expect(x64.prediction, name).toBe(built().digitLabel);
      expectSameTop(x64, arm64);
    }
  });

  it('tamp infer --device webgpu: the int8 detector finds the same boxes', () => {
    const { x64, arm64 } = pair<DetectionResult>('detector webgpu');
    expect(arm64.device).toBe('webgpu');
    expect(arm64.adapter).toMatch(/swiftshader/i);
    expect(arm64.count).toBe(2);
    expectSameDetections(x64, arm64);
  });

  it('tamp bench infer reports an arm64 process on the SwiftShader adapter', () => {
    const { x64, arm64 } = pair<BenchResult>('bench webgpu');
    expect(x64.arch).toBe('x64');
    expect(arm64.arch).toBe('arm64');
    expect(arm64.device).toBe('webgpu');
    expect(arm64.adapter).toMatch(/swiftshader/i);
    expect(arm64.software).toBe(true);
    // The same kernels (one dispatch per layer) and the same packed weights on the GPU as on x86-64.
    expect(arm64.dispatches).toBe(x64.dispatches);
    expect(arm64.gpuWeightBytes).toBe(x64.gpuWeightBytes);
    expect(arm64.gpuWeightBytes).toBe(pair<ImageResult>('lenet-int8 webgpu').arm64.gpuWeightBytes);
    expect(arm64.latencyMs.p50).toBeGreaterThan(0);
  });

  it('the WASM fallback agrees too: LeNet-5 int8 on 10 digits, Deep Compression, the detector', () => {
    const digits = pair<DatasetResult>('lenet-int8 wasm');
    expect(digits.arm64.device).toBe('wasm');
    expect(digits.arm64.count).toBe(10);
    expect(digits.arm64.predictions).toEqual(digits.x64.predictions);
    expect(digits.arm64.labels).toEqual(digits.x64.labels);
    expect(digits.arm64.accuracy).toBe(digits.x64.accuracy);
    const dc = pair<ImageResult>('lenet-dc wasm');
    expect(dc.arm64.device).toBe('wasm');
    expectSameTop(dc.x64, dc.arm64);
    const detector = pair<DetectionResult>('detector wasm');
    expect(detector.arm64.device).toBe('wasm');
    expectSameDetections(detector.x64, detector.arm64);
  });
});

describe('tamp serve on arm64', () => {
  /** Start `tamp serve` (argv from nativeTamp/emulatedTamp) and wait until it is ready; returns its URL and pid. */
  async function startServe(argv: readonly string[], env: NodeJS.ProcessEnv, port: number): Promise<{ url: string; child: ChildProcess }> {
    const [command, ...args] = argv as [string, ...string[]];
    const child = spawn(command, args, { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    // Emulated start-up is slow (minutes on a busy machine): a bounded wait on the server's own readiness.
    for (let i = 0; i < 1_200; i++) {
      if (child.exitCode !== null) throw new Error(`tamp serve exited (${child.exitCode}):\n${stderr}`);
      if (await fetch(`${url}/v2/health/ready`).then((r) => r.status === 200, () => false)) return { url, child };
      await new Promise((r) => setTimeout(r, 500));
    }
    child.kill('SIGKILL');
    throw new Error(`tamp serve never became ready:\n${stderr}`);
  }

  async function inferDigit(url: string): Promise<number[]> {
    const x = Array.from({ length: 784 }, (_, i) => ((i * 7919) % 997) / 997);
    const r = await fetch(`${url}/v2/models/digits/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 28, 28, 1], datatype: 'FP32', data: x }] }) });
    expect(r.status).toBe(200);
    return ((await r.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]?.data as number[];
  }

  it('answers health and an inference from the host side, as x86-64 does, with the detector loaded', async () => {
    const s = need();
    const e = built();
    const [nativePort, armPort] = await freePorts(2);
    const args = (port: number) => ['serve', '--model', `digits=${e.lenetInt8}`, '--model', `objects=${DETECTOR}`, '--device', 'wasm', '--http-port', String(port), '--grpc-port', '0'];
    const native = await startServe(nativeTamp(e.twin, args(nativePort as number)), nativeEnv(e.home), nativePort as number);
    let expected: number[];
    try {
      expected = await inferDigit(native.url);
    } finally {
      native.child.kill('SIGTERM');
    }
    const arm = await startServe(emulatedTamp(s, e.app, args(armPort as number)), emulatedEnv(s, e.home), armPort as number);
    try {
      expect((await fetch(`${arm.url}/v2/health/live`)).status).toBe(200);
      const meta = (await (await fetch(`${arm.url}/v2/models/objects`)).json()) as { outputs: Array<{ name: string }> };
      expect(meta.outputs.map((o) => o.name)).toContain('detection_boxes');
      const got = await inferDigit(arm.url);
      expect(got).toHaveLength(10);
      for (let i = 0; i < 10; i++) expect(Math.abs((got[i] as number) - (expected[i] as number))).toBeLessThanOrEqual(1e-4);
    } finally {
      arm.child.kill('SIGTERM');
    }
  }, 1_800_000);
});
