/**
 * `tamp score`'s output, resumable: rows are appended a chunk at a time, and
 * after each chunk (written and fsynced) a progress file records how many
 * rows and bytes are complete and the CRC-32 of those bytes, replaced
 * atomically. `--resume` cuts the output back to the recorded length (a
 * chunk that was being written when the run died is dropped, never
 * duplicated), checks the CRC, and goes on from the next row.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { crc32, InvalidArgumentError, UsageError } from '@tamp/core';
import { atomicWriteFile } from '@tamp/core/node';

export interface Progress {
  readonly version: 1;
  /** What is being scored, so a resume of other work is refused. */
  readonly job: { readonly model: string; readonly input: string; readonly format: string };
  readonly rows: number;
  readonly bytes: number;
  readonly crc32: number;
  readonly done: boolean;
}

export class ResumableOutput {
  private constructor(
    private readonly fd: number,
    private readonly progressFile: string,
    private progress: Progress,
  ) {}

  get rows(): number {
    return this.progress.rows;
  }

  /** Open `file` for a new run (refusing to overwrite unless told) or to resume one. */
  static open(file: string, job: Progress['job'], options: { resume: boolean; overwrite: boolean }): ResumableOutput {
    const progressFile = `${file}.progress`;
    if (!options.resume) {
      if (existsSync(file) && !options.overwrite) throw new UsageError(`--out ${file} exists: pass --resume to continue it, or --overwrite to start again`);
      const fd = openSync(file, 'w');
      const fresh: Progress = { version: 1, job, rows: 0, bytes: 0, crc32: 0, done: false };
      atomicWriteFile(progressFile, JSON.stringify(fresh));
      return new ResumableOutput(fd, progressFile, fresh);
    }
    if (!existsSync(progressFile)) throw new UsageError(`--resume: ${progressFile} is missing, so ${file} cannot be resumed (start again with --overwrite)`);
    let saved: Progress;
    try {
      saved = JSON.parse(readFileSync(progressFile, 'utf8')) as Progress;
    } catch (e) {
      throw new InvalidArgumentError(`--resume: ${progressFile} is damaged (${(e as Error).message}); start again with --overwrite`);
    }
    for (const k of ['model', 'input', 'format'] as const) {
      if (saved.job?.[k] !== job[k]) throw new UsageError(`--resume: ${file} was scoring ${k} ${JSON.stringify(saved.job?.[k])}, not ${JSON.stringify(job[k])}`);
    }
    const fd = openSync(file, 'r+');
    // Check the kept bytes a megabyte at a time: the output may be far larger than memory should hold.
    const buf = Buffer.alloc(1 << 20);
    let crc = 0;
    let read = 0;
    for (let n = 1; n > 0 && read < saved.bytes; read += n) {
      n = readSync(fd, buf, 0, Math.min(buf.length, saved.bytes - read), read);
      crc = crc32(buf.subarray(0, n), crc);
    }
    if (read !== saved.bytes || crc !== saved.crc32) {
      closeSync(fd);
      throw new InvalidArgumentError(`--resume: the first ${saved.bytes} bytes of ${file} do not match their recorded checksum (the file was changed); start again with --overwrite`);
    }
    // Whatever follows the recorded length is a chunk that was being written when the run stopped.
    ftruncateSync(fd, saved.bytes);
    return new ResumableOutput(fd, progressFile, saved);
  }

  /** Append `rows` complete rows as one chunk, then record them. */
  append(text: string, rows: number): void {
    const bytes = Buffer.from(text);
    let o = 0;
    while (o < bytes.length) o += writeSync(this.fd, bytes, o, bytes.length - o, this.progress.bytes + o);
    fsyncSync(this.fd);
    this.progress = { ...this.progress, rows: this.progress.rows + rows, bytes: this.progress.bytes + bytes.length, crc32: crc32(bytes, this.progress.crc32) };
    atomicWriteFile(this.progressFile, JSON.stringify(this.progress));
  }

  finish(): void {
    this.progress = { ...this.progress, done: true };
    atomicWriteFile(this.progressFile, JSON.stringify(this.progress));
    closeSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}
