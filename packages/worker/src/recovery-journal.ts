/**
 * report.json `recoveries` across chief restarts (ARCHITECTURE.md, "Faults").
 * The chief keeps the faults it saw in memory; a chief killed mid-job would
 * take them with it, and the chief that takes the job over would report
 * only its own. So every chief of a job writes the whole list to
 * `<out>/recoveries.json` whenever it changes (atomically: a file replaced
 * whole, never half-written), and a chief that takes a running job over
 * reads the earlier chiefs' entries back first and reports them before its
 * own.
 *
 * A fault still open when its chief died (a worker lost and not yet back)
 * keeps the state that chief last wrote: its end, if any, happened while no
 * chief was watching. A fresh start or a `--resume` (a new run of the job,
 * with a report of its own) begins with an empty journal.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '@tamp/core';
import { atomicWriteFile } from '@tamp/core/node';
import type { JobRecoveryRecord } from './report.js';

export const RECOVERY_JOURNAL = 'recoveries.json';

interface JournalFile {
  readonly jobId: string;
  readonly recoveries: readonly JobRecoveryRecord[];
}

function isRecord(value: unknown): value is JobRecoveryRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return (r.role === 'ps' || r.role === 'chief' || r.role === 'worker') && typeof r.index === 'number' && typeof r.cause === 'string' && typeof r.stepsLost === 'number';
}

export class RecoveryJournal {
  readonly file: string;
  private written = '';
  private failed = false;

  constructor(
    out: string,
    private readonly jobId: string,
    private readonly log: (message: string) => void,
  ) {
    this.file = join(out, RECOVERY_JOURNAL);
  }

  /**
   * The entries earlier chiefs of this job wrote (a restarted chief taking
   * it over). None when there is no journal; a damaged one, or one of
   * another job, is reported in the log and read as none: the job goes on,
   * only the report is short of them.
   */
  earlier(): JobRecoveryRecord[] {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return [];
    }
    try {
      const parsed = JSON.parse(text) as Partial<JournalFile>;
      if (parsed.jobId !== this.jobId) {
        this.log(`${this.file} belongs to job "${String(parsed.jobId)}", not "${this.jobId}": the earlier chiefs' recoveries are not carried over`);
        return [];
      }
      const list = Array.isArray(parsed.recoveries) ? parsed.recoveries : [];
      const good = list.filter(isRecord);
      if (good.length !== list.length) this.log(`${this.file}: ${list.length - good.length} damaged entr(ies) skipped`);
      this.written = text;
      return good;
    } catch (error) {
      this.log(`${this.file} is damaged (${errorMessage(error)}): the earlier chiefs' recoveries are not carried over`);
      return [];
    }
  }

  /** A new run of the job (fresh or --resume): no earlier entries belong to its report. */
  clear(): void {
    rmSync(this.file, { force: true });
    this.written = '';
  }

  /** Write `recoveries` when they differ from what was last written (none: no file). A write that fails is logged once; training goes on. */
  save(recoveries: readonly JobRecoveryRecord[]): void {
    // A job that has survived nothing leaves no file.
    if (recoveries.length === 0 && this.written === '') return;
    const text = `${JSON.stringify({ jobId: this.jobId, recoveries } satisfies JournalFile, null, 2)}\n`;
    if (text === this.written) return;
    try {
      atomicWriteFile(this.file, text);
      this.written = text;
      this.failed = false;
    } catch (error) {
      if (!this.failed) this.log(`could not write ${this.file} (${errorMessage(error)}): a chief restarted now would not report the recoveries so far`);
      this.failed = true;
    }
  }
}
