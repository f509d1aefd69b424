/**
 * An image's build stage run without a Docker engine: the instructions of a
 * Dockerfile's `build` stage executed in order in a temporary folder playing
 * /src, over a build context taken from the repository through
 * .dockerignore, into a folder playing /app. Used by the arm64 test and the
 * edge and GPU benchmarks, so they run exactly what the images build.
 * (containers-build.test.ts does the same for ps.Dockerfile in its own words
 * and also checks each step.)
 *
 * What stands in for Docker: `RUN npm install -g pnpm@X` is this machine's
 * pnpm (its version must be X); `pnpm fetch` runs with --offline (from the
 * store `pnpm install` filled here; in an image build it downloads).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { type IgnoreRule, hasExceptionUnder, isIgnored, readDockerfile, readDockerignore } from './containers.js';
import { REPO } from './tamp.js';

/** Copy `source` (relative to the build context) to `dest`, leaving out what .dockerignore excludes, as `docker build` sends the context. */
export function copyFromContext(rules: readonly IgnoreRule[], source: string, dest: string): number {
  const from = join(REPO, source);
  const rel = relative(REPO, from).split('\\').join('/');
  if (rel !== '' && isIgnored(rules, rel) && !hasExceptionUnder(rules, rel)) return 0;
  const stat = lstatSync(from);
  if (stat.isDirectory()) {
    let n = 0;
    for (const name of readdirSync(from)) n += copyFromContext(rules, rel === '' ? name : `${rel}/${name}`, join(dest, name));
    return n;
  }
  if (!stat.isFile() || (rel !== '' && isIgnored(rules, rel))) return 0;
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(from, dest);
  return 1;
}

/** The environment of a RUN: this machine's, without the npm_* variables `pnpm` sets for its own scripts. */
export function runEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

export interface BuiltApp {
  /** The deployed /app. */
  app: string;
  /** The RUN commands executed, with /src and /app replaced by the temporary folders. */
  ran: string[];
}

/**
 * Run `docker/<name>.Dockerfile`'s build stage in `dir` (src/ and app/ are
 * made there). Throws with the command's output when a step fails.
 */
export function buildImageApp(name: string, dir: string, log: (line: string) => void = () => {}): BuiltApp {
  const df = readDockerfile(`${name}.Dockerfile`);
  const build = df.stages.find((s) => s.name === 'build');
  if (build === undefined) throw new Error(`${name}.Dockerfile has no build stage`);
  const rules = readDockerignore();
  const src = join(dir, 'src');
  const app = join(dir, 'app');
  const paths = (text: string) => text.replace(/(^|\s)\/app(?=\s|\/|$)/g, `$1${app}`).replace(/(^|\s)\/src(?=\s|\/|$)/g, `$1${src}`);
  let workdir: string | undefined;
  const ran: string[] = [];
  for (const ins of build.instructions.slice(1)) {
    if (ins.keyword === 'WORKDIR') {
      if (ins.args !== '/src') throw new Error(`${name}.Dockerfile: the build stage's WORKDIR is ${ins.args}, not /src`);
      workdir = src;
      mkdirSync(src, { recursive: true });
    } else if (ins.keyword === 'COPY') {
      if (workdir === undefined) throw new Error('COPY before WORKDIR');
      const words = ins.args.split(/\s+/);
      const dest = words.at(-1) === '.' || words.at(-1) === './' ? workdir : join(workdir, words.at(-1) as string);
      let copied = 0;
      for (const source of words.slice(0, -1)) copied += copyFromContext(rules, source === '.' ? '' : source, source === '.' ? dest : join(dest, source));
      if (copied === 0) throw new Error(`COPY ${ins.args} copied nothing`);
    } else if (ins.keyword === 'RUN') {
      const pnpm = /^npm install -g pnpm@(\S+)$/.exec(ins.args);
      if (pnpm !== null) {
        const here = execFileSync('pnpm', ['--version'], { encoding: 'utf8' }).trim();
        if (here !== pnpm[1]) throw new Error(`the image installs pnpm ${pnpm[1]}; this machine has ${here}`);
        continue;
      }
      const command = paths(ins.args.replace(/^pnpm fetch$/, 'pnpm fetch --offline'));
      log(`RUN ${command}`);
      const r = spawnSync('sh', ['-c', command], { cwd: workdir, env: runEnv(), encoding: 'utf8', timeout: 600_000 });
      if (r.status !== 0) throw new Error(`RUN ${command} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
      ran.push(command);
    } else throw new Error(`${name}.Dockerfile: the build stage has a ${ins.keyword} this helper does not emulate`);
  }
  return { app, ran };
}
