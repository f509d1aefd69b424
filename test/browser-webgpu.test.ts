/**
 * @tamp/webgpu's browser entry in real headless Chromium (Debian's, through
 * playwright-core): models loaded by URL from a loopback server, predictions
 * on WebGPU (SwiftShader here) from ImageData, an ImageBitmap and a canvas,
 * equal to the same model run in Node; with WebGPU turned off, auto falls
 * back to WASM and says why. Screenshots go to test-artifacts/.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Detection, detectionsDiffer, iou, renderScene, sceneSeed } from '@tamp/core';
import { detect, loadModel } from '@tamp/webgpu/node';
import { ARTIFACTS, buildPage, launchChromium, pageErrors } from './helpers/browser.js';
import { runTamp, serveFolder } from './helpers/tamp.js';

const fixture = fileURLToPath(new URL('./fixtures/shapes-detector', import.meta.url));
const SEED = sceneSeed(2026, 'test', 3);

interface PageResult {
  device: string;
  adapter: string;
  software: boolean;
  format: string;
  gpuWeightBytes: number;
  float32WeightBytes: number;
  log: string[];
  fromImageData: Detection[];
  fromBitmap: Detection[];
  fromCanvas: Detection[];
}

/** Runs in the page: load `url` on `device`, predict one scene three ways. */
async function inPage(args: { url: string; device: string; seed: number }): Promise<PageResult> {
  const t = window.tamp;
  const log: string[] = [];
  const model = await t.loadModel(args.url, { device: args.device as 'auto', log: (m: string) => log.push(m) });
  const scene = t.renderScene(args.seed);
  const image = new ImageData(t.rgbToRgba(scene.pixels), 96, 96);
  const bitmap = await createImageBitmap(image);
  // The canvas shows the scene at twice its size: predict must scale it back down.
  const canvas = document.getElementById('scene') as HTMLCanvasElement;
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap, 0, 0, 192, 192);
  const decode = async (input: Parameters<typeof model.predict>[0]) => (await t.detect(model, input, { scoreThreshold: 0.3 }))[0] ?? [];
  const result = { ...model.info(), log, fromImageData: await decode(image), fromBitmap: await decode(bitmap), fromCanvas: await decode(canvas) };
  for (const d of result.fromCanvas) {
    ctx.strokeStyle = 'yellow';
    ctx.strokeRect(d.x1 * 192, d.y1 * 192, (d.x2 - d.x1) * 192, (d.y2 - d.y1) * 192);
  }
  model.dispose();
  return { device: result.device, adapter: result.adapter, software: result.software, format: result.format, gpuWeightBytes: result.gpuWeightBytes, float32WeightBytes: result.float32WeightBytes, log, fromImageData: result.fromImageData, fromBitmap: result.fromBitmap, fromCanvas: result.fromCanvas };
}


