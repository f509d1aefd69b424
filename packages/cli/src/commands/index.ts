/**
 * Every tamp command, in the order --help lists them: its name and summary
 * (summaries.ts), and how to load it. A command's module, with everything
 * it imports (tfjs, gRPC, Dawn), is loaded only when that command runs or
 * prints its help, so `tamp --version`, `tamp --help` and every role's
 * start pay for one command, not all of them.
 */
import type { OptionSpecs } from '../args.js';
import type { Command } from '../command.js';
import { COMMAND_SUMMARIES, type CommandName } from './summaries.js';

export interface CommandEntry {
  readonly name: CommandName;
  readonly summary: string;
  load(): Promise<Command<OptionSpecs>>;
}

/** Each command module's typed command, as the table's common type (what defineCommand's option types erase). */
const erased = (command: unknown): Command<OptionSpecs> => command as Command<OptionSpecs>;
const LOADERS: Readonly<Record<CommandName, () => Promise<Command<OptionSpecs>>>> = {
  train: async () => erased((await import('./train.js')).trainCommand),
  chief: async () => erased((await import('./roles.js')).chiefCommand),
  ps: async () => erased((await import('./ps.js')).psCommand),
  worker: async () => erased((await import('./roles.js')).workerCommand),
  certs: async () => erased((await import('./certs.js')).certsCommand),
  compress: async () => erased((await import('./compress.js')).compressCommand),
  eval: async () => erased((await import('./eval.js')).evalCommand),
  infer: async () => erased((await import('./infer.js')).inferCommand),
  bench: async () => erased((await import('./bench.js')).benchCommand),
  serve: async () => erased((await import('./serve.js')).serveCommand),
  score: async () => erased((await import('./score.js')).scoreCommand),
  datasets: async () => erased((await import('./datasets.js')).datasetsCommand),
  quickstart: async () => erased((await import('./quickstart.js')).quickstartCommand),
};

export const COMMANDS: readonly CommandEntry[] = (Object.keys(COMMAND_SUMMARIES) as CommandName[]).map((name) => ({
  name,
  summary: COMMAND_SUMMARIES[name],
  load: LOADERS[name],
}));
