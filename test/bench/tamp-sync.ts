/** The benchmarks' way to run `tamp`: synchronously, stdout captured, stderr shown, a non-zero exit an error. */
import { spawnSync } from 'node:child_process';
import { TAMP_BIN } from '../helpers/tamp.js';

export function tamp(args: string[]): { stdout: string; seconds: number } {
  process.stderr.write(`$ tamp ${args.join(' ')}\n`);
  const started = performance.now();
  const r = spawnSync(process.execPath, [TAMP_BIN, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`tamp ${args.join(' ')} failed with exit ${r.status}`);
  return { stdout: r.stdout, seconds: (performance.now() - started) / 1000 };
}
