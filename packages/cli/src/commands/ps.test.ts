/**
 * `tamp ps` loads no tfjs: a parameter server restarted after a crash is
 * back sooner, and every cluster test spawns several. A module-resolution
 * hook records every @tensorflow package (and the @tamp entry points that
 * load one) that a real `tamp ps` process resolves, as a launcher starts it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const TAMP_BIN = fileURLToPath(new URL('../../bin/tamp.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tamp-ps-imports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAVY = /^(@tensorflow\/|@tamp\/core$|@tamp\/core\/node$|@tamp\/worker$)/;

describe('tamp ps', () => {
  it('starts without loading tfjs, @tamp/core\'s root or @tamp/worker', () => {
    writeFileSync(
      join(dir, 'hooks.mjs'),
      `export async function resolve(specifier, context, next) {
  if (${HEAVY.toString()}.test(specifier)) process.stderr.write('LOADED ' + specifier + ' <- ' + context.parentURL + '\\n');
  return next(specifier, context);
}
`,
    );
    writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${join(dir, 'hooks.mjs')}`)});\n`);
    // As under `tamp train --local` (TAMP_LAUNCHER_PID: the role watches its launcher), checking its arguments only.
    const r = spawnSync(process.execPath, ['--import', join(dir, 'register.mjs'), TAMP_BIN, 'ps', '--index', '1', '--port', '0', '--dry-run'], {
      encoding: 'utf8',
      env: { ...process.env, TAMP_LAUNCHER_PID: String(process.pid) },
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/arguments check out/);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('LOADED '))).toEqual([]);
  });
});
