/**
 * Garbage-collector tuning for the processes of a cluster.
 *
 * A parameter server or a worker's communication thread keeps a small live
 * heap (about 25 MB, mostly code) but turns over megabytes of ArrayBuffers
 * every step: gradients and parameters on their way through gRPC. V8 sets the
 * next full collection at about twice the live heap, so it ran a
 * mark-compact every few steps (10-25 ms each, on a 25 MB heap that had not
 * grown), which `--trace-incremental-marking` shows as "Start (task):
 * 24MB / 48MB". Letting the heap grow four times its live size between full
 * collections cut the mark-compacts of a 1-ps, 1-worker LeNet-300-100 job
 * from about 80 (parameter server) and 90 (communication thread) to a
 * handful; the cost is a larger heap between collections (about 100 MB
 * rather than 50 MB).
 *
 * V8 reads the flag at each collection and for every isolate of the process,
 * so setting it at start-up covers worker threads started later.
 */
import v8 from 'node:v8';
import { UsageError } from '../errors.js';

/** Heap growth between full collections, as V8's --heap-growing-percent (300: the heap may reach 4x its live size). */
export const CLUSTER_HEAP_GROWING_PERCENT = 300;

/** Environment variable that overrides it; 0 leaves V8's own heuristics alone. */
export const HEAP_GROWING_ENV = 'TAMP_HEAP_GROWING_PERCENT';

/** The growth to use: CLUSTER_HEAP_GROWING_PERCENT, or the environment's override (0: none). */
export function heapGrowingPercent(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[HEAP_GROWING_ENV];
  if (raw === undefined || raw === '') return CLUSTER_HEAP_GROWING_PERCENT;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 10_000) {
    throw new UsageError(`${HEAP_GROWING_ENV}="${raw}": give a whole number of percent from 0 (V8's default heuristics) to 10000`);
  }
  return value;
}

/**
 * Apply the cluster's heap growth (heapGrowingPercent()) to this process, all
 * its isolates. Call it once, first thing, in a process that is a cluster
 * role; 0 changes nothing.
 */
export function tuneHeapForCluster(percent = heapGrowingPercent()): void {
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
