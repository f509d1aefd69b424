// The one compile step for compiled Tamp: every packages/<name>/src to
// packages/<name>/dist (ESM, and .d.ts files when asked), checked against each
// package's publishConfig.exports. Used by the images' build stage
// (docker/build-dist.mjs) and by `pnpm pack:all` (scripts/pack-all.mjs).
// It never touches a package.json: the checkout's exports keep pointing at
// src/ (ARCHITECTURE.md, "Packages and where things live").
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** The workspace's library packages: every packages/<name> with a package.json, in name order. */
export function packageDirs(root) {
  return readdirSync(join(root, 'packages'))
    .filter((name) => existsSync(join(root, 'packages', name, 'package.json')))
    .sort()
    .map((name) => ({ name, dir: join(root, 'packages', name) }));
}

/** Every file an exports map names, conditions included ('types', 'default', ...), as [subpath, condition, target]. */
export function exportTargets(exportsMap) {
  const targets = [];
  for (const [subpath, entry] of Object.entries(exportsMap)) {
    if (typeof entry === 'string') targets.push([subpath, 'default', entry]);
    else for (const [condition, target] of Object.entries(entry)) targets.push([subpath, condition, target]);
  }
  return targets;
}

/**
 * Compile with the repo's strict settings (docker/tsconfig.build.json) and
 * move each package's output to packages/<name>/dist. Throws (with the
 * package and entry named) when an entry in publishConfig.exports was not
 * produced.
 */
export function compilePackages(root, { declarations = false } = {}) {
  const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  const build = join(root, '.build');
  rmSync(build, { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'docker', 'tsconfig.build.json'), ...(declarations ? ['--declaration'] : [])], { cwd: root, stdio: 'inherit' });
    const packages = packageDirs(root);
    for (const { dir } of packages) {
      const manifestFile = join(dir, 'package.json');
      const built = join(build, dir.slice(join(root, 'packages').length + 1), 'src');
      if (!existsSync(built)) throw new Error(`${dir}: the compiler wrote nothing to ${built}`);
      rmSync(join(dir, 'dist'), { recursive: true, force: true });
      renameSync(built, join(dir, 'dist'));
      // What tsc does not emit travels as it is: the worker thread's bootstrap.mjs, JSON, WASM.
      cpSync(join(dir, 'src'), join(dir, 'dist'), { recursive: true, filter: (f) => statSync(f).isDirectory() || !/\.[cm]?tsx?$/.test(f) });
      const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
      const exportsMap = manifest.publishConfig?.exports;
      if (exportsMap === undefined) throw new Error(`${manifestFile} has no publishConfig.exports (the compiled entry points)`);
      for (const [subpath, condition, target] of exportTargets(exportsMap)) {
        if (typeof target !== 'string') throw new Error(`${manifestFile}: publishConfig.exports["${subpath}"].${condition} must be a path`);
        if (condition === 'types' && !declarations) continue;
        const fixed = target.includes('*') ? target.slice(0, target.indexOf('*')) : target;
        if (!existsSync(join(dir, fixed))) throw new Error(`${manifestFile}: publishConfig.exports["${subpath}"] (${condition}) points at ${target}, which the build did not produce`);
      }
    }
    return packages;
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}
