/**
 * Tamp's arm64 edge build on this x86-64 machine: the compiled /app of
 * docker/edge-arm64.Dockerfile, run by Node for linux-arm64 under qemu's
 * user-mode emulation with SwiftShader's arm64 Vulkan driver as the GPU; and
 * the same compiled code run natively on x86-64 to compare against.
 * scripts/setup-arm64.sh installs the pieces (pnpm test:arm64 runs it first).
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { renderScene, sceneSeed } from '@tamp/core';
import { encodePng, loadMnist } from '@tamp/core/node';
import { buildImageApp } from './image-build.js';
import { REPO, type RunResult } from './tamp.js';

export const ARM64_CACHE = process.env.TAMP_ARM64_CACHE ?? join(homedir(), '.cache', 'tamp-arm64');
export const INSTALL_SCRIPT = join(REPO, 'scripts', 'edge-arm64-install.sh');

export interface Arm64Setup {
  qemu: string;
  /** Node for linux-arm64 (scripts/edge-arm64-install.sh node). */
  node: string;
  /** SwiftShader's arm64 Vulkan ICD (scripts/edge-arm64-install.sh swiftshader). */
  icd: string;
}

/**
 * What scripts/setup-arm64.sh installs, found; or an error naming what is
 * missing and how to install it (the test fails with it: it never skips).
 */
export function findArm64Setup(): Arm64Setup {
  const qemu = ['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-aarch64'].find((p) => existsSync(p));
  const node = join(ARM64_CACHE, 'node', 'bin', 'node');
  const icd = join(ARM64_CACHE, 'swiftshader', 'vk_swiftshader_icd.json');
  const missing: string[] = [];
  if (qemu === undefined) missing.push('qemu-aarch64-static (apt-get install qemu-user-static)');
  if (!existsSync('/lib/ld-linux-aarch64.so.1')) missing.push('arm64 glibc (dpkg --add-architecture arm64; apt-get install --no-install-recommends libc6:arm64 libstdc++6:arm64)');
  if (!existsSync('/usr/lib/aarch64-linux-gnu/libvulkan.so.1')) missing.push('the arm64 Vulkan loader (apt-get install --no-install-recommends libvulkan1:arm64)');
  if (!existsSync(node)) missing.push(`Node for arm64 at ${node} (bash scripts/edge-arm64-install.sh node ${join(ARM64_CACHE, 'node')})`);
  if (!existsSync(icd)) missing.push(`SwiftShader for arm64 at ${icd} (bash scripts/edge-arm64-install.sh swiftshader ${join(ARM64_CACHE, 'swiftshader')})`);
  if (missing.length > 0 || qemu === undefined) {
    throw new Error(`arm64 emulation is not set up: missing ${missing.join('; ')}. Run bash scripts/setup-arm64.sh as root (pnpm test:arm64 runs it first).`);
  }
  return { qemu, node, icd };
}

/** The environment of an emulated run: arm64's SwiftShader as the only Vulkan driver; nothing of pnpm's. */
export function emulatedEnv(setup: Arm64Setup, home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, NODE_ENV: 'production', VK_ICD_FILENAMES: setup.icd };
}

/** The environment of a native run: this machine's drivers (Dawn finds chromium's SwiftShader by itself). */
export function nativeEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, NODE_ENV: 'production' };
}

/** argv that runs `tamp` from `app` with arm64 Node under qemu (-L /: arm64 libraries from Debian's multiarch folders). */
export function emulatedTamp(setup: Arm64Setup, app: string, args: readonly string[]): string[] {
  return [setup.qemu, '-L', '/', setup.node, join(app, 'bin', 'tamp.mjs'), ...args];
}

export function nativeTamp(app: string, args: readonly string[]): string[] {
  return [process.execPath, join(app, 'bin', 'tamp.mjs'), ...args];
}

