/**
 * SaveShard off the critical path (ARCHITECTURE.md, "@tamp/parameter-server"):
 * at the checkpoint barrier the shard only copies its state into the file's
 * buffer (no update can interleave a synchronous copy) and answers; the CRC
 * and the atomic write (temporary file, fsync, rename) follow in the
 * background while training goes on. CheckpointWriteWait answers when the
 * file is durable, and the chief writes the manifest only then, so a crash
 * between the copy and the write leaves a folder without a manifest: never a
 * checkpoint that names a missing or partial file.
 */
import { join } from 'node:path';
import { ModelError, UsageError } from '@tamp/core/base';
import { atomicWriteFileAsync } from '@tamp/core/node-base';
import { copyShardCheckpoint, sealShardCheckpoint, shardFileName } from './checkpoint.js';
import type { Shard } from './shard.js';

export interface WrittenPart {
  readonly file: string;
  readonly bytes: number;
  readonly crc32: number;
  readonly version: bigint;
}

/** Writes remembered for CheckpointWriteWait (a retried wait still finds its write); older ones are forgotten. */
const KEPT_WRITES = 8;

/** The test hook's delay before each background write (ms; TAMP_TEST_CHECKPOINT_WRITE_DELAY_MS, 0 when unset). */
export function checkpointWriteDelayFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TAMP_TEST_CHECKPOINT_WRITE_DELAY_MS;
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`TAMP_TEST_CHECKPOINT_WRITE_DELAY_MS must be a number of milliseconds ≥ 0, got "${raw}"; unset it outside tests`);
  return ms;
}

export class CheckpointWrites {
  private readonly writes = new Map<string, Promise<WrittenPart>>();

  constructor(
    private readonly log: (message: string) => void,
    /** A test hook: wait this long before writing, so a test can kill the server between the copy and the write. */
    private readonly delayMs = checkpointWriteDelayFromEnv(),
  ) {}

  /** Copy the shard's state now (synchronously) and write it into `directory` in the background. */
  start(shard: Shard, directory: string, step: bigint): { file: string; bytes: number; version: bigint } {
    const { bytes, version } = copyShardCheckpoint(shard);
    const file = join(directory, shardFileName(shard.index));
    const write = (async (): Promise<WrittenPart> => {
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      const crc32 = sealShardCheckpoint(bytes);
      await atomicWriteFileAsync(file, bytes);
      this.log(`shard ${shard.index}: checkpoint of version ${version} (step ${step}) written to ${file}`);
      return { file, bytes: bytes.length, crc32, version };
    })();
    // Observed here; the chief's wait sees the error.
    write.catch((error: unknown) => this.log(`shard ${shard.index}: checkpoint of step ${step} not written: ${String(error)}`));
    this.writes.delete(file);
    this.writes.set(file, write);
    for (const old of this.writes.keys()) {
      if (this.writes.size <= KEPT_WRITES) break;
      this.writes.delete(old);
    }
    return { file, bytes: bytes.length, version };
  }

  /** The write of `file` once durable (or its error); refused when this server holds no such write. */
  wait(file: string): Promise<WrittenPart> {
    const write = this.writes.get(file);
    if (write === undefined) {
      return Promise.reject(new ModelError('MODEL_NOT_FOUND', `checkpoint part ${file}: this parameter server holds no write of it (it restarted since SaveShard); that checkpoint is incomplete, take a later one`));
    }
    return write;
  }
}
