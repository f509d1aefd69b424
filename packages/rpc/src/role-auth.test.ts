import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterError } from '@tamp/core';
import { chiefSecretFromEnv, newSecret, sameSecret, slotToken, verifySlotToken } from './role-auth.js';

describe('role secrets', () => {
  it('a slot token verifies for its worker and generation only, under its secret only', () => {
    const secret = newSecret();
    const token = slotToken(secret, 'worker-0', 3);
    expect(verifySlotToken(secret, 'worker-0', token)).toBe(3);
    expect(verifySlotToken(secret, 'worker-1', token)).toBeUndefined();
    expect(verifySlotToken(newSecret(), 'worker-0', token)).toBeUndefined();
    // Another generation with the same MAC, a truncated MAC, garbage and an absent token.
    expect(verifySlotToken(secret, 'worker-0', token.replace(/^3\./, '4.'))).toBeUndefined();
    expect(verifySlotToken(secret, 'worker-0', token.slice(0, -1))).toBeUndefined();
    for (const bad of [undefined, '', '.', 'x'.repeat(5000), `1.${'A'.repeat(43)}`]) expect(verifySlotToken(secret, 'worker-0', bad)).toBeUndefined();
  });

  it('compares secrets whatever their lengths, refusing empty and overlong ones', () => {
    const s = newSecret();
    expect(sameSecret(s, s)).toBe(true);
    expect(sameSecret(`${s}x`, s)).toBe(false);
    expect(sameSecret(undefined, s)).toBe(false);
    expect(sameSecret('', '')).toBe(false);
    expect(sameSecret('a'.repeat(300), 'a'.repeat(300))).toBe(false);
  });
});

describe('the chief secret a deployment gives (TAMP_CHIEF_SECRET or TAMP_CHIEF_SECRET_FILE)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tamp-chief-secret-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };

  it('reads the variable, or the file trimmed of its newline; neither set is undefined', () => {
    const secret = newSecret();
    expect(chiefSecretFromEnv({ TAMP_CHIEF_SECRET: secret })).toBe(secret);
    expect(chiefSecretFromEnv({ TAMP_CHIEF_SECRET_FILE: file('ok', `${secret}\n`) })).toBe(secret);
    expect(chiefSecretFromEnv({})).toBeUndefined();
    expect(chiefSecretFromEnv({ TAMP_CHIEF_SECRET: '', TAMP_CHIEF_SECRET_FILE: '' })).toBeUndefined();
  });

  it('refuses both at once, a missing or empty file and a short secret, each a SECURITY_CONFIG error saying how to fix it', () => {
    const secret = newSecret();
    const code = (env: NodeJS.ProcessEnv) => {
      try {
        chiefSecretFromEnv(env);
        return 'accepted';
      } catch (error) {
        expect(error).toBeInstanceOf(ClusterError);
        return `${(error as ClusterError).code}: ${(error as Error).message}`;
      }
    };
    expect(code({ TAMP_CHIEF_SECRET: secret, TAMP_CHIEF_SECRET_FILE: file('both', secret) })).toMatch(/^SECURITY_CONFIG: both TAMP_CHIEF_SECRET and TAMP_CHIEF_SECRET_FILE/);
    expect(code({ TAMP_CHIEF_SECRET_FILE: join(dir, 'missing') })).toMatch(/^SECURITY_CONFIG: .*cannot read the file.*tamp certs/);
    expect(code({ TAMP_CHIEF_SECRET_FILE: file('empty', '\n') })).toMatch(/^SECURITY_CONFIG: .*16 to 256 characters.*\(got 0\)/);
    expect(code({ TAMP_CHIEF_SECRET: 'short' })).toMatch(/^SECURITY_CONFIG: TAMP_CHIEF_SECRET: .*\(got 5\)/);
    expect(code({ TAMP_CHIEF_SECRET: `${secret} ${secret}` })).toMatch(/without spaces/);
  });
});
