/**
 * The checks docker/ is held to without a Docker engine: a Dockerfile lint
 * over the parser in containers.ts, and "is this container command line one
 * the real `tamp` accepts", through the CLI's own parser and usage checks.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from '../../packages/cli/src/args.js';
import { COMMANDS } from '../../packages/cli/src/commands/index.js';
import type { Output } from '../../packages/cli/src/output.js';
import { type DockerStage, type Dockerfile, type IgnoreRule, envPairs, isIgnored } from './containers.js';
import { REPO } from './tamp.js';

// ---------------------------------------------------------------- Dockerfile lint

/** Names that hold secrets; an image must never carry one in ENV or ARG. */
const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|(^|_)KEY$)/i;
/** Literal credentials that must never appear in a Dockerfile. */
const SECRET_VALUE = [/AKIA[0-9A-Z]{16}/, /gh[pousr]_[A-Za-z0-9]{36}/, /npm_[A-Za-z0-9]{36}/, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, /xox[baprs]-[A-Za-z0-9-]{10,}/];

/** Whether an image reference names one exact version: a digest, or a tag with a version number that is not "latest". */
export function isPinned(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon <= slash) return false;
  const tag = image.slice(colon + 1);
  return tag !== 'latest' && /\d/.test(tag) && !/latest|stable|current|lts/i.test(tag);
}

function sourcesOf(args: string, exec: readonly string[] | undefined): string[] {
  const words = exec !== undefined ? [...exec] : args.split(/\s+/).filter((w) => w !== '');
  return words.slice(0, -1);
}

