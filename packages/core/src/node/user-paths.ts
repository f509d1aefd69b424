/**
 * Paths a user named (a model file, an IDX folder, an image, --out): the
 * file system's refusals (ENOENT, EISDIR, EACCES, ...) become typed errors
 * that name the path and say what was expected there, instead of a raw
 * `EISDIR: illegal operation on a directory, read`.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DatasetError, FileError, ModelError, type TampError, errorMessage } from '../errors.js';

export interface UserPathOptions {
  /** What the path should name, for messages: "a model.json or a .tamp file". */
  readonly expected: string;
  /** The code for a path that does not exist (default FILE_NOT_FOUND). */
  readonly notFound?: 'MODEL_NOT_FOUND' | 'DATASET_NOT_FOUND' | 'FILE_NOT_FOUND';
  /** Files to suggest when the path is a folder that holds one of them (e.g. model.json). */
  readonly inFolder?: readonly string[];
  /** Reading (default) or writing, for the permission message. */
  readonly access?: 'read' | 'write';
}

function osCodeOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "did you mean DIR/model.json?" when the folder holds one of the expected files. */
function folderHint(path: string, names: readonly string[] | undefined): string {
  const found = (names ?? []).map((n) => join(path, n)).find((f) => existsSync(f));
  return found === undefined ? '' : ` (did you mean ${found}?)`;
}

/** The typed error for a file system error on a path the user named. Errors that are already typed pass through. */
export function userPathError(error: unknown, path: string, options: UserPathOptions): TampError {
  if (error instanceof FileError || error instanceof ModelError || error instanceof DatasetError) return error;
  const osCode = osCodeOf(error);
  const cause = { cause: error };
  const verb = options.access ?? 'read';
  if (osCode === 'ENOENT') {
    const message = `${path}: cannot ${verb} it: no such file or folder; expected ${options.expected}`;
    if (options.notFound === 'MODEL_NOT_FOUND') return new ModelError('MODEL_NOT_FOUND', message, cause);
    if (options.notFound === 'DATASET_NOT_FOUND') return new DatasetError('DATASET_NOT_FOUND', message, path, cause);
    return new FileError('FILE_NOT_FOUND', message, path, osCode, cause);
  }
  let why: string;
  if (osCode === 'EISDIR') why = `is a folder; expected ${options.expected}${folderHint(path, options.inFolder)}`;
  else if (osCode === 'ENOTDIR') why = `a part of this path is a file, not a folder; expected ${options.expected}`;
  else if (osCode === 'EEXIST') why = `a file is in the way where a folder should be; expected ${options.expected}`;
  else if (osCode === 'EACCES' || osCode === 'EPERM') why = `permission denied: this user may not ${verb} it (check its permissions and those of its folders); expected ${options.expected}`;
  else if (osCode === 'EROFS') why = `is on a read-only file system; expected ${options.expected}`;
  else if (osCode === 'ENOSPC') why = 'no space left on its device: free some space or choose another folder';
  else why = `cannot ${verb} it (${errorMessage(error)}); expected ${options.expected}`;
  return new FileError('FILE_ACCESS', `${path}: ${why}`, path, osCode, cause);
}

/** Read a file the user named, with typed errors. */
export function readUserFile(path: string, options: UserPathOptions): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw userPathError(error, path, options);
  }
}

/** Refuse, before reading, a path that is not a readable file (missing, a folder, no permission). */
export function checkUserFile(path: string, options: UserPathOptions): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
    if (!isDirectory) accessSync(path, constants.R_OK);
  } catch (error) {
    throw userPathError(error, path, options);
  }
  if (isDirectory) throw userPathError(Object.assign(new Error('is a folder'), { code: 'EISDIR' }), path, options);
}

/**
 * Check, without writing anything, that `dir` can become an output folder:
 * it is a folder this user can write to, or the nearest part of it that
 * exists is. Commands call it before starting long work, so a bad --out
 * fails at once rather than after training.
 */
export function checkOutputFolder(dir: string, flag = '--out'): void {
  const expected = `${flag}: a folder this user can write to (created if missing)`;
  let at = resolve(dir);
  for (;;) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(at).isDirectory();
    } catch (error) {
      const code = osCodeOf(error);
      if (code === 'ENOENT' && dirname(at) !== at) {
        at = dirname(at);
        continue;
      }
      throw userPathError(error, at, { expected, access: 'write' });
    }
    if (!isDirectory) {
      throw new FileError('FILE_ACCESS', `${at}: is a file; ${at === resolve(dir) ? '' : `it is in the way of ${dir}; `}expected ${expected}`, at, 'ENOTDIR');
    }
    try {
      accessSync(at, constants.W_OK | constants.X_OK);
    } catch (error) {
      throw userPathError(error, at, { expected, access: 'write' });
    }
    return;
  }
}
