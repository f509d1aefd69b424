import { describe, expect, it } from 'vitest';
import { UsageError } from '@tamp/core';
import { indexFromHostname } from './roles.js';

describe('tamp ps --index-from-hostname', () => {
  it('reads a StatefulSet pod’s ordinal from its host name', () => {
    expect(indexFromHostname('tamp-ps-0')).toBe(0);
    expect(indexFromHostname('tamp-ps-12')).toBe(12);
    expect(indexFromHostname('my-2-ps-3')).toBe(3);
  });

  it('refuses a host name without one, saying what to pass instead', () => {
    expect(() => indexFromHostname('tamp-ps')).toThrow(UsageError);
    expect(() => indexFromHostname('tamp-ps-x')).toThrow(/does not end in -<number>.*pass --index N instead/);
  });
});