function globMatches(pattern: string): boolean {
  const dir = join(REPO, dirname(pattern));
  if (!existsSync(dir)) return false;
  const base = pattern.slice(pattern.lastIndexOf('/') + 1);
  const regex = new RegExp(`^${base.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  return readdirSync(dir).some((name) => regex.test(name));
}

/**
 * Problems in one Dockerfile (an empty list when it passes):
 * - every FROM pinned (a version tag or a digest; never latest), unless it names an earlier stage;
 * - the final stage runs as a numeric non-root USER, and declares a HEALTHCHECK:
 *   a command, or NONE with a comment saying why there is nothing to probe;
 * - no ENV or ARG named like a secret, no literal credentials;
 * - every COPY/ADD source from the build context exists in the repository and
 *   is not left out by .dockerignore; no ADD from a URL;
 * - ENTRYPOINT and CMD in exec form (signals reach the process);
 * - apt-get installs without recommends and cleans its lists in the same layer.
 */
export function lintDockerfile(df: Dockerfile, ignore: readonly IgnoreRule[]): string[] {
  const problems: string[] = [];
  const at = (line: number) => `${df.file}:${line}`;
  const stageNames = new Set<string>();
  if (df.stages.length === 0) return [`${df.file}: no FROM`];
  for (const [name, value] of Object.entries(df.globalArgs)) {
    if (SECRET_NAME.test(name)) problems.push(`${df.file}: ARG ${name} looks like a secret (use RUN --mount=type=secret)`);
    if (value === '') problems.push(`${df.file}: ARG ${name} before FROM has no default, so the base image is not pinned`);
  }
  for (const stage of df.stages) {
    const from = stage.instructions[0];
    const line = from?.line ?? 0;
    if (stage.image.includes('$')) problems.push(`${at(line)}: FROM ${stage.image} uses an unresolved build argument`);
    else if (!stageNames.has(stage.image) && !isPinned(stage.image)) problems.push(`${at(line)}: FROM ${stage.image} is not pinned to a version tag or digest`);
    if (stage.name !== undefined) stageNames.add(stage.name);
    for (const ins of stage.instructions) {
      if (ins.keyword === 'ENV') {
        for (const [key, value] of envPairs(ins.args)) if (SECRET_NAME.test(key) && value !== '') problems.push(`${at(ins.line)}: ENV ${key} carries a secret into the image`);
      }
      if (ins.keyword === 'ARG') {
        const key = ins.args.split('=')[0]?.trim() ?? '';
        if (SECRET_NAME.test(key)) problems.push(`${at(ins.line)}: ARG ${key} looks like a secret (build args stay in the image history; use RUN --mount=type=secret)`);
      }
      if ((ins.keyword === 'COPY' || ins.keyword === 'ADD') && ins.flags.from === undefined) {
        for (const source of sourcesOf(ins.args, ins.exec)) {
          if (/^[a-z]+:\/\//.test(source)) {
            problems.push(`${at(ins.line)}: ${ins.keyword} from a URL (${source}) is neither pinned nor checked`);
            continue;
          }
          const path = source.replace(/^\.\//, '').replace(/\/$/, '') || '.';
          const exists = /[*?[]/.test(path) ? globMatches(path) : existsSync(join(REPO, path));
          if (!exists) problems.push(`${at(ins.line)}: ${ins.keyword} source ${source} does not exist in the repository`);
          else if (path !== '.' && isIgnored(ignore, path)) problems.push(`${at(ins.line)}: ${ins.keyword} source ${source} is excluded by .dockerignore`);
        }
      }
      if (ins.keyword === 'RUN' && /apt-get\s+(-\S+\s+)*install/.test(ins.args)) {
        if (!ins.args.includes('--no-install-recommends')) problems.push(`${at(ins.line)}: apt-get install without --no-install-recommends`);
        if (!/rm -rf \/var\/lib\/apt\/lists/.test(ins.args)) problems.push(`${at(ins.line)}: apt-get lists are left in the layer (rm -rf /var/lib/apt/lists/*)`);
      }
    }
  }
  for (const pattern of SECRET_VALUE) {
    for (const stage of df.stages) for (const ins of stage.instructions) if (pattern.test(ins.args)) problems.push(`${at(ins.line)}: a literal credential (${pattern.source})`);
  }
  const final = df.stages.at(-1) as DockerStage;
  const users = final.instructions.filter((i) => i.keyword === 'USER');
  const user = users.at(-1)?.args.split(':')[0]?.trim();
  if (user === undefined) problems.push(`${df.file}: the final stage has no USER, so it runs as root`);
  else if (user === 'root' || user === '0') problems.push(`${df.file}: the final stage runs as ${user}`);
  else if (!/^\d+$/.test(user)) problems.push(`${df.file}: USER ${user} is a name; Kubernetes' runAsNonRoot can only verify a numeric uid`);
  const health = final.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
  if (health.length !== 1) problems.push(`${df.file}: the final stage needs exactly one HEALTHCHECK (a command, or NONE with the reason), found ${health.length}`);
  for (const h of health) {
    if (/^NONE\b/i.test(h.args)) {
      if (h.comment.trim().length < 20) problems.push(`${at(h.line)}: HEALTHCHECK NONE needs a comment above it saying why`);
    } else if (h.exec === undefined) problems.push(`${at(h.line)}: HEALTHCHECK CMD should be in exec form`);
  }
  for (const keyword of ['ENTRYPOINT', 'CMD']) {
    for (const ins of final.instructions.filter((i) => i.keyword === keyword)) if (ins.exec === undefined) problems.push(`${at(ins.line)}: ${keyword} in shell form (signals go to /bin/sh, not to the process)`);
  }
  return problems;
}

// ---------------------------------------------------------------- container command lines

export interface CommandLine {
  /** Where it comes from, for messages: "docker/compose.yaml: services.chief". */
  readonly where: string;
  /** The tamp argv: the command name and its arguments (what follows the image's entrypoint). */
  readonly argv: readonly string[];
  /** TF_CONFIG the orchestrator gives the container (Kubeflow), if any. */
  readonly tfConfig?: string;
  /** The container's host name (a StatefulSet pod's is <set>-<ordinal>), if it matters. */
  readonly hostname?: string;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Whether `tamp <argv>` would start, asked of the CLI itself: the command's
 * own parser and option specs, then its `--dry-run`, which makes every check
 * the command makes before doing any work (required flags, host:port lists,
 * TF_CONFIG, training settings, a ps index from the host name) and stops
 * there. TF_CONFIG and HOSTNAME are set as the orchestrator would set them
 * for the call and restored after.
 */
export async function checkCommandLine(line: CommandLine): Promise<string[]> {
  const [name, ...rest] = line.argv;
  const entry = COMMANDS.find((c) => c.name === name);
  if (entry === undefined) return [`${line.where}: "tamp ${String(name)}" is not a command (${COMMANDS.map((c) => c.name).join(', ')})`];
  const command = await entry.load();
  const problems: string[] = [];
  const fail = (message: string) => problems.push(`${line.where}: tamp ${name}: ${message}`);
  const saved = { TF_CONFIG: process.env.TF_CONFIG, HOSTNAME: process.env.HOSTNAME };
  const setEnv = (key: 'TF_CONFIG' | 'HOSTNAME', value: string | undefined) => {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  };
  try {
    const parsed = parseArgs(rest, command.options, command.positionals, command.name);
    const o = parsed.options as unknown as Record<string, unknown>;
    if (o.help === true) fail('--help only prints the help');
    if (!('dry-run' in command.options)) {
      fail(`tamp ${String(name)} has no --dry-run to check it with`);
      return problems;
    }
    setEnv('TF_CONFIG', line.tfConfig);
    setEnv('HOSTNAME', line.hostname);
    await command.run({ options: { ...parsed.options, 'dry-run': true } as never, positionals: parsed.positionals, out: SILENT, argv: rest });
  } catch (error) {
    fail(messageOf(error));
  } finally {
    setEnv('TF_CONFIG', saved.TF_CONFIG);
    setEnv('HOSTNAME', saved.HOSTNAME);
  }
  return problems;
}

const SILENT: Output = { json: true, verbose: false, log: () => {}, debug: () => {}, progress: () => {}, endProgress: () => {} };
