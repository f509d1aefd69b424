/**
 * A small declarative argument parser: each command declares its options
 * once, and parsing, validation, defaults and --help all come from that.
 */
import { UsageError } from '@tamp/core/base';

export type OptionSpec =
  | { readonly type: 'string'; readonly description: string; readonly default?: string; readonly choices?: readonly string[]; readonly value?: string }
  | { readonly type: 'number'; readonly description: string; readonly default?: number; readonly integer?: boolean; readonly min?: number; readonly max?: number; readonly value?: string }
  | { readonly type: 'boolean'; readonly description: string };

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S extends { type: 'number' } ? number : S extends { type: 'boolean' } ? boolean : string;

/** Parsed values: options with a default (and booleans) are always present. */
export type ParsedOptions<O extends OptionSpecs> = {
  readonly [K in keyof O]: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { default: unknown } ? ValueOf<O[K]> : ValueOf<O[K]> | undefined;
};

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
  readonly required?: boolean;
}

/** Options every command takes. */
export const GLOBAL_OPTIONS = {
  json: { type: 'boolean', description: 'print one JSON object on stdout (logs stay on stderr)' },
  verbose: { type: 'boolean', description: 'more logs; stack traces on errors' },
  help: { type: 'boolean', description: 'show this help' },
} as const satisfies OptionSpecs;

export interface ParsedArgs<O extends OptionSpecs> {
  readonly options: ParsedOptions<O & typeof GLOBAL_OPTIONS>;
  readonly positionals: readonly string[];
}

function coerce(name: string, spec: OptionSpec, raw: string): string | number {
  if (spec.type === 'number') {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${name} needs a number, got "${raw}"`);
    if (spec.integer === true && !Number.isInteger(value)) throw new UsageError(`--${name} needs a whole number, got "${raw}"`);
    if (spec.min !== undefined && value < spec.min) throw new UsageError(`--${name} must be at least ${spec.min}, got ${value}`);
    if (spec.max !== undefined && value > spec.max) throw new UsageError(`--${name} must be at most ${spec.max}, got ${value}`);
    return value;
  }
  if (spec.type === 'string' && spec.choices !== undefined && !spec.choices.includes(raw)) {
    throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}; got "${raw}"`);
  }
  return raw;
}

/** Parse argv against a command's options and positionals. */
export function parseArgs<O extends OptionSpecs>(argv: readonly string[], specs: O, positionals: readonly PositionalSpec[], command: string): ParsedArgs<O> {
  const all: OptionSpecs = { ...GLOBAL_OPTIONS, ...specs };
  const values: Record<string, string | number | boolean | undefined> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      values.help = true;
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') {
      if (arg.startsWith('-') && arg.length > 1 && Number.isNaN(Number(arg))) throw new UsageError(`unknown option ${arg} for tamp ${command}`);
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = all[name];
    if (spec === undefined) {
      const close = Object.keys(all).filter((k) => k.startsWith(name.slice(0, 3)));
      throw new UsageError(`unknown option --${name} for tamp ${command}${close.length > 0 ? ` (did you mean ${close.map((c) => `--${c}`).join(' or ')}?)` : ''}`);
    }
    if (spec.type === 'boolean') {
      if (eq !== -1) {
        const v = arg.slice(eq + 1);
        if (v !== 'true' && v !== 'false') throw new UsageError(`--${name} takes no value (or =true/=false), got "${v}"`);
        values[name] = v === 'true';
      } else values[name] = true;
      continue;
    }
    let raw: string | undefined;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else {
      raw = argv[i + 1];
      if (raw === undefined || (raw.startsWith('--') && raw.length > 2)) throw new UsageError(`--${name} needs a value`);
      i++;
    }
    values[name] = coerce(name, spec, raw);
  }
  for (const [name, spec] of Object.entries(all)) {
    if (values[name] === undefined) {
      if (spec.type === 'boolean') values[name] = false;
      else if (spec.default !== undefined) values[name] = spec.default;
    }
  }
  if (values.help !== true) {
    const required = positionals.filter((p) => p.required === true);
    if (rest.length < required.length) {
      throw new UsageError(`tamp ${command} needs ${required.map((p) => `<${p.name}>`).join(' ')}`);
    }
    if (rest.length > positionals.length) throw new UsageError(`tamp ${command}: unexpected argument "${rest[positionals.length]}"`);
  }
  return { options: values as ParsedOptions<O & typeof GLOBAL_OPTIONS>, positionals: rest };
}

/** Help text generated from the specs. */
export function formatHelp(command: string, summary: string, specs: OptionSpecs, positionals: readonly PositionalSpec[]): string {
  const usage = [`tamp ${command}`, ...positionals.map((p) => (p.required === true ? `<${p.name}>` : `[${p.name}]`)), '[options]'].join(' ');
  const lines = [`Usage: ${usage}`, '', summary, ''];
  if (positionals.length > 0) {
    lines.push('Arguments:');
    for (const p of positionals) lines.push(`  ${p.name.padEnd(26)}${p.description}`);
    lines.push('');
  }
  lines.push('Options:');
  for (const [name, spec] of Object.entries({ ...specs, ...GLOBAL_OPTIONS } as OptionSpecs)) {
    const value = spec.type === 'boolean' ? '' : ` <${spec.value ?? (spec.type === 'string' && spec.choices !== undefined ? spec.choices.join('|') : spec.type === 'number' ? 'n' : 'value')}>`;
    const flag = `--${name}${value}`;
    const dflt = spec.type !== 'boolean' && spec.default !== undefined ? ` (default: ${spec.default})` : '';
    lines.push(flag.length < 26 ? `  ${flag.padEnd(26)}${spec.description}${dflt}` : `  ${flag}\n  ${''.padEnd(26)}${spec.description}${dflt}`);
  }
  return lines.join('\n');
}
