#!/usr/bin/env node
// `pnpm pack:all`: every packages/<name> as an installable npm tarball.
//
//   node scripts/pack-all.mjs [--out DIR] [--keep-dist]
//
//   --out DIR     where the tarballs go (default dist/packages; emptied first)
//   --keep-dist   leave packages/*/dist behind (removed by default, so a
//                 checkout never holds compiled code that could go stale)
//
// Compiles every package with declarations (docker/compile-packages.mjs, the
// images' compile step), then `pnpm pack` per package: pnpm applies
// publishConfig (exports and types to dist/) and turns workspace:/catalog:
// specifiers into versions. Each tarball is then checked: nothing left
// pointing at the workspace, every exports target inside it, no TypeScript
// sources or tests. Prints the tarballs' paths, one a line, on stdout.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compilePackages, exportTargets } from '../docker/compile-packages.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

function fail(message) {
  console.error(`pack-all: ${message}`);
  process.exit(1);
}

function parseFlags(argv) {
  const flags = { out: join(root, 'dist', 'packages'), keepDist: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--keep-dist') flags.keepDist = true;
    else if (arg === '--out' && argv[i + 1] !== undefined) flags.out = resolve(argv[++i]);
    else fail(`unknown argument ${arg} (usage: [--out DIR] [--keep-dist])`);
  }
  return flags;
}

/** The problems of one packed tarball, found from its file list and its package.json. */
function checkTarball(file) {
  const listed = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
  const files = new Set(listed.map((l) => l.replace(/^package\//, '')));
  const manifest = JSON.parse(execFileSync('tar', ['-xzOf', file, 'package/package.json'], { encoding: 'utf8' }));
  const problems = [];
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
    for (const [dep, spec] of Object.entries(manifest[field] ?? {})) {
      if (/^(workspace|catalog|link|file):/.test(spec)) problems.push(`${field}.${dep} is still "${spec}"`);
    }
  }
  if (manifest.exports === undefined) problems.push('no exports');
  // TypeScript users need a `types` condition, and it must come first (conditions match in order).
  for (const [subpath, entry] of Object.entries(manifest.exports ?? {})) {
    if (typeof entry === 'string' || Object.keys(entry)[0] !== 'types') problems.push(`exports["${subpath}"] has no leading "types" condition (publishConfig.exports: { "types": "./dist/....d.ts", "default": "./dist/....js" })`);
  }
  for (const [subpath, condition, target] of exportTargets(manifest.exports ?? {})) {
    const rel = target.replace(/^\.\//, '');
    const ok = rel.includes('*') ? [...files].some((f) => f.startsWith(rel.slice(0, rel.indexOf('*'))) && f.endsWith(rel.slice(rel.indexOf('*') + 1))) : files.has(rel);
    if (!ok) problems.push(`exports["${subpath}"].${condition} -> ${target} is not in the tarball`);
  }
  for (const f of files) {
    if (/\.test\.|\.fixture\.|(^|\/)test-fixtures\//.test(f)) problems.push(`ships test-only ${f}`);
    else if (/\.[cm]?ts$/.test(f) && !/\.d\.[cm]?ts$/.test(f)) problems.push(`ships TypeScript source ${f}`);
  }
  if (!files.has('README.md')) console.error(`pack-all: warning: ${manifest.name} has no README.md`);
  return { name: manifest.name, files: files.size, problems };
}

const flags = parseFlags(process.argv.slice(2));
rmSync(flags.out, { recursive: true, force: true });
mkdirSync(flags.out, { recursive: true });
let packages;
try {
  packages = compilePackages(root, { declarations: true });
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
try {
  const tarballs = [];
  for (const { dir } of packages) {
    const before = new Set(readdirSync(flags.out));
    // --ignore-scripts: no prepack/prepare hooks (none exist; the build above is the only build).
    execFileSync('pnpm', ['pack', '--pack-destination', flags.out, '--ignore-scripts'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    const made = readdirSync(flags.out).filter((f) => !before.has(f) && f.endsWith('.tgz'));
    if (made.length !== 1) fail(`${dir}: pnpm pack made ${made.length} tarballs`);
    const file = join(flags.out, made[0]);
    const { name, files, problems } = checkTarball(file);
    if (problems.length > 0) fail(`${name} (${file}):\n  ${problems.join('\n  ')}`);
    console.error(`pack-all: ${name}: ${files} files`);
    tarballs.push(file);
  }
  process.stdout.write(`${tarballs.join('\n')}\n`);
} finally {
  if (!flags.keepDist) for (const { dir } of packages) if (existsSync(join(dir, 'dist'))) rmSync(join(dir, 'dist'), { recursive: true, force: true });
}
