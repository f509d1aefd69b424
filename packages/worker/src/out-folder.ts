/**
 * The chief's --out before anything starts: writable (with the real cause
 * when it is not), and not holding another job's results unless told so.
 * A new job trained into a folder with older checkpoints used to mix them
 * (the old ones kept, the new ones pruned, report.json naming a deleted
 * checkpoint, a later --resume restoring the other job).
 */
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterError } from '@tamp/core';
import { checkOutputFolder } from '@tamp/core/node';
import { type CheckpointManifest, checkpointsRoot } from './checkpoints.js';
import type { TrainingSettings } from './job-config.js';

/** What a job writes under --out: a folder holding any of them holds a job's results. */
const JOB_OUTPUTS = ['checkpoints', 'model', 'report.json'] as const;

/** The newest manifest under `out` that parses (no check of its parts), or undefined. */
export function newestManifest(out: string): CheckpointManifest | undefined {
  const root = checkpointsRoot(out);
  if (!existsSync(root)) return undefined;
  for (const d of readdirSync(root).filter((x) => x.startsWith('step-')).sort().reverse()) {
    try {
      return JSON.parse(readFileSync(join(root, d, 'manifest.json'), 'utf8')) as CheckpointManifest;
    } catch {
      // no manifest (a save that never finished) or not JSON: look at the one before
    }
  }
  return undefined;
}

function describe(t: TrainingSettings): string {
  return `${t.model} on ${t.dataset}, ${t.mode}, ${t.optimizer.name}, seed ${t.seed}`;
}

/** Refuse an --out holding a job's results (checkpoints, model, report.json), naming that job when a manifest says which. */
export function refuseOtherJobsResults(out: string): void {
  const found = JOB_OUTPUTS.filter((name) => existsSync(join(out, name)));
  if (found.length === 0) return;
  const manifest = newestManifest(out);
  const whose = manifest !== undefined ? ` of job "${manifest.jobId}" (${describe(manifest.training)}, step ${manifest.step})` : '';
  throw new ClusterError(
    'CLUSTER_CONFIG',
    `--out ${out} already holds a job's results${whose}: ${found.join(', ')}. Continue that job with --resume ${out}, choose an empty --out, or add --overwrite to delete them first`,
  );
}

/**
 * Check --out for a new job (not a resume): writable, and free of another
 * job's results unless `overwrite`, which deletes them first.
 */
export function prepareOutFolder(out: string, overwrite: boolean, log: (message: string) => void): void {
  checkOutputFolder(out);
  if (!overwrite) refuseOtherJobsResults(out);
  const found = JOB_OUTPUTS.filter((name) => existsSync(join(out, name)));
  if (found.length === 0) return;
  for (const name of found) rmSync(join(out, name), { recursive: true, force: true });
  log(`--overwrite: deleted ${found.join(', ')} under ${out}`);
}

/**
 * Resuming with --model and --dataset given as well: they must be the
 * checkpoint's (a checkpoint of another model or dataset cannot continue
 * this job). Only these two are compared: the other settings' flags have
 * defaults, so a value there does not say the user asked for it, and a
 * resumed job takes them from the checkpoint.
 */
export function checkResumeSettings(dir: string, manifest: CheckpointManifest, given: TrainingSettings | undefined): void {
  if (given === undefined) return;
  const saved = manifest.training;
  const differs = (['model', 'dataset'] as const).filter((k) => given[k] !== saved[k]);
  if (differs.length === 0) return;
  throw new ClusterError(
    'JOB_MISMATCH',
    `--resume ${dir}: its checkpoint is of job "${manifest.jobId}" (${describe(saved)}), whose ${differs.join(' and ')} differ from this job's (${given.model} on ${given.dataset}); resume without --model and --dataset (the checkpoint brings its settings), or train a new job into another --out`,
  );
}
