/** The benchmarks' BENCHMARKS.md writer: a rerun replaces its section's generated part and keeps the hand notes around it. */
import { describe, expect, it } from 'vitest';
import { HAND_NOTE, KEPT_NOTES, replaceSection } from './bench/report.js';

const section = (name: string, body: string) => `<!-- BEGIN ${name} -->\n${body}\n<!-- END ${name} -->`;

describe('replaceSection', () => {
  it('appends a section that is not there yet', () => {
    expect(replaceSection('# Benchmarks\n', 'codecs', '## Codecs\n\n| a |')).toBe(`# Benchmarks\n\n${section('codecs', '## Codecs\n\n| a |')}\n`);
  });

  it('replaces a section without hand notes whole, and leaves the other sections alone', () => {
    const text = `# B\n\n${section('wire', '## Wire\nold table')}\n\n${section('codecs', `## Codecs\nold\n${HAND_NOTE}:* about codecs`)}\n`;
    const next = replaceSection(text, 'wire', '## Wire\nnew table');
    expect(next).toBe(`# B\n\n${section('wire', '## Wire\nnew table')}\n\n${section('codecs', `## Codecs\nold\n${HAND_NOTE}:* about codecs`)}\n`);
  });

  it("keeps the old section's hand notes after the new table, under one heading however often it is rerun", () => {
    const notes = `${HAND_NOTE} (2026-12-07):* the table above is slow.\n- **Tried, not kept:** a faster loop.`;
    const text = section('codecs', `## Codecs\n\n| old |\n${notes}`);
    const once = replaceSection(text, 'codecs', '## Codecs\n\n| new |');
    expect(once).toBe(section('codecs', `## Codecs\n\n| new |\n\n${KEPT_NOTES}\n${notes}`));
    // A note added after the first rerun is kept too, and the heading is not repeated.
    const later = `${HAND_NOTE} (later):* after the rerun.`;
    const withLater = once.replace('\n<!-- END codecs -->', `\n${later}\n<!-- END codecs -->`);
    const twice = replaceSection(withLater, 'codecs', '## Codecs\n\n| newer |');
    expect(twice).toBe(section('codecs', `## Codecs\n\n| newer |\n\n${KEPT_NOTES}\n${notes}\n${later}`));
    expect(twice.split(KEPT_NOTES)).toHaveLength(2);
  });
});
