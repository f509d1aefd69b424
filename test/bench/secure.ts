/**
 * pnpm bench:secure: the price of security on the wire. The same 2-worker local jobs in plaintext
 * (loopback, no flags) and over mutual TLS with a bearer token (`tamp train --local --secure`:
 * certificates and a token made for the run), alternating run by run.
 *
 *   pnpm bench:secure [--rounds N] [--quick] [--no-write]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TAMP_BIN } from '../helpers/tamp.js';
import { fmt, machine, markdownTable, median, writeSection } from './report.js';

const quick = process.argv.includes('--quick');
const write = !process.argv.includes('--no-write') && !quick;
const roundsAt = process.argv.indexOf('--rounds');
const ROUNDS = roundsAt !== -1 ? Number(process.argv[roundsAt + 1]) : quick ? 1 : 3;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds needs a whole number of rounds, at least 1');

const work = mkdtempSync(join(tmpdir(), 'tamp-bench-secure-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const MODELS = [
  ['lenet-5', quick ? 640 : 7000],
  ['lenet-300-100', quick ? 1920 : 7000],
] as const;

function samplesPerSecond(model: string, epochSize: number, secure: boolean): number {
  const out = join(work, String(Math.random()).slice(2));
  const args = ['train', '--local', '--ps', '1', '--workers', '2', '--mode', 'async', '--checkpoint-every', '0'];
  args.push('--model', model, '--dataset', 'mnist', '--epochs', '1', '--epoch-size', String(epochSize), '--batch-size', '64', '--backend', 'wasm');
  if (secure) args.push('--secure');
  args.push('--out', out, '--json');
  process.stderr.write(`$ tamp ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [TAMP_BIN, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tamp ${args.join(' ')} failed:\n${r.stderr.slice(-2000)}`);
  rmSync(out, { recursive: true, force: true });
  return (JSON.parse(r.stdout) as { samplesPerSecond: number }).samplesPerSecond;
}


const loadBefore = loadavg()[0] as number;
const rows: Array<Array<string | number>> = [];
const goals: string[] = [];
for (const [model, epochSize] of MODELS) {
  const plain: number[] = [];
  const secure: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first, so neither always follows the other.
    const order = round % 2 === 0 ? [false, true] : [true, false];
    for (const s of order) (s ? secure : plain).push(samplesPerSecond(model, epochSize, s));
  }
  const cost = 1 - median(secure) / median(plain);
  rows.push([
    model,
    `${fmt(median(plain))} (${plain.map((v) => fmt(v)).join(' / ')})`,
    `${fmt(median(secure))} (${secure.map((v) => fmt(v)).join(' / ')})`,
    `${fmt(cost * 100, 1)}%`,
  ]);
  if (model === 'lenet-5') goals.push(`- lenet-5: mutual TLS + token costs **${fmt(cost * 100, 1)}%** of samples/s (goal: at most 10%): ${cost <= 0.1 ? 'met' : 'missed'}.`);
  else goals.push(`- ${model}: mutual TLS + token costs ${fmt(cost * 100, 1)}% of samples/s; its steps are mostly communication (about 1 MiB each way per step), which TLS encrypts and authenticates.`);
}

const markdown = `## The price of security on the wire: \`pnpm bench:secure --rounds ${ROUNDS}\`

Machine: ${machine()}. Load average (1 min) ${loadBefore.toFixed(1)} at the start, ${(loadavg()[0] as number).toFixed(1)} at the end. Each row: \`tamp train --local --ps 1 --workers 2 --mode async --checkpoint-every 0 --epochs 1 --epoch-size 7000 --batch-size 64 --backend wasm\` in plaintext over loopback and the same with \`--secure\` (mutual TLS, ECDSA P-256 certificates, a bearer token on every call), alternating run by run, ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}; the median counts (each run in brackets).

${goals.join('\n')}

${markdownTable(['model', 'plaintext samples/s', 'mutual TLS + token samples/s', 'cost'], rows)}`;
process.stdout.write(`${markdown}\n`);
if (write) writeSection('bench:secure', markdown);
