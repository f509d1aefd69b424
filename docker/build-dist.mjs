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
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

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

// 1. Compile every package with the repo's strict settings (docker/tsconfig.build.json).
const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
rmSync(join(root, '.build'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', 'docker/tsconfig.build.json'], { stdio: 'inherit' });

// 2. packages/<name>/dist from the compiler's output, and package.json pointing at it.
for (const name of readdirSync('packages')) {
  const dir = join('packages', name);
  const manifestFile = join(dir, 'package.json');
  if (!existsSync(manifestFile)) continue;
  const built = join('.build', name, 'src');
  if (!existsSync(built)) fail(`${dir}: the compiler wrote nothing to ${built}`);
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  renameSync(built, join(dir, 'dist'));
  // What tsc does not emit travels as it is: the worker thread's bootstrap.mjs, JSON, WASM.
  cpSync(join(dir, 'src'), join(dir, 'dist'), { recursive: true, filter: (f) => statSync(f).isDirectory() || !/\.[cm]?tsx?$/.test(f) });
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  const exportsMap = manifest.publishConfig?.exports;
  if (exportsMap === undefined) fail(`${manifestFile} has no publishConfig.exports (the compiled entry points)`);
  for (const [subpath, target] of Object.entries(exportsMap)) {
    if (typeof target !== 'string') fail(`${manifestFile}: publishConfig.exports["${subpath}"] must be a path`);
    const fixed = target.includes('*') ? target.slice(0, target.indexOf('*')) : target;
    if (!existsSync(join(dir, fixed))) fail(`${manifestFile}: publishConfig.exports["${subpath}"] points at ${target}, which the build did not produce`);
  }
  manifest.exports = exportsMap;
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
