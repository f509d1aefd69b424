import { describe, expect, it } from 'vitest';
import { newSecret, sameSecret, slotToken, verifySlotToken } from './role-auth.js';

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
