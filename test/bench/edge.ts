/**
 * pnpm bench:edge: the memory footprint of the edge build (a Jetson Nano has
 * 4 GB shared between CPU and GPU). Peak resident memory (GNU time's maximum
 * RSS) of one `tamp infer` of LeNet-5 int8 and of the int8 shapes detector,
 * on WebGPU and on WASM, run from the edge image's compiled /app: natively on
 * this x86-64 machine, and as arm64 under qemu-aarch64 (the emulator's
 * process, so its own memory and translated code count too: the baseline
 * row measures that for an empty Node).
 *
 *   pnpm bench:edge [--no-write]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Arm64Setup, DETECTOR, emulatedEnv, findArm64Setup, nativeEnv, prepareEdgeRun, run } from '../helpers/arm64.js';
import { freePorts } from '../helpers/ports.js';
import { fmt, machine, markdownTable, writeSection } from './report.js';

const write = !process.argv.includes('--no-write');
const TIME = '/usr/bin/time';
if (!existsSync(TIME)) throw new Error('pnpm bench:edge reads peak memory from GNU time: apt-get install time (scripts/setup-arm64.sh installs it)');
const setup: Arm64Setup = findArm64Setup();
const dir = mkdtempSync(join(tmpdir(), 'tamp-bench-edge-'));

/** Peak RSS in MiB of argv (GNU time -f %M, KiB), and the command's own output. */
async function peak(argv: string[], env: NodeJS.ProcessEnv): Promise<{ mib: number; stdout: string }> {
  const marker = 'tamp-bench-edge-maxrss=';
  const r = await run([TIME, '-f', `${marker}%M`, ...argv], { cwd: dir, env, timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code ?? r.signal}):\n${r.stderr}`);
  const kib = Number(new RegExp(`${marker}(\\d+)`).exec(r.stderr)?.[1]);
  if (!Number.isFinite(kib)) throw new Error(`no maximum RSS from GNU time in:\n${r.stderr}`);
  return { mib: kib / 1024, stdout: r.stdout };
}

/**
 * `tamp serve` with LeNet-5 int8 and the detector loaded (WASM), after one
 * inference of each: its peak resident set (VmHWM of the serving process: node,
 * or qemu running node), read while it serves, then it is stopped.
 */
async function servePeak(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [port] = (await freePorts(1)) as [number];
  const child = spawn(argv[0] as string, [...argv.slice(1), '--http-port', String(port), '--grpc-port', '0'], { cwd: dir, env, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  try {
    let ready = false;
    for (let i = 0; i < 2_400 && !ready; i++) {
      if (child.exitCode !== null) throw new Error(`tamp serve exited (${child.exitCode})`);
      ready = await fetch(`${url}/v2/health/ready`).then((r) => r.status === 200, () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 250));
    }
    if (!ready) throw new Error('tamp serve never became ready');
    for (const [model, per] of [['digits', 784], ['objects', 96 * 96 * 3]] as const) {
      const data = Array.from({ length: per }, (_, i) => (i % 97) / 97);
      const shape = model === 'digits' ? [1, 28, 28, 1] : [1, 96, 96, 3];
      const r = await fetch(`${url}/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'input', shape, datatype: 'FP32', data }] }) });
      if (r.status !== 200) throw new Error(`${model}: HTTP ${r.status} ${await r.text()}`);
    }
    const kib = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
    return kib / 1024;
  } finally {
    child.kill('SIGTERM');
  }
}

