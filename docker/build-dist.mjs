// The build stage of every Tamp image: compile the TypeScript sources, point
// each package at its compiled JavaScript, and deploy the `tamp` command with
// production dependencies only.
//
//   node docker/build-dist.mjs --out /app --platform linux-x64 [--optional]
//
//   --out DIR       where the deployed command goes (must not exist yet)
//   --platform P    linux-x64 or linux-arm64: the WebGPU (Dawn) build kept
//   --optional      keep the optional dependencies (tfjs-node, tfjs-node-gpu:
//                   the worker images run one of their install scripts later)
//
// It runs in a copy of the repository where `pnpm install --frozen-lockfile`
// has run (the images' build stage), never in a checkout: it rewrites the
// packages' package.json files, which a checkout must keep pointing at src/
// (see ARCHITECTURE.md: the bin runs the sources through tsx there).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compilePackages } from './compile-packages.mjs';

function fail(message) {
  console.error(`build-dist: ${message}`);
  process.exit(1);
}

function parseFlags(argv) {
  const flags = { out: undefined, platform: undefined, optional: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--optional') flags.optional = true;
    else if (arg === '--out' || arg === '--platform') {
      const value = argv[++i];
      if (value === undefined) fail(`${arg} needs a value`);
      flags[arg.slice(2)] = value;
    } else fail(`unknown argument ${arg} (usage: --out DIR --platform linux-x64|linux-arm64 [--optional])`);
  }
  if (flags.out === undefined) fail('--out DIR is required');
  if (flags.platform === undefined || !/^linux-(x64|arm64)$/.test(flags.platform)) fail('--platform must be linux-x64 or linux-arm64');
  return flags;
}

function walk(dir, visit) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, visit);
    else visit(path);
  }
}

const flags = parseFlags(process.argv.slice(2));
const root = process.cwd();
const out = resolve(flags.out);
if (!existsSync(join(root, 'pnpm-workspace.yaml'))) fail('run it from the repository root');
if (existsSync(join(root, '.git'))) fail('this rewrites package.json files: run it in an image build stage or on a copy of the repository, not in a git checkout');
if (existsSync(out)) fail(`${out} already exists`);

// 1. Compile every package (docker/compile-packages.mjs: the same step `pnpm pack:all` uses) into packages/<name>/dist.
let packages;
try {
  packages = compilePackages(root);
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}

// 2. Each package.json pointing at the compiled code, as `pnpm pack` does with publishConfig.
for (const { dir } of packages) {
  const manifestFile = join(dir, 'package.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  // The images compile no .d.ts, so each entry keeps its JavaScript only (the `default` condition).
  manifest.exports = Object.fromEntries(Object.entries(manifest.publishConfig.exports).map(([subpath, entry]) => [subpath, typeof entry === 'string' ? entry : entry.default]));
  delete manifest.publishConfig;
  // Only the compiled code (and the bin) ships: `pnpm deploy` copies what `files` names.
  manifest.files = ['dist', ...(existsSync(join(dir, 'bin')) ? ['bin'] : [])];
  writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
}

// 3. The tamp command and its production dependencies, from the store the
// build stage filled (offline). No lifecycle scripts: the worker images run
// tfjs-node's (the libtensorflow download) themselves, on their runtime base,
// and esbuild's (tsx's compiler, used only in a checkout) would fetch a binary.
execFileSync('pnpm', ['--filter', '@tamp/cli', 'deploy', '--prod', '--offline', '--ignore-scripts', ...(flags.optional ? [] : ['--no-optional']), out], {
  stdio: 'inherit',
});

// 4. The webgpu package carries Dawn for every platform; keep this image's.
const store = join(out, 'node_modules', '.pnpm');
for (const entry of readdirSync(store).filter((e) => e.startsWith('webgpu@'))) {
  const dist = join(store, entry, 'node_modules', 'webgpu', 'dist');
  if (!existsSync(join(dist, flags.platform))) fail(`${entry} has no ${flags.platform} build of Dawn`);
  for (const platform of readdirSync(dist)) if (platform !== flags.platform) rmSync(join(dist, platform), { recursive: true, force: true });
}

// 5. What the images promise: compiled code only, production dependencies only.
if (!existsSync(join(out, 'dist', 'main.js')) || !existsSync(join(out, 'bin', 'tamp.mjs'))) fail(`${out} lacks dist/main.js or bin/tamp.mjs`);
if (existsSync(join(out, 'src'))) fail(`${out}/src exists: bin/tamp.mjs would run the sources through tsx`);
const sources = [];
for (const entry of readdirSync(store).filter((e) => e.startsWith('@tamp+'))) {
  walk(join(store, entry), (file) => {
    if (/\.[cm]?tsx?$/.test(file) && !file.endsWith('.d.ts')) sources.push(file);
  });
}
if (sources.length > 0) fail(`TypeScript sources were deployed: ${sources.slice(0, 3).join(', ')}`);
const devOnly = ['typescript@', 'vitest@', 'eslint@', '@bufbuild+buf@'].filter((p) => readdirSync(store).some((e) => e.startsWith(p)));
if (devOnly.length > 0) fail(`development dependencies were deployed: ${devOnly.join(', ')}`);
console.error(`build-dist: ${out} holds tamp (compiled) with ${readdirSync(store).length} production packages for ${flags.platform}`);
