import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TAMP_VERSION } from './version.js';

describe('TAMP_VERSION', () => {
  it('is the version of every package (bump them together)', () => {
    const packages = new URL('../../', import.meta.url);
    const names = readdirSync(packages).filter((n) => !n.startsWith('.'));
    expect(names).toContain('core');
    for (const name of names) {
      const pkg = JSON.parse(readFileSync(new URL(`${name}/package.json`, packages), 'utf8')) as { version?: string };
      expect(pkg.version, `packages/${name}/package.json`).toBe(TAMP_VERSION);
    }
  });
});