const rows: Array<Array<string | number>> = [];
const notes: string[] = [];
try {
  const e = await prepareEdgeRun(dir, (line) => process.stderr.write(`${line}\n`));
  const arm64 = (args: string[]) => [setup.qemu, '-L', '/', setup.node, ...args];
  const baseNative = await peak([process.execPath, '-e', '0'], nativeEnv(e.home));
  const baseArm64 = await peak(arm64(['-e', '0']), emulatedEnv(setup, e.home));
  rows.push(['empty Node (`node -e 0`): the baseline', '–', fmt(baseNative.mib, 1), fmt(baseArm64.mib, 1)]);
  const cases: Array<[string, string, string[]]> = [
    ['LeNet-5 int8', 'webgpu', ['infer', e.lenetInt8, '--image', e.digit, '--device', 'webgpu', '--json']],
    ['LeNet-5 int8', 'wasm', ['infer', e.lenetInt8, '--image', e.digit, '--device', 'wasm', '--json']],
    ['shapes detector int8', 'webgpu', ['infer', DETECTOR, '--image', e.scene, '--device', 'webgpu', '--json']],
    ['shapes detector int8', 'wasm', ['infer', DETECTOR, '--image', e.scene, '--device', 'wasm', '--json']],
  ];
  for (const [model, device, args] of cases) {
    const native = await peak([process.execPath, join(e.twin, 'bin', 'tamp.mjs'), ...args], nativeEnv(e.home));
    const emulated = await peak(arm64([join(e.app, 'bin', 'tamp.mjs'), ...args]), emulatedEnv(setup, e.home));
    const ran = (JSON.parse(emulated.stdout) as { device: string }).device;
    if (ran !== device) throw new Error(`the emulated ${model} ran on ${ran}, not ${device}`);
    rows.push([`\`tamp infer\` ${model}, one image`, device, fmt(native.mib, 1), fmt(emulated.mib, 1)]);
    process.stderr.write(`${model} ${device}: x64 ${fmt(native.mib, 1)} MiB, arm64 (qemu) ${fmt(emulated.mib, 1)} MiB\n`);
  }
  const serveArgs = ['serve', '--model', `digits=${e.lenetInt8}`, '--model', `objects=${DETECTOR}`, '--device', 'wasm'];
  const serveNative = await servePeak([process.execPath, join(e.twin, 'bin', 'tamp.mjs'), ...serveArgs], nativeEnv(e.home));
  const serveArm64 = await servePeak(arm64([join(e.app, 'bin', 'tamp.mjs'), ...serveArgs]), emulatedEnv(setup, e.home));
  rows.push(['`tamp serve`, LeNet-5 int8 + the detector loaded, one inference each', 'wasm', fmt(serveNative, 1), fmt(serveArm64, 1)]);
  process.stderr.write(`serve: x64 ${fmt(serveNative, 1)} MiB, arm64 (qemu) ${fmt(serveArm64, 1)} MiB\n`);
  notes.push(`arm64: Node ${process.versions.node} for linux-arm64 under ${setup.qemu} -L /, WebGPU on SwiftShader's arm64 Vulkan driver (Debian's chromium-common:arm64); x86-64: the same compiled code with Dawn's linux-x64 build, WebGPU on chromium's SwiftShader`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const markdown = `## Edge footprint: peak resident memory (\`pnpm bench:edge\`)

${machine()}. ${notes.join('. ')}. Each row is one process from the edge image's /app (\`docker/edge-arm64.Dockerfile\`'s build stage, run by \`test/helpers/image-build.ts\`): its peak resident set (GNU time's maximum RSS), in MiB. Under qemu the emulator's own memory and its translated-code cache are counted too (compare the baseline row), and SwiftShader is the GPU, so its shader compiler's memory is process memory; on a Jetson the driver's share lives elsewhere. A Jetson Nano has 4 GB shared between CPU and GPU.

${markdownTable(['process', 'device', 'x86-64, native (MiB)', 'arm64 under qemu (MiB)'], rows)}

The \`tamp serve\` row is a long-running server with both models loaded and warmed, measured while it serves (VmHWM). The goal for it is under 150 MB resident with the detector loaded, on the board; the x86-64 column is the comparable figure (the emulated one carries qemu's own memory). The \`tamp infer\` rows are one-shot processes that load a model, run it once and exit.
`;
process.stdout.write(`${markdown}\n`);
if (write) writeSection('bench:edge', markdown);
