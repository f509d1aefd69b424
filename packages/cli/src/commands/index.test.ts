import { describe, expect, it } from 'vitest';
import { COMMANDS } from './index.js';

describe('the command table', () => {
  it('loads, for each entry, the command of that name and summary', async () => {
    expect(COMMANDS.length).toBe(13);
    for (const entry of COMMANDS) {
      const command = await entry.load();
      expect(command.name).toBe(entry.name);
      expect(command.summary).toBe(entry.summary);
    }
  }, 60_000);
});
