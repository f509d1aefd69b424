/**
 * The network lab's smoke test: two hosts (network namespaces) on a 50 Mbit/s
 * link. A bulk TCP transfer measures the link at its limit (within 20%), and a
 * tiny cluster job with its parameter server on one host and the chief and a
 * worker on the other trains to completion across the link.
 */
import { type ChildProcess, execFileSync, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUnavailable, NetworkLab, removeStaleLabs } from './helpers/netlab.js';
import { TAMP_BIN } from './helpers/tamp.js';

const LINK_MBIT = 50;

/** Collect a child's output and wait for it to exit. */
function finished(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// A receiver that reports bytes and the seconds between its first and last byte; a sender of N bytes.
const RECEIVER = `
const net = require('node:net');
const server = net.createServer((s) => {
  let bytes = 0, first = 0, last = 0;
  s.on('data', (d) => { const t = process.hrtime.bigint(); if (bytes === 0) first = t; bytes += d.length; last = t; });
  s.on('end', () => { console.log(JSON.stringify({ bytes, seconds: Number(last - first) / 1e9 })); server.close(); });
});
server.listen(Number(process.argv[2]), process.argv[1], () => console.log('ready'));
`;
const SENDER = `
const net = require('node:net');
const total = Number(process.argv[3]);
const chunk = Buffer.alloc(65536, 7);
const s = net.connect(Number(process.argv[2]), process.argv[1], () => {
  let sent = 0;
  const pump = () => { while (sent < total) { sent += chunk.length; if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
  pump();
});
`;

describe('network lab', () => {
  let lab: NetworkLab;
  let out: string;

  beforeAll(() => {
    const why = labUnavailable();
    if (why !== undefined) throw new Error(why);
    lab = NetworkLab.create([
      { name: 'a', mbit: LINK_MBIT },
      { name: 'b', mbit: LINK_MBIT },
    ]);
    out = mkdtempSync(join(tmpdir(), 'tamp-netlab-'));
  });

  afterAll(() => {
    lab?.close();
    if (out !== undefined) rmSync(out, { recursive: true, force: true });
  });

  it('cleans up after itself and after a run that was killed', () => {
    const ns = (): string[] => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('tamplab'));
    // A lab made by a process that is then killed leaves its namespaces behind ...
    const script = `import('${join(import.meta.dirname, 'helpers/netlab.ts')}').then(({ NetworkLab }) => { NetworkLab.create([{ name: 'x' }]); process.kill(process.pid, 'SIGKILL'); });`;
    try {
      execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { stdio: 'ignore' });
    } catch {
      // Killed, as intended.
    }
    const orphans = ns().filter((n) => !n.startsWith(`tamplab${process.pid}-`));
    expect(orphans.length).toBeGreaterThanOrEqual(2); // its switch and its host
    // ... and the next lab (or an explicit sweep) removes them, leaving this run's own lab alone.
    removeStaleLabs();
    expect(ns().filter((n) => !n.startsWith(`tamplab${process.pid}-`))).toEqual([]);
    expect(ns().filter((n) => n.startsWith(`tamplab${process.pid}-`))).toHaveLength(3);
  });

  it(`carries bulk TCP at the link's ${LINK_MBIT} Mbit/s (within 20%)`, async () => {
    const a = lab.host('a');
    const receiver = lab.spawn('a', process.execPath, ['-e', RECEIVER, a.address, '5001'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const received = finished(receiver);
    await new Promise<void>((resolve) => receiver.stdout?.once('data', () => resolve()));
    // 8 MB: about 1.3 s at 50 Mbit/s, long enough that tbf's bucket (128 KiB) does not matter.
    const sender = await finished(lab.spawn('b', process.execPath, ['-e', SENDER, a.address, '5001', String(8 * 1024 * 1024)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(sender.code, sender.stderr).toBe(0);
    const r = await received;
    const { bytes, seconds } = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { bytes: number; seconds: number };
    expect(bytes).toBe(8 * 1024 * 1024);
    const mbit = (bytes * 8) / seconds / 1e6;
    expect(mbit).toBeGreaterThan(LINK_MBIT * 0.8);
    expect(mbit).toBeLessThan(LINK_MBIT * 1.2);
  });

  it('trains a tiny job with the parameter server on one host and the chief and worker on the other', async () => {
    const a = lab.host('a');
    const b = lab.host('b');
    const io: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'] };
    // The lab's addresses are not loopback: plaintext must be asked for (the roles refuse it otherwise).
    const job = ['--job-id', 'netlab', '--insecure'];
    const ps = finished(lab.spawn('a', process.execPath, [TAMP_BIN, 'ps', '--index', '0', '--host', a.address, '--port', '2222', ...job], io));
    const chief = finished(
      lab.spawn(
        'b',
        process.execPath,
        [TAMP_BIN, 'chief', '--host', b.address, '--port', '2223', '--ps', `${a.address}:2222`, '--workers', '1', '--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1024', '--lr', '0.01', '--out', out, '--json', ...job],
        io,
      ),
    );
    const worker = finished(lab.spawn('b', process.execPath, [TAMP_BIN, 'worker', '--chief', `${b.address}:2223`, '--index', '0', ...job], io));
    const [c, w, p] = await Promise.all([chief, worker, ps]);
    expect(c.code, c.stderr).toBe(0);
    expect(w.code, w.stderr).toBe(0);
    expect(p.code, p.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { steps: number; testAccuracy: number; ps: number; workers: number };
    // 1,024 samples in batches of 64: 16 steps, every one pushed and pulled across the 50 Mbit/s link.
    expect(report).toMatchObject({ steps: 16, ps: 1, workers: 1 });
    expect(report.testAccuracy).toBeGreaterThan(0.3);
  });
});
