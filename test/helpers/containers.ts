/**
 * Readers for what docker/ holds, as the real tools read it: a Dockerfile
 * parser (directives, comments, continuation lines, stages, exec and shell
 * forms), the .dockerignore matcher, Compose's variable interpolation and
 * command splitting, and Kubernetes' $(VAR) expansion.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { REPO } from './tamp.js';

export const DOCKER_DIR = join(REPO, 'docker');

// ---------------------------------------------------------------- YAML values

export type Obj = Record<string, unknown>;

export function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object at `value`, or a failure naming where it was expected. */
export function obj(value: unknown, where: string): Obj {
  if (!isObj(value)) throw new Error(`${where}: expected a mapping, got ${JSON.stringify(value)}`);
  return value;
}

export function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list, got ${JSON.stringify(value)}`);
  return value;
}

export function str(value: unknown, where: string): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') throw new Error(`${where}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

/** One YAML document (merge keys `<<:` resolved, as Compose resolves them). */
export function readYaml(file: string): unknown {
  return parse(readFileSync(file, 'utf8'), { merge: true, prettyErrors: true });
}

/** Every document of a YAML stream (Kubernetes manifests), failing on any parse error. */
export function parseYamlStream(text: string, where: string): Obj[] {
  const docs = parseAllDocuments(text, { merge: true });
  const out: Obj[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    out.push(obj(value, where));
  }
  return out;
}

// ---------------------------------------------------------------- Dockerfiles

export interface DockerInstruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  readonly keyword: string;
  /** Everything after the keyword and its --flags, continuation lines joined. */
  readonly args: string;
  /** Leading --name=value flags (COPY --from=build, HEALTHCHECK --interval=5s, FROM --platform=...). */
  readonly flags: Readonly<Record<string, string>>;
  /** The JSON array of an exec form (CMD ["a", "b"]); undefined for a shell form. */
  readonly exec: readonly string[] | undefined;
  /** The comment lines right above the instruction (without '#'). */
  readonly comment: string;
  readonly line: number;
}

export interface DockerStage {
  /** The FROM image reference as written (build args substituted). */
  readonly image: string;
  readonly name: string | undefined;
  readonly platform: string | undefined;
  readonly instructions: readonly DockerInstruction[];
}

export interface Dockerfile {
  readonly file: string;
  readonly directives: Readonly<Record<string, string>>;
  /** ARGs declared before the first FROM, with their defaults. */
  readonly globalArgs: Readonly<Record<string, string>>;
  readonly stages: readonly DockerStage[];
}

const FLAGGED = new Set(['FROM', 'COPY', 'ADD', 'RUN', 'HEALTHCHECK']);

function splitFlags(keyword: string, args: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  if (!FLAGGED.has(keyword)) return { flags, rest };
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest);
    if (m === null) break;
    flags[m[1] as string] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

function execForm(rest: string, where: string): string[] | undefined {
  const trimmed = rest.trim();
  if (!trimmed.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    // Docker runs a malformed JSON array as a shell command: a classic mistake, so fail.
    throw new Error(`${where}: "${trimmed}" looks like an exec form but is not a JSON array of strings`);
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`${where}: exec form must be a JSON array of strings`);
  return value as string[];
}

/** Substitute ${NAME} / $NAME from build args (FROM lines). */
function substituteArgs(text: string, args: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b) as string;
    return args[name] ?? whole;
  });
}

/**
 * Parse a Dockerfile the way BuildKit's frontend does for these purposes:
 * parser directives on the first lines, `#` comments (also between
 * continuation lines), the escape character ending a line joins the next,
 * instructions grouped into stages by FROM. Heredocs are refused (none here).
 */
