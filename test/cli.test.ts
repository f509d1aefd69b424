import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateClassifier, zooNames } from '@tamp/core';
import { loadMnist } from '@tamp/core/node';
import { REPO, jsonOf, runTamp, serveFolder } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oneLineError(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => l.startsWith('tamp: '));
  expect(lines).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  return lines[0] as string;
}

describe('tamp CLI', () => {
  it('prints help and version', async () => {
    const help = await runTamp(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['train', 'eval', 'datasets', 'quickstart']) expect(help.stdout).toContain(`  ${c}`);
    const version = await runTamp(['--version', '--json']);
    expect(jsonOf(version)).toEqual({ version: '0.1.0' });
    const trainHelp = await runTamp(['train', '--help']);
    expect(trainHelp.code).toBe(0);
    expect(trainHelp.stdout).toMatch(/--batch-size <n> +samples per step per worker \(default: 64\)/);
  });

  it('exits 2 with a one-line error on usage mistakes', async () => {
    const unknown = await runTamp(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(oneLineError(unknown.stderr)).toMatch(/unknown command "frobnicate"/);
    const badFlag = await runTamp(['train', '--model', 'lenet-300-100', '--epochs', 'many']);
    expect(badFlag.code).toBe(2);
    expect(oneLineError(badFlag.stderr)).toMatch(/--epochs needs a number/);
    const json = await runTamp(['eval', '--json']);
    expect(json.code).toBe(2);
    expect(jsonOf(json)).toEqual({ error: { code: 'USAGE', message: 'tamp eval needs <model>' } });
  });

  it('lists datasets', async () => {
    const r = await runTamp(['datasets', '--json']);
    expect(r.code).toBe(0);
    const { datasets } = jsonOf<{ datasets: Array<{ name: string; available: boolean }> }>(r);
    expect(datasets.find((d) => d.name === 'mnist')?.available).toBe(true);
    expect(datasets.find((d) => d.name === 'fashion-mnist')?.available).toBe(true);
  });

  it('help lists every zoo model and dataset from their registries', async () => {
    const help = await runTamp(['train', '--help']);
    expect(help.code).toBe(0);
    const model = /--model <name\|model\.json> +zoo model \((.+)\) or a model\.json to start from/.exec(help.stdout);
    // Every zoo name and name pattern (mobilenet-v2-<alpha>-<size>).
    expect(model?.[1]).toBe(zooNames().join(', '));
    expect(help.stdout).toContain('shapes-detector');
    expect(help.stdout).toMatch(/--dataset <name\|folder> +mnist, fashion-mnist, shapes, or an IDX folder \(shapes:<seed> for another set of scenes\)/);
    const datasets = await runTamp(['datasets']);
    expect(datasets.stdout).toMatch(/^shapes +detection +yes +unlimited\/200\/200 /m);
  });

  it('a newcomer\'s mistakes get one typed line that says what to do', async () => {
    const out = join(dir, 'mistakes');
    const zoo = zooNames().join(', ');
    const unknown = await runTamp(['train', '--model', 'resnet-9000', '--dataset', 'mnist', '--out', out, '--json']);
    expect(unknown.code).toBe(1);
    expect(jsonOf(unknown)).toEqual({
      error: { code: 'MODEL_UNKNOWN', message: `"resnet-9000" is not a zoo model (the zoo has ${zoo}) and no file of that name exists; --model also takes the path of a tfjs model.json` },
    });
    expect(oneLineError(unknown.stderr)).toMatch(/^tamp: "resnet-9000" is not a zoo model/);
    // A run folder instead of its model.json: named, with the file it holds.
    const run = join(dir, 'a-run', 'model');
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, 'model.json'), '{}');
    const folder = await runTamp(['train', '--local', '--model', join(dir, 'a-run', 'model'), '--dataset', 'mnist', '--out', out, '--dry-run', '--json']);
    expect(folder.code).toBe(1);
    expect(jsonOf<{ error: { code: string; message: string } }>(folder).error).toEqual({
      code: 'FILE_ACCESS',
      message: `${run}: is a folder; expected a tfjs model.json or a zoo name (${zoo}) (did you mean ${join(run, 'model.json')}?)`,
    });
    expect(folder.stderr).not.toMatch(/EISDIR/);
    // --out naming a file fails before any work.
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    const badOut = await runTamp(['train', '--model', 'mlp-tiny', '--dataset', 'mnist', '--out', file, '--dry-run', '--json']);
    expect(jsonOf<{ error: { code: string } }>(badOut).error.code).toBe('FILE_ACCESS');
    expect(oneLineError(badOut.stderr)).toBe(`tamp: ${file}: is a file; expected --out: a folder this user can write to (created if missing)`);
    // A .tamp given to compress: what to pass instead, and no raw bytes on the terminal.
    const tamp = join(REPO, 'packages/compress/test-fixtures/format-1.0.tamp');
    const compressed = await runTamp(['compress', tamp, '--out', out, '--backend', 'cpu', '--json']);
    expect(compressed.code).toBe(1);
    expect(jsonOf<{ error: { code: string } }>(compressed).error.code).toBe('MODEL_INVALID');
    expect(oneLineError(compressed.stderr)).toBe(
      `tamp: ${tamp} is a .tamp file (already compressed), not a tfjs model.json: pass the model.json it came from (tamp train writes OUT/model/model.json); tamp eval and tamp infer run a .tamp as it is`,
    );
    expect(compressed.stderr.split('\n').filter((line) => /\p{Cc}/u.test(line))).toEqual([]);
    expect(existsSync(out), 'nothing written').toBe(false);
  });

  it('--dry-run checks a job as the command would and starts nothing', async () => {
    const out = join(dir, 'dry');
    const local = await runTamp(['train', '--local', '--ps', '2', '--workers', '3', '--model', 'lenet-5', '--dataset', 'mnist', '--mode', 'sync', '--out', out, '--dry-run', '--json']);
    expect(local.code, local.stderr).toBe(0);
    expect(jsonOf(local)).toMatchObject({ dryRun: true, command: 'train', local: true, ps: 2, workers: 3, model: 'lenet-5', mode: 'sync' });
    expect(existsSync(out), 'nothing written').toBe(false);
    const chief = await runTamp(['chief', '--ps', 'ps-0:2222,ps-1:2222', '--workers', '2', '--model', 'mlp-tiny', '--dataset', 'mnist', '--out', out, '--dry-run']);
    expect(chief.code, chief.stderr).toBe(0);
    expect(chief.stdout).toMatch(/tamp chief: arguments check out \(dry run, nothing started\): role chief, port 2223, ps ps-0:2222,ps-1:2222, workers 2/);
    const tfConfig = JSON.stringify({ cluster: { chief: ['c:2223'], ps: ['p:2222'], worker: ['w:1'] }, task: { type: 'ps', index: 0 } });
    const ps = await runTamp(['train', '--model', 'mlp-tiny', '--dataset', 'mnist', '--out', out, '--dry-run', '--json'], { env: { TF_CONFIG: tfConfig } });
    expect(jsonOf(ps)).toMatchObject({ dryRun: true, command: 'ps', index: 0, port: 2222 });
    const bad = await runTamp(['worker', '--dry-run']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/the worker needs --chief host:port/);
    const unsupported = await runTamp(['compress', 'm.json', '--dry-run']);
    expect(unsupported.code).toBe(2);
    expect(unsupported.stderr).toMatch(/unknown option --dry-run for tamp compress/);
  });

  describe('train and eval', () => {
    const out = join(dir, 'run');
    let report: Record<string, unknown>;

    beforeAll(async () => {
      const r = await runTamp(['train', '--model', 'lenet-300-100', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1024', '--backend', 'wasm', '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      report = jsonOf(r);
    });

    it('writes report.json with the promised fields', () => {
      expect(report).toMatchObject({ model: 'lenet-300-100', dataset: 'mnist', backend: 'wasm', workers: 1, steps: 16 });
      expect(report.testAccuracy).toBeGreaterThan(0.6);
      expect(report.testAccuracy).toBeLessThanOrEqual(1);
      expect(report.samplesPerSecond).toBeGreaterThan(0);
    });

    it('writes a model that stock tfjs loads over http with the same accuracy', async () => {
      const server = await serveFolder(join(out, 'model'));
      try {
        await tf.setBackend('cpu');
        const model = await tfl.loadLayersModel(`${server.url}/model.json`);
        const evaluation = await evaluateClassifier(model, loadMnist().test);
        expect(Math.abs(evaluation.accuracy - (report.testAccuracy as number))).toBeLessThanOrEqual(0.001);
      } finally {
        await server.close();
      }
    });

    it('evaluates the saved model with tamp eval', async () => {
      const r = await runTamp(['eval', join(out, 'model', 'model.json'), '--dataset', 'mnist', '--limit', '500', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const result = jsonOf<{ accuracy: number; count: number; split: string }>(r);
      expect(result.count).toBe(500);
      expect(result.split).toBe('test');
      expect(result.accuracy).toBeGreaterThan(0.6);
    });

    it('trains LeNet-5 on the WASM backend in one process (Tamp supplies the missing kernels)', async () => {
      const r = await runTamp(['train', '--model', 'lenet-5', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '512', '--backend', 'wasm', '--out', join(dir, 'lenet5'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const report = jsonOf<{ backend: string; steps: number; testAccuracy: number }>(r);
      expect(report.backend).toBe('wasm');
      expect(report.steps).toBe(8);
      // Eight steps from scratch already beat chance (10%) by far.
      expect(report.testAccuracy).toBeGreaterThan(0.3);
    });

    it('refuses a corrupt model file with a one-line typed error', async () => {
      const bad = join(dir, 'bad', 'model.json');
      rmSync(join(dir, 'bad'), { recursive: true, force: true });
      mkdirSync(join(dir, 'bad'));
      writeFileSync(bad, '{"modelTopology": {"class_name"');
      const r = await runTamp(['eval', bad, '--dataset', 'mnist', '--json']);
      expect(r.code).toBe(1);
      expect(oneLineError(r.stderr)).toMatch(/not valid JSON/);
      expect(jsonOf<{ error: { code: string } }>(r).error.code).toBe('MODEL_INVALID');
      const verbose = await runTamp(['eval', bad, '--dataset', 'mnist', '--verbose']);
      expect(verbose.stderr).toMatch(/^\s+at /m);
    });
  });
});
