/**
 * The tamp command: dispatch, --help, --version, --json, exit codes.
 * Exit 0 on success, 2 on a usage error, 1 on any other failure, with a
 * one-line error (stack traces only with --verbose).
 *
 * Everything heavy (tfjs, gRPC) is imported when needed: `tamp --help` and
 * `tamp --version` load no command, and a command loads only its own module
 * (commands/index.ts).
 */
import { TAMP_VERSION } from '@tamp/core/version';
import { COMMANDS } from './commands/index.js';

function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'Usage: tamp <command> [options]',
    '',
    'Train TensorFlow.js models on clusters, pack them small, run them on WebGPU.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Every command takes --help, --json (one JSON object on stdout) and --verbose.',
    'tamp --version prints the version.',
  ].join('\n');
}

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text.endsWith('\n') ? text : `${text}\n`, () => resolve()));
}

export async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const verbose = argv.includes('--verbose');
  // Libraries (tfjs among them) sometimes console.log; stdout is reserved for results.
  console.log = console.error;
  console.info = console.error;
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await write(process.stdout, topLevelHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    await write(process.stdout, json ? JSON.stringify({ version: TAMP_VERSION }) : TAMP_VERSION);
    return 0;
  }
  const [{ TampError, UsageError, errorMessage }, { formatHelp, parseArgs }, { createOutput }] = await Promise.all([import('@tamp/core/base'), import('./args.js'), import('./output.js')]);
  const out = createOutput({ json, verbose });
  // A role of `tamp train --local` ends with its launcher, even one killed with SIGKILL (a no-op unless the launcher named itself).
  (await import('@tamp/worker/parent-watch')).exitWithLauncher(process.env, (m) => out.log(m));
  try {
    const entry = COMMANDS.find((c) => c.name === name);
    if (entry === undefined) {
      throw new UsageError(`unknown command "${name}": choose one of ${COMMANDS.map((c) => c.name).join(', ')}`);
    }
    const command = await entry.load();
    const parsed = parseArgs(rest, command.options, command.positionals, command.name);
    if (parsed.options.help) {
      await write(process.stdout, formatHelp(command.name, command.summary, command.options, command.positionals));
      return 0;
    }
    const { result, text } = await command.run({ options: parsed.options, positionals: parsed.positionals, out, argv: rest });
    // A command that streamed its results to stdout itself (tamp score --out -) returns no result.
    if (result !== undefined) await write(process.stdout, json ? JSON.stringify(result) : text);
    return 0;
  } catch (error) {
    out.endProgress();
    const code = error instanceof TampError ? error.code : 'INTERNAL';
    const message = error instanceof TampError ? errorMessage(error) : `unexpected error: ${errorMessage(error)}`;
    const hint = error instanceof UsageError ? ` (tamp ${name} --help)` : '';
    process.stderr.write(`tamp: ${message}${hint}\n`);
    if (verbose && error instanceof Error && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
    if (json) await write(process.stdout, JSON.stringify({ error: { code, message } }));
    return error instanceof UsageError ? 2 : 1;
  }
}

// Run when executed (bin/tamp.mjs imports this module).
const code = await main(process.argv.slice(2));
process.exit(code);