export function parseDockerfile(text: string, file: string): Dockerfile {
  const lines = text.split(/\r?\n/);
  const directives: Record<string, string> = {};
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(lines[i] as string);
    if (m === null) break;
    directives[(m[1] as string).toLowerCase()] = m[2] as string;
  }
  const escape = directives.escape ?? '\\';
  const globalArgs: Record<string, string> = {};
  const stages: Array<{ image: string; name: string | undefined; platform: string | undefined; instructions: DockerInstruction[] }> = [];
  let comment: string[] = [];
  while (i < lines.length) {
    const first = lines[i] as string;
    const start = i + 1;
    i++;
    const trimmed = first.trim();
    if (trimmed === '') {
      comment = [];
      continue;
    }
    if (trimmed.startsWith('#')) {
      comment.push(trimmed.replace(/^#\s?/, ''));
      continue;
    }
    let joined = first.replace(/\s+$/, '');
    while (joined.endsWith(escape)) {
      joined = joined.slice(0, -escape.length).replace(/\s+$/, '');
      // Comment and empty lines inside a continuation are skipped, as BuildKit does.
      while (i < lines.length && /^\s*(#.*)?$/.test(lines[i] as string)) i++;
      if (i >= lines.length) break;
      joined += ` ${(lines[i] as string).trim()}`.replace(/\s+$/, '');
      i++;
    }
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(joined);
    if (m === null) throw new Error(`${file}:${start}: cannot read "${joined}"`);
    const keyword = (m[1] as string).toUpperCase();
    const where = `${file}:${start}`;
    const raw = (m[2] ?? '').trim();
    if (/<<-?\s*["']?[A-Za-z_]/.test(raw) && (keyword === 'RUN' || keyword === 'COPY')) throw new Error(`${where}: heredocs are not supported by this parser`);
    const { flags, rest } = splitFlags(keyword, raw);
    const instruction: DockerInstruction = {
      keyword,
      args: rest,
      flags,
      exec: ['CMD', 'ENTRYPOINT', 'RUN', 'SHELL'].includes(keyword) || (keyword === 'HEALTHCHECK' && /^CMD\s+\[/.test(rest)) ? execForm(keyword === 'HEALTHCHECK' ? rest.replace(/^CMD\s+/, '') : rest, where) : undefined,
      comment: comment.join('\n'),
      line: start,
    };
    comment = [];
    if (keyword === 'FROM') {
      const parts = substituteArgs(rest, globalArgs).split(/\s+/);
      const image = parts[0];
      if (image === undefined || image === '') throw new Error(`${where}: FROM without an image`);
      const as = parts[1]?.toUpperCase() === 'AS' ? parts[2] : undefined;
      stages.push({ image, name: as, platform: flags.platform, instructions: [instruction] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) {
      if (keyword !== 'ARG') throw new Error(`${where}: ${keyword} before the first FROM`);
      const [name, value] = rest.split('=', 2) as [string, string | undefined];
      globalArgs[name.trim()] = value?.trim().replace(/^"|"$/g, '') ?? '';
      continue;
    }
    stage.instructions.push(instruction);
  }
  return { file, directives, globalArgs, stages };
}

export function readDockerfile(name: string): Dockerfile {
  const file = join(DOCKER_DIR, name);
  return parseDockerfile(readFileSync(file, 'utf8'), `docker/${name}`);
}

/** KEY=VALUE pairs of an ENV instruction (both the `K=V K2=V2` and the legacy `K V` forms). */
export function envPairs(args: string): Array<[string, string]> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const m = /^(\S+)\s+([\s\S]*)$/.exec(args);
    return m === null ? [] : [[m[1] as string, m[2] as string]];
  }
  const pairs: Array<[string, string]> = [];
  for (const word of shellWords(args)) {
    const eq = word.indexOf('=');
    if (eq > 0) pairs.push([word.slice(0, eq), word.slice(eq + 1)]);
  }
  return pairs;
}

// ---------------------------------------------------------------- .dockerignore

export interface IgnoreRule {
  readonly pattern: string;
  readonly negate: boolean;
  readonly regex: RegExp;
}

function globToRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // "**/" matches any number of folders, including none; a trailing "**" anything.
        if (pattern[i + 2] === '/') {
          out += '(?:.*/)?';
          i += 2;
        } else {
          out += '.*';
          i += 1;
        }
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      if (end === -1) out += '\\[';
      else {
        out += `[${pattern.slice(i + 1, end).replace(/^!/, '^')}]`;
        i = end;
      }
    } else if (c === '\\') out += `\\${pattern[++i] ?? '\\'}`;
    else out += c.replace(/[.+^${}()|]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** The rules of a .dockerignore file (moby's patternmatcher: cleaned paths, `!` exceptions, last match wins). */
export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    const pattern = (negate ? line.slice(1).trim() : line).replace(/^\/+/, '').replace(/\/+$/, '').replace(/^\.\//, '');
    if (pattern === '') continue;
    rules.push({ pattern, negate, regex: globToRegex(pattern) });
  }
  return rules;
}

export function readDockerignore(): IgnoreRule[] {
  return parseDockerignore(readFileSync(join(REPO, '.dockerignore'), 'utf8'));
}

/** Whether a path (relative to the build context, "/"-separated) is left out of the context. */
export function isIgnored(rules: readonly IgnoreRule[], path: string): boolean {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  const prefixes = parts.map((_, k) => parts.slice(0, k + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    // A pattern that matches a folder matches everything in it.
    if (prefixes.some((p) => rule.regex.test(p))) ignored = !rule.negate;
  }
  return ignored;
}

/** Whether any rule could re-include something under `dir` (then the folder cannot be skipped whole). */
export function hasExceptionUnder(rules: readonly IgnoreRule[], dir: string): boolean {
  return rules.some((r) => r.negate && (r.pattern.startsWith(`${dir}/`) || r.pattern.startsWith('*')));
}

// ---------------------------------------------------------------- Compose

/** A .env file: KEY=VALUE lines, comments, optional quotes. */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (m === null) throw new Error(`.env: cannot read "${line}"`);
    out[m[1] as string] = (m[2] as string).replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/**
 * Compose's interpolation: $$ is a literal $, ${VAR}, $VAR, ${VAR:-default},
 * ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, with
 * nested expressions in defaults. A variable that is unset and has no
 * default is an error here (Compose warns and substitutes ""), so every
 * variable the files use must have a default.
 */
export function interpolate(text: string, env: Readonly<Record<string, string | undefined>>, where = 'compose'): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}') depth--;
      }
      if (depth !== 0) throw new Error(`${where}: unterminated \${ in "${text}"`);
      const body = text.slice(i + 2, j - 1);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
      if (m === null) throw new Error(`${where}: bad substitution \${${body}}`);
      const name = m[1] as string;
      const op = m[2];
      const arg = m[3] ?? '';
      const value = env[name];
      const unsetOrEmpty = value === undefined || value === '';
      if (op === undefined) {
        if (value === undefined) throw new Error(`${where}: \${${name}} has no default and is not set`);
        out += value;
      } else if (op === ':-') out += unsetOrEmpty ? interpolate(arg, env, where) : value;
      else if (op === '-') out += value === undefined ? interpolate(arg, env, where) : value;
      else if (op === ':?' || op === '?') {
        if (op === ':?' ? unsetOrEmpty : value === undefined) throw new Error(`${where}: ${name}: ${arg}`);
        out += value;
      } else if (op === ':+') out += unsetOrEmpty ? '' : interpolate(arg, env, where);
      else out += value === undefined ? '' : interpolate(arg, env, where);
      i = j;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (m === null) {
      out += '$';
      i++;
      continue;
    }
    const value = env[m[0]];
    if (value === undefined) throw new Error(`${where}: $${m[0]} has no default and is not set`);
    out += value;
    i += 1 + m[0].length;
  }
  return out;
}

/** Interpolate every string in a parsed Compose file (keys stay as written, as in Compose). */
export function interpolateAll(value: unknown, env: Readonly<Record<string, string | undefined>>, where = 'compose'): unknown {
  if (typeof value === 'string') return interpolate(value, env, where);
  if (Array.isArray(value)) return value.map((v, k) => interpolateAll(v, env, `${where}[${k}]`));
  if (isObj(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, env, `${where}.${k}`)]));
  return value;
}

/**
 * Split a command string into words the way Compose (go-shellwords) does:
 * whitespace separates, single quotes are literal, double quotes and
 * backslashes escape. No expansion (interpolation already happened).
 */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string)) word += text[++i] as string;
      else word += c;
      continue;
    }
    if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\' && i + 1 < text.length) word += text[++i] as string;
    else word += c;
  }
  if (quote !== undefined) throw new Error(`unterminated ${quote} in "${text}"`);
  if (inWord) words.push(word);
  return words;
}

