/**
 * How parameter servers combine the workers' pushes (ARCHITECTURE.md,
 * "@tamp/parameter-server"): `async` applies each push at once, `sync`
 * applies the batch-weighted mean of one gradient per live worker, `ssp`
 * applies at once but holds a worker's pull while it runs more than
 * `staleness` steps ahead of the slowest live worker.
 */
import { InvalidArgumentError } from '../errors.js';

export const CONSISTENCY_MODES = Object.freeze(['async', 'sync', 'ssp'] as const);
export type ConsistencyMode = (typeof CONSISTENCY_MODES)[number];

export function isConsistencyMode(value: string): value is ConsistencyMode {
  return (CONSISTENCY_MODES as readonly string[]).includes(value);
}

/** `value` as a mode, or an InvalidArgumentError listing the modes (`what` names the request, e.g. "assign"). */
export function parseConsistencyMode(value: string, what: string): ConsistencyMode {
  if (!isConsistencyMode(value)) throw new InvalidArgumentError(`${what}: unknown mode "${value}": choose one of ${CONSISTENCY_MODES.join(', ')}`);
  return value;
}
