import { describe, expect, it } from 'vitest';
import { UsageError } from '@tamp/core';
import { formatHelp, parseArgs } from './args.js';

const specs = {
  epochs: { type: 'number', integer: true, min: 1, default: 5, description: 'epochs' },
  lr: { type: 'number', min: 0, default: 0.001, description: 'learning rate' },
  mode: { type: 'string', choices: ['sync', 'async'], default: 'async', description: 'mode' },
  out: { type: 'string', description: 'out' },
  local: { type: 'boolean', description: 'local' },
} as const;

describe('argument parser', () => {
  it('applies defaults and parses values in both spellings', () => {
    const a = parseArgs(['m.json', '--epochs', '3', '--lr=1e-2', '--local'], specs, [{ name: 'model', description: '', required: true }], 'x');
    expect(a.positionals).toEqual(['m.json']);
    expect(a.options.epochs).toBe(3);
    expect(a.options.lr).toBe(0.01);
    expect(a.options.mode).toBe('async');
    expect(a.options.local).toBe(true);
    expect(a.options.out).toBeUndefined();
    expect(a.options.json).toBe(false);
  });

  it('refuses bad input with one-line usage errors', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--epochs', 'two'], /--epochs needs a number, got "two"/],
      [['--epochs', '1.5'], /--epochs needs a whole number/],
      [['--epochs', '0'], /--epochs must be at least 1/],
      [['--mode', 'ssp'], /--mode must be one of sync, async; got "ssp"/],
      [['--epoch', '3'], /unknown option --epoch for tamp x \(did you mean --epochs\?\)/],
      [['--out'], /--out needs a value/],
      [['a', 'b'], /unexpected argument "b"/],
      [['-x'], /unknown option -x/],
    ];
    for (const [argv, pattern] of cases) {
      expect(() => parseArgs(argv, specs, [{ name: 'model', description: '' }], 'x')).toThrow(UsageError);
      expect(() => parseArgs(argv, specs, [{ name: 'model', description: '' }], 'x')).toThrow(pattern);
    }
    expect(() => parseArgs([], specs, [{ name: 'model', description: '', required: true }], 'x')).toThrow('tamp x needs <model>');
  });

  it('generates help from the specs', () => {
    const help = formatHelp('x', 'Does x.', specs, [{ name: 'model', description: 'a model', required: true }]);
    expect(help).toContain('Usage: tamp x <model> [options]');
    expect(help).toMatch(/--mode <sync\|async> +mode \(default: async\)/);
    expect(help).toContain('--json');
  });
});
