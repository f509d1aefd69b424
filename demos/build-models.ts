/**
 * pnpm demo:models: make the demos' models with Tamp's own pipeline, and
 * record what was made in demos/models.json (file hashes, sizes, the commands,
 * the scores), which test/demos-manifest.test.ts checks against the files.
 *
 *  - digits: LeNet-5 trained on MNIST (one process, WASM), then compressed
 *    like bench:compress (pruned 92% while fine-tuning, 32 shared values
 *    per layer, int8, Huffman). The demo offers both: fp32 model.json and
 *    the compressed model.tamp.
 *  - objects: the MobileNet-backbone shapes detector
 *    (shapes-mobilenet-detector, which beats shapes-detector on mAP at no
 *    worse latency: BENCHMARKS.md) trained as in bench:detect, then int8.
 *    `--detector DIR` takes an already trained detector (a model.json
 *    folder, such as the one `pnpm bench:detect --model
 *    shapes-mobilenet-detector --save DIR` writes) instead of training one
 *    for over an hour; the manifest records which.
 *
 *   pnpm demo:models [--only digits|objects] [--detector DIR]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const TAMP_BIN = join(REPO, 'packages/cli/bin/tamp.mjs');
const MANIFEST = join(REPO, 'demos/models.json');

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}
const only = arg('--only');
const detectorDir = arg('--detector');
/** The objects demo's detector: the zoo model and bench:detect's recipe. */
const DETECTOR = 'shapes-mobilenet-detector';
const DETECTOR_TRAIN = ['--model', DETECTOR, '--dataset', 'shapes', '--epochs', '20', '--epoch-size', '5000', '--batch-size', '32', '--lr', '0.003', '--backend', 'wasm', '--seed', '1'];
if (only !== undefined && only !== 'digits' && only !== 'objects') throw new Error(`--only ${only}: choose digits or objects`);

function tamp(args: string[]): Record<string, unknown> {
  process.stderr.write(`$ tamp ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [TAMP_BIN, ...args, '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`tamp ${args.join(' ')} failed with exit ${r.status}`);
  return JSON.parse(r.stdout.trim()) as Record<string, unknown>;
}

export interface ManifestFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
}
export interface ManifestModel {
  readonly demo: 'digits' | 'objects';
  readonly name: string;
  readonly files: ManifestFile[];
  readonly commands: string[];
  readonly scores: Record<string, number>;
}
export interface Manifest {
  readonly generator: string;
  readonly created: string;
  readonly models: ManifestModel[];
}

function fileEntry(path: string): ManifestFile {
  return { path: relative(REPO, path), bytes: statSync(path).size, sha256: createHash('sha256').update(readFileSync(path)).digest('hex') };
}

const work = mkdtempSync(join(tmpdir(), 'tamp-demo-models-'));
const previous: Manifest | undefined = existsSync(MANIFEST) ? (JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest) : undefined;
const models: ManifestModel[] = previous?.models.filter((m) => only !== undefined && m.demo !== only) ?? [];
try {
  if (only === undefined || only === 'digits') {
    const out = join(REPO, 'demos/digits/public/models');
    const train = ['train', '--model', 'lenet-5', '--dataset', 'mnist', '--epochs', '8', '--backend', 'wasm', '--seed', '1', '--out', join(work, 'digits')];
    const trained = tamp(train);
    const compress = ['compress', join(work, 'digits/model/model.json'), '--prune', '0.92', '--clusters', '32', '--int8', '--finetune-epochs', '8', '--dataset', 'mnist', '--seed', '1', '--out', join(work, 'digits-c')];
    const compressed = tamp(compress);
    rmSync(out, { recursive: true, force: true });
    cpSync(join(work, 'digits/model'), join(out, 'fp32'), { recursive: true });
    cpSync(join(work, 'digits-c/model.tamp'), join(out, 'compressed.tamp'));
    models.push({
      demo: 'digits',
      name: 'lenet-5 on mnist: fp32 and compressed (pruned 92%, 32 shared values, int8, Huffman)',
      files: [fileEntry(join(out, 'fp32/model.json')), fileEntry(join(out, 'fp32/weights.bin')), fileEntry(join(out, 'compressed.tamp'))],
      commands: [`tamp ${train.join(' ')}`, `tamp ${compress.join(' ')}`].map((c) => c.replaceAll(work, 'WORK')),
      scores: { testAccuracy: trained.testAccuracy as number, accuracyAfter: compressed.accuracyAfter as number, ratio: compressed.ratio as number },
    });
  }
  if (only === undefined || only === 'objects') {
    const out = join(REPO, 'demos/objects/public/models');
    const commands: string[] = [];
    let modelJson: string;
    if (detectorDir !== undefined) {
      modelJson = join(resolve(detectorDir), 'model.json');
      if (!existsSync(modelJson)) throw new Error(`--detector ${detectorDir}: no model.json there`);
      const name = (JSON.parse(readFileSync(modelJson, 'utf8')) as { modelTopology?: { config?: { name?: string } } }).modelTopology?.config?.name;
      if (name !== DETECTOR) throw new Error(`--detector ${detectorDir}: the objects demo runs ${DETECTOR}, and this model.json holds ${name ?? 'a model without a name'}`);
      commands.push(`trained detector taken from ${relative(REPO, resolve(detectorDir))} (made by: pnpm bench:detect --model ${DETECTOR} --save ${relative(REPO, resolve(detectorDir))}, i.e. tamp train ${DETECTOR_TRAIN.join(' ')})`);
    } else {
      const train = ['train', ...DETECTOR_TRAIN, '--out', join(work, 'detector')];
      tamp(train);
      commands.push(`tamp ${train.join(' ')}`.replaceAll(work, 'WORK'));
      modelJson = join(work, 'detector/model/model.json');
    }
    const compress = ['compress', modelJson, '--int8', '--out', join(work, 'detector-c')];
    const compressed = tamp(compress);
    commands.push(`tamp ${compress.join(' ')}`.replaceAll(work, 'WORK').replaceAll(REPO, ''));
    rmSync(out, { recursive: true, force: true });
    cpSync(join(work, 'detector-c/model.tamp'), join(out, 'detector.tamp'));
    models.push({
      demo: 'objects',
      name: `${DETECTOR}, int8`,
      files: [fileEntry(join(out, 'detector.tamp'))],
      commands,
      scores: { mAPBefore: compressed.mAPBefore as number, mAPAfter: compressed.mAPAfter as number, ratio: compressed.ratio as number },
    });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
models.sort((a, b) => a.demo.localeCompare(b.demo));
const manifest: Manifest = { generator: `pnpm demo:models${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(' ')}` : ''}`, created: new Date().toISOString(), models };
writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
process.stderr.write(`wrote ${relative(REPO, MANIFEST)}\n`);