describe('@tamp/webgpu in headless Chromium', () => {
  let work: string;
  let server: { url: string; close: () => Promise<void> };
  let browser: Browser | undefined;
  let nodeBoxes: Record<'tamp' | 'json', Detection[]>;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tamp-browser-'));
    const dist = join(work, 'dist');
    await buildPage(fileURLToPath(new URL('./browser/webgpu', import.meta.url)), dist);
    cpSync(fixture, join(dist, 'models', 'fp32'), { recursive: true });
    const r = await runTamp(['compress', join(fixture, 'model.json'), '--int8', '--out', join(work, 'int8'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    cpSync(join(work, 'int8', 'model.tamp'), join(dist, 'models', 'detector.tamp'));
    server = await serveFolder(dist);
    mkdirSync(ARTIFACTS, { recursive: true });
    // The same models and scene in Node (cpu device): what the browser must reproduce.
    const scene = renderScene(SEED);
    const x = Float32Array.from(scene.pixels, (v) => v / 255);
    nodeBoxes = { tamp: [], json: [] };
    for (const [key, file] of [['tamp', join(work, 'int8', 'model.tamp')], ['json', join(fixture, 'model.json')]] as const) {
      const m = await loadModel(file, { device: 'cpu' });
      nodeBoxes[key] = (await detect(m, x, { scoreThreshold: 0.3 }))[0] ?? [];
      m.dispose();
    }
    // The scene's shapes are found at all (else equality below would prove little).
    const truth = scene.objects;
    expect(nodeBoxes.tamp.length).toBeGreaterThanOrEqual(1);
    expect(truth.every((g) => nodeBoxes.tamp.some((d) => d.label === g.label && iou(d, g) >= 0.5))).toBe(true);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('loads the int8 .tamp and the fp32 model.json by URL and predicts on WebGPU from ImageData, ImageBitmap and a canvas', async () => {
    browser = await launchChromium({ webgpu: true });
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => window.tamp?.ready === true);
    const int8 = await page.evaluate(inPage, { url: `${server.url}/models/detector.tamp`, device: 'webgpu', seed: SEED });
    await page.screenshot({ path: join(ARTIFACTS, 'browser-webgpu-detector.png') });
    expect(errors, errors.join('\n')).toEqual([]);
    expect(int8.device).toBe('webgpu');
    expect(int8.format).toBe('tamp');
    expect(int8.gpuWeightBytes / int8.float32WeightBytes).toBeLessThanOrEqual(0.3);
    expect(detectionsDiffer(int8.fromImageData, nodeBoxes.tamp), 'int8 .tamp from ImageData vs Node').toBeUndefined();
    expect(detectionsDiffer(int8.fromBitmap, nodeBoxes.tamp), 'int8 .tamp from an ImageBitmap vs Node').toBeUndefined();
    // Scaled 2x up by the canvas and back down by predict: the same shapes, boxes close.
    expect(int8.fromCanvas.map((d) => d.label).sort()).toEqual(nodeBoxes.tamp.map((d) => d.label).sort());
    for (const d of int8.fromCanvas) expect(Math.max(...nodeBoxes.tamp.map((e) => (e.label === d.label ? iou(d, e) : 0)))).toBeGreaterThan(0.8);

    const fp32 = await page.evaluate(inPage, { url: `${server.url}/models/fp32/model.json`, device: 'webgpu', seed: SEED });
    expect(fp32.device).toBe('webgpu');
    expect(fp32.format).toBe('tfjs');
    expect(detectionsDiffer(fp32.fromImageData, nodeBoxes.json), 'fp32 model.json from ImageData vs Node').toBeUndefined();
    // auto passes over SwiftShader (a software adapter) in the browser too, and says so.
    const auto = await page.evaluate(inPage, { url: `${server.url}/models/detector.tamp`, device: 'auto', seed: SEED });
    expect(auto.device).toBe('wasm');
    expect(auto.log.join('\n')).toMatch(/webgpu: skipped \(.*software/);
    expect(detectionsDiffer(auto.fromImageData, nodeBoxes.tamp), 'int8 .tamp on WASM in the browser vs Node').toBeUndefined();
    await page.close();
  });

  it('with WebGPU turned off, auto falls back to WASM and still predicts; a missing model is a typed error', async () => {
    await browser?.close();
    browser = await launchChromium({ webgpu: false });
    const page = await browser.newPage();
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => window.tamp?.ready === true);
    expect(await page.evaluate(() => 'gpu' in navigator && navigator.gpu !== undefined ? navigator.gpu.requestAdapter().then((a) => a !== null) : false)).toBe(false);
    const r = await page.evaluate(inPage, { url: `${server.url}/models/detector.tamp`, device: 'auto', seed: SEED });
    expect(r.device).toBe('wasm');
    expect(r.log.join('\n')).toMatch(/webgpu: skipped/);
    expect(detectionsDiffer(r.fromImageData, nodeBoxes.tamp), 'WASM fallback vs Node').toBeUndefined();
    const forced = await page.evaluate(async (url) => window.tamp.loadModel(url, { device: 'webgpu' }).then(() => 'loaded', (e: { code?: string; message: string }) => `${e.code}: ${e.message}`), `${server.url}/models/detector.tamp`);
    expect(forced).toMatch(/^BACKEND_UNAVAILABLE: .*webgpu/i);
    const missing = await page.evaluate(async (url) => window.tamp.loadModel(url).then(() => 'loaded', (e: { code?: string }) => e.code), `${server.url}/models/nope.tamp`);
    expect(missing).toBe('MODEL_NOT_FOUND');
    await page.close();
  });
});