/** Run argv to its end; stdout and stderr kept. */
export function run(argv: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = argv as [string, ...string[]];
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Run jobs with at most `width` at a time (emulated runs are CPU-bound and single-threaded for the most part). */
export async function pool<T>(jobs: ReadonlyArray<() => Promise<T>>, width: number): Promise<T[]> {
  const results = new Array<T>(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await (jobs[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  return results;
}

/** The Dawn folders of a deployed /app (one per webgpu package version). */
export function dawnDirs(app: string): string[] {
  const store = join(app, 'node_modules', '.pnpm');
  return readdirSync(store)
    .filter((e) => e.startsWith('webgpu@'))
    .map((e) => join(store, e, 'node_modules', 'webgpu', 'dist'));
}

/**
 * The x86-64 twin of an arm64 /app: the same compiled code and dependencies
 * (hard links), plus Dawn's linux-x64 build from this checkout's webgpu
 * package, the one thing in /app that differs by platform.
 */
export function x64Twin(app: string, twin: string): void {
  const r = spawnSync('cp', ['-al', app, twin], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -al ${app} ${twin}: ${r.stderr}`);
  const store = join(REPO, 'node_modules', '.pnpm');
  for (const dist of dawnDirs(twin)) {
    const entry = dist.split('/').at(-4) as string;
    const source = join(store, entry, 'node_modules', 'webgpu', 'dist', 'linux-x64');
    if (!existsSync(source)) throw new Error(`${source} is missing: this checkout's ${entry} has no linux-x64 Dawn`);
    cpSync(source, join(dist, 'linux-x64'), { recursive: true });
  }
}

/** The ELF machine of a file: 183 is aarch64, 62 x86-64. */
export function elfMachine(buffer: Buffer): number {
  return buffer.readUInt16LE(18);
}

export const LENET_FP32 = join(REPO, 'demos/digits/public/models/fp32/model.json');
/** LeNet-5 pruned 92%, 32 shared values, int8, Huffman-coded (demos/models.json says how it was made). */
export const LENET_DC = join(REPO, 'demos/digits/public/models/compressed.tamp');
/** test/fixtures/shapes-detector compressed with --int8 (the objects demo's detector until it switched to shapes-mobilenet-detector; test/fixtures/README.md). */
export const DETECTOR = join(REPO, 'test/fixtures/shapes-detector-int8.tamp');

export interface EdgeRun {
  /** The edge image's /app (linux-arm64). */
  app: string;
  /** Its x86-64 twin (x64Twin). */
  twin: string;
  /** The build stage's RUN commands. */
  ran: string[];
  /** HOME of every run. */
  home: string;
  /** LeNet-5 int8, made by the compiled `tamp compress` (x86-64) from the demo's fp32 model. */
  lenetInt8: string;
  /** MNIST test digit 0 as a 28x28 PNG, and its label. */
  digit: string;
  digitLabel: string;
  /** A fresh shapes scene (96x96 PNG). */
  scene: string;
}

/** Build the edge /app and its twin in `dir`, and the model and inputs every run uses. */
export async function prepareEdgeRun(dir: string, log: (line: string) => void = () => {}): Promise<EdgeRun> {
  const { app, ran } = buildImageApp('edge-arm64', dir, log);
  const twin = join(dir, 'app-x64');
  x64Twin(app, twin);
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  const models = join(dir, 'models');
  mkdirSync(models, { recursive: true });
  const compress = await run(nativeTamp(twin, ['compress', LENET_FP32, '--int8', '--out', join(models, 'lenet5-int8'), '--json']), { cwd: dir, env: nativeEnv(home), timeoutMs: 600_000 });
  if (compress.code !== 0) throw new Error(`tamp compress failed:\n${compress.stderr}`);
  const mnist = loadMnist().test;
  const digitRgba = new Uint8Array(28 * 28 * 4);
  for (let i = 0; i < 784; i++) {
    const v = mnist.images[i] as number;
    digitRgba.set([v, v, v, 255], i * 4);
  }
  const digit = join(models, 'digit.png');
  writeFileSync(digit, encodePng({ width: 28, height: 28, rgba: digitRgba }));
  const s = renderScene(sceneSeed(24, 'arm64', 0));
  const sceneRgba = new Uint8Array(96 * 96 * 4);
  for (let i = 0; i < 96 * 96; i++) sceneRgba.set([s.pixels[i * 3] as number, s.pixels[i * 3 + 1] as number, s.pixels[i * 3 + 2] as number, 255], i * 4);
  const scene = join(models, 'scene.png');
  writeFileSync(scene, encodePng({ width: 96, height: 96, rgba: sceneRgba }));
  return { app, twin, ran, home, lenetInt8: join(models, 'lenet5-int8', 'model.tamp'), digit, digitLabel: String(mnist.labels[0]), scene };
}
