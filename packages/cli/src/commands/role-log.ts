/**
 * A cluster role's log: JSON lines (pino) carrying the job id, the role and
 * its index, so a log collector can tell the lines of every pod apart; plain
 * lines when stderr is a terminal (a person is reading, and progress bars
 * stay readable). `--log-level` filters both.
 */
import { pino } from 'pino';
import { UsageError } from '@tamp/core/base';
import type { Output } from '../output.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const logLevelOption = {
  type: 'string',
  choices: LOG_LEVELS,
  default: 'info',
  description: 'least severe log lines written (env TAMP_LOG_LEVEL); JSON lines unless stderr is a terminal',
} as const;

export interface RoleFields {
  readonly job: string;
  readonly role: string;
  readonly index?: number | undefined;
}

/** The level from the flag, or TAMP_LOG_LEVEL when the flag kept its default. */
function levelOf(flag: string | undefined, env: NodeJS.ProcessEnv): LogLevel {
  const chosen = flag !== undefined && flag !== 'info' ? flag : (env.TAMP_LOG_LEVEL ?? flag ?? 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(chosen)) throw new UsageError(`TAMP_LOG_LEVEL=${chosen}: choose one of ${LOG_LEVELS.join(', ')}`);
  return chosen as LogLevel;
}

/** The role's informational log line writer. */
export function roleLog(out: Output, fields: RoleFields, level?: string, stderr: NodeJS.WriteStream = process.stderr, env: NodeJS.ProcessEnv = process.env): (message: string) => void {
  const chosen = levelOf(level, env);
  const infoShown = chosen === 'trace' || chosen === 'debug' || chosen === 'info';
  if (stderr.isTTY === true) return infoShown ? (m) => out.log(m) : () => {};
  const logger = pino(
    { level: chosen, base: { job: fields.job, role: fields.role, ...(fields.index !== undefined ? { index: fields.index } : {}) }, timestamp: pino.stdTimeFunctions.isoTime },
    // Synchronous: a role that exits right after its last line still writes it.
    pino.destination({ fd: 2, sync: true }),
  );
  return (m) => logger.info(m);
}
