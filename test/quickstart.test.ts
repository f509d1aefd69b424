import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-quickstart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tamp quickstart (what pnpm start runs)', () => {
  it('trains, saves, reloads and evaluates LeNet-300-100 on MNIST', async () => {
    const out = join(dir, 'qs');
    const r = await runTamp(['quickstart', '--epochs', '1', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = jsonOf<{ train: { testAccuracy: number; steps: number }; evaluation: { accuracy: number; count: number } }>(r);
    expect(result.train.steps).toBe(Math.ceil(7000 / 64));
    expect(result.evaluation.count).toBe(2000);
    // One epoch of LeNet-300-100 on 7,000 digits lands near 91%.
    expect(result.evaluation.accuracy).toBeGreaterThan(0.85);
    expect(result.evaluation.accuracy).toBe(result.train.testAccuracy);
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))).toMatchObject({ model: 'lenet-300-100', dataset: 'mnist' });
    const text = await runTamp(['quickstart', '--epochs', '1', '--out', out]);
    expect(text.stdout).toMatch(/Tamp quickstart\n/);
    expect(text.stdout).toMatch(/evaluate +saved model, mnist test split \(2000\) +accuracy \d+\.\d\d%/);
  });
});