/** A service's command as argv (list form as is; string form split like Compose). */
export function commandOf(service: Obj, where: string): string[] {
  const command = service.command;
  if (command === undefined) return [];
  if (typeof command === 'string') return shellWords(command);
  return list(command, `${where}.command`).map((v, k) => str(v, `${where}.command[${k}]`));
}

export interface ComposeService {
  readonly name: string;
  readonly spec: Obj;
  readonly command: string[];
  readonly replicas: number;
  readonly profiles: readonly string[];
}

/** The defaults Compose reads from docker/.env (the shell's environment wins over them). */
export function composeDefaults(): Record<string, string> {
  const file = join(DOCKER_DIR, '.env');
  return existsSync(file) ? parseDotenv(readFileSync(file, 'utf8')) : {};
}

/** A Compose (or stack) file, interpolated with `env`, its services as argv and replica counts. */
export function loadCompose(file: string, env: Readonly<Record<string, string | undefined>>): { doc: Obj; services: ComposeService[] } {
  const doc = obj(interpolateAll(readYaml(file), env, file), file);
  const services = Object.entries(obj(doc.services, `${file}: services`)).map(([name, value]) => {
    const spec = obj(value, `${file}: services.${name}`);
    const deploy = isObj(spec.deploy) ? spec.deploy : {};
    const replicas = deploy.replicas === undefined ? 1 : Number(deploy.replicas);
    if (!Number.isInteger(replicas) || replicas < 0) throw new Error(`${file}: services.${name}.deploy.replicas is not a count: ${String(deploy.replicas)}`);
    const profiles = spec.profiles === undefined ? [] : list(spec.profiles, `${name}.profiles`).map((p) => str(p, `${name}.profiles`));
    return { name, spec, command: commandOf(spec, `${file}: services.${name}`), replicas, profiles };
  });
  return { doc, services };
}

/** Services that `docker compose up` starts under these profiles. */
export function activeServices(services: readonly ComposeService[], profiles: readonly string[]): ComposeService[] {
  return services.filter((s) => s.profiles.length === 0 || s.profiles.some((p) => profiles.includes(p)));
}

// ---------------------------------------------------------------- command lines

/** The value of --name in an argv (`--name value` or `--name=value`). */
export function flagValue(argv: readonly string[], name: string): string | undefined {
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k] as string;
    if (a === `--${name}`) return argv[k + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

export function hasFlag(argv: readonly string[], name: string): boolean {
  return argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

/** Kubernetes' expansion of $(VAR) in command and args from the container's env ($$(VAR) stays literal). */
export function expandKubernetesVars(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return '$';
    return env[name] ?? whole;
  });
}

/** "tamp/ps:0.1.0" → { name: "ps", tag: "0.1.0" }; undefined for images that are not Tamp's. */
export function tampImage(image: string): { name: string; tag: string } | undefined {
  const m = /^tamp\/([a-z0-9-]+):([A-Za-z0-9._-]+)$/.exec(image);
  return m === null ? undefined : { name: m[1] as string, tag: m[2] as string };
}
