/**
 * Where a shard's checkpoint parts go: decided by the server, never named by
 * a request. The chief fixes an absolute root at the first Assign (its
 * `<out>/checkpoints`); SaveShard names only the step, whose folder is
 * `step-<9 digits>` under that root. A name with a separator, `..` or
 * anything but that pattern is refused before any file is touched.
 */
import { isAbsolute, join, normalize } from 'node:path';
import { ClusterError, InvalidArgumentError } from '@tamp/core/base';

/** Checkpoint steps fit in the folder name's nine digits. */
export const MAX_CHECKPOINT_STEP = 999_999_999;
const MAX_ROOT_CHARS = 4096;

/** A checkpoint's folder name: `step-` and the step in nine digits (they sort by name). */
export function checkpointFolderName(step: number): string {
  return `step-${String(step).padStart(9, '0')}`;
}

/** Refuse a checkpoint root that is not a plain absolute folder path ('' means none: SaveShard is refused). */
export function checkCheckpointRoot(root: string, what: string): string {
  if (root === '') return root;
  if (root.length > MAX_ROOT_CHARS || root.includes('\0') || !isAbsolute(root) || normalize(root) !== root) {
    throw new InvalidArgumentError(`${what}: the checkpoint root must be an absolute, normalised folder path without '..'`);
  }
  return root;
}

/**
 * The folder SaveShard writes into for `step`. `name`, when given, must be
 * exactly that folder's name.
 */
export function saveDirectory(root: string | undefined, name: string, step: bigint): string {
  if (step < 0n || step > BigInt(MAX_CHECKPOINT_STEP)) throw new InvalidArgumentError(`saveShard: step ${step} is out of range (0..${MAX_CHECKPOINT_STEP})`);
  const folder = checkpointFolderName(Number(step));
  if (name !== '' && name !== folder) {
    throw new InvalidArgumentError(`saveShard: the checkpoint is named by its step only ("${folder}" or empty); paths and other names are refused`);
  }
  if (root === undefined || root === '') throw new ClusterError('NOT_READY', 'saveShard: the chief fixed no checkpoint folder for this shard at Assign');
  return join(root, folder);
}
