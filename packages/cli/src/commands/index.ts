import type { OptionSpecs } from '../args.js';
import type { Command } from '../command.js';
import { benchCommand } from './bench.js';
import { certsCommand } from './certs.js';
import { compressCommand } from './compress.js';
import { datasetsCommand } from './datasets.js';
import { evalCommand } from './eval.js';
import { inferCommand } from './infer.js';
import { quickstartCommand } from './quickstart.js';
import { scoreCommand } from './score.js';
import { serveCommand } from './serve.js';
import { chiefCommand, psCommand, workerCommand } from './roles.js';
import { trainCommand } from './train.js';

/** Every tamp command, in the order --help lists them. */
export const COMMANDS: ReadonlyArray<Command<OptionSpecs>> = [
  trainCommand,
  chiefCommand,
  psCommand,
  workerCommand,
  certsCommand,
  compressCommand,
  evalCommand,
  inferCommand,
  benchCommand,
  serveCommand,
  scoreCommand,
  datasetsCommand,
  quickstartCommand,
] as unknown as ReadonlyArray<Command<OptionSpecs>>;
