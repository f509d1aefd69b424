import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RECOVERY_JOURNAL, RecoveryJournal } from './recovery-journal.js';
import type { JobRecoveryRecord } from './report.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PS: JobRecoveryRecord = { role: 'ps', index: 1, cause: 'restarted without its state', detectedAfterSeconds: 0.5, resumedAfterSeconds: 4.2, stepsLost: 3, restoredStep: 4, restoredFrom: '/out/checkpoints/step-000000004', generation: 1 };
const WORKER: JobRecoveryRecord = {
  role: 'worker',
  index: 0,
  cause: 'lost: silent for 10.4 s; restarted',
  outcome: 'restarted',
  detectedAfterSeconds: 10.4,
  resumedAfterSeconds: 12,
  stepsLost: 0,
  restoredStep: 9,
  restoredFrom: 'parameter servers',
  generation: 1,
};

function journal(name: string, jobId = 'job'): { j: RecoveryJournal; logs: string[]; out: string } {
  const out = join(dir, name);
  mkdirSync(out, { recursive: true });
  const logs: string[] = [];
  return { j: new RecoveryJournal(out, jobId, (m) => logs.push(m)), logs, out };
}

describe('the recovery journal (recoveries across chief restarts)', () => {
  it('a later chief of the same job reads back what the earlier one wrote, in order', () => {
    const { j, out } = journal('carry');
    expect(j.earlier()).toEqual([]);
    // A job that has survived nothing leaves no file.
    j.save([]);
    expect(existsSync(join(out, RECOVERY_JOURNAL))).toBe(false);
    j.save([PS]);
    j.save([PS, WORKER]);
    const next = new RecoveryJournal(out, 'job', () => {});
    expect(next.earlier()).toEqual([PS, WORKER]);
    // A new run of the job starts with none.
    next.clear();
    expect(new RecoveryJournal(out, 'job', () => {}).earlier()).toEqual([]);
  });

  it('another job\'s journal, a damaged one, or damaged entries are not carried over, and say so', () => {
    const other = journal('other');
    other.j.save([PS]);
    const mine = new RecoveryJournal(other.out, 'job-2', (m) => other.logs.push(m));
    expect(mine.earlier()).toEqual([]);
    expect(other.logs.join('\n')).toMatch(/belongs to job "job", not "job-2"/);

    const damaged = journal('damaged');
    writeFileSync(join(damaged.out, RECOVERY_JOURNAL), '{"jobId":"job","recove');
    expect(damaged.j.earlier()).toEqual([]);
    expect(damaged.logs.join('\n')).toMatch(/is damaged/);

    const partly = journal('partly');
    writeFileSync(join(partly.out, RECOVERY_JOURNAL), JSON.stringify({ jobId: 'job', recoveries: [PS, { role: 'gremlin' }, 7] }));
    expect(partly.j.earlier()).toEqual([PS]);
    expect(partly.logs.join('\n')).toMatch(/2 damaged entr/);
  });

  it('a write that fails is logged once and throws nothing; the file is never half-written', () => {
    const { j, logs, out } = journal('readonly');
    j.save([PS]);
    const before = readFileSync(join(out, RECOVERY_JOURNAL), 'utf8');
    // root ignores permissions: a folder where the file should be makes the rename fail for anyone.
    rmSync(join(out, RECOVERY_JOURNAL));
    mkdirSync(join(out, RECOVERY_JOURNAL));
    writeFileSync(join(out, RECOVERY_JOURNAL, 'x'), '');
    expect(() => j.save([PS, WORKER])).not.toThrow();
    expect(() => j.save([PS, WORKER, PS])).not.toThrow();
    expect(logs.filter((m) => m.startsWith('could not write'))).toHaveLength(1);
    rmSync(join(out, RECOVERY_JOURNAL), { recursive: true });
    writeFileSync(join(out, RECOVERY_JOURNAL), before);
    chmodSync(join(out, RECOVERY_JOURNAL), 0o644);
    expect(new RecoveryJournal(out, 'job', () => {}).earlier()).toEqual([PS]);
  });
});
