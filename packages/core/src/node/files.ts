/** File helpers: atomic writes (temporary file, fsync, rename, fsync the folder). */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { userPathError } from './user-paths.js';

let counter = 0;

/**
 * Write `data` to `file` so that a reader sees either the old file or the
 * whole new one, even across a crash or SIGKILL. A folder that cannot be
 * created or written is a FILE_ACCESS error naming the path.
 */
export function atomicWriteFile(file: string, data: Uint8Array | string): void {
  try {
    writeAtomically(file, data);
  } catch (error) {
    throw userPathError(error, file, { expected: 'a file in a folder this user can write to', access: 'write' });
  }
}

function writeAtomically(file: string, data: Uint8Array | string): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${process.pid}.${Date.now()}.${counter++}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = openSync(tmp, 'w');
  try {
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(tmp, file);
  syncDirectory(dir);
}

/** fsync a folder so a rename in it survives a crash. */
export function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on folders; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * atomicWriteFile without blocking the event loop: the same steps (temporary
 * file, fsync, rename, fsync the folder) through node:fs/promises, so a
 * server keeps answering while a large file goes to disk.
 */
export async function atomicWriteFileAsync(file: string, data: Uint8Array): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${process.pid}.${Date.now()}.${counter++}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw userPathError(error, file, { expected: 'a file in a folder this user can write to', access: 'write' });
  }
  syncDirectory(dir);
}
