/**
 * The demos end to end, in real headless Chromium (Debian's, through
 * playwright-core), built for production with `vite build` exactly as
 * `pnpm demo:build` does and served on loopback:
 *  - the model manifest (demos/models.json) matches the committed files;
 *  - each demo's JS (gzipped) and models fit their budgets (demos/budgets.ts);
 *  - digits: ten MNIST test digits, drawn on the pad with pointer events
 *    (one stroke per run of ink in each row, at 10x), are all read right, on
 *    WebGPU (forced) with the compressed and the fp32 model; one more is
 *    drawn with touch input (touch pointers through Chrome DevTools Protocol);
 *  - objects: 50 freshly generated scenes rendered in the page: mAP@0.5 of
 *    the boxes it finds against their ground truth is at least 0.8; an
 *    uploaded PNG scene (twice the model's size) has its shapes found;
 *  - with WebGPU turned off, both pages say so and still predict on WASM.
 * Screenshots go to test-artifacts/.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Detection, gatherBatch, meanAveragePrecision, renderScene, rgbToRgba, sceneSeed } from '@tamp/core';
import { encodePng, loadMnist } from '@tamp/core/node';
import { BUDGETS } from '../demos/budgets.js';
import type { Manifest } from '../demos/build-models.js';
import { type DemoSize, DEMO_NAMES, buildDemo, sizeTable } from '../demos/site.js';
import { ARTIFACTS, launchChromium, pageErrors } from './helpers/browser.js';
import { REPO, serveFolder } from './helpers/tamp.js';

const work = mkdtempSync(join(tmpdir(), 'tamp-demos-'));
const servers: Record<string, { url: string; close: () => Promise<void> }> = {};
const sizes: DemoSize[] = [];
let browser: Browser | undefined;

beforeAll(async () => {
  for (const demo of DEMO_NAMES) {
    const out = join(work, demo);
    sizes.push(await buildDemo(demo, out));
    servers[demo] = await serveFolder(out);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  for (const s of Object.values(servers)) await s.close();
  rmSync(work, { recursive: true, force: true });
});

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
}

describe('demo models and budgets', () => {
  it('demos/models.json lists every committed demo model with its hash, size and the commands that made it', () => {
    const manifest = JSON.parse(readFileSync(join(REPO, 'demos/models.json'), 'utf8')) as Manifest;
    expect(manifest.generator).toMatch(/^pnpm demo:models/);
    const listed = manifest.models.flatMap((m) => m.files);
    for (const f of listed) {
      const path = join(REPO, f.path);
      expect(existsSync(path), `${f.path} is in the manifest but missing: run pnpm demo:models`).toBe(true);
      const bytes = readFileSync(path);
      expect(bytes.length, f.path).toBe(f.bytes);
      expect(createHash('sha256').update(bytes).digest('hex'), `${f.path} changed since pnpm demo:models wrote the manifest`).toBe(f.sha256);
    }
    const committed = DEMO_NAMES.flatMap((d) => files(join(REPO, 'demos', d, 'public', 'models')).map((p) => relative(REPO, p)));
    expect(committed.sort()).toEqual(listed.map((f) => f.path).sort());
    for (const m of manifest.models) expect(m.commands.length, m.name).toBeGreaterThan(0);
    const digits = manifest.models.find((m) => m.demo === 'digits');
    const objects = manifest.models.find((m) => m.demo === 'objects');
    expect(digits?.commands.some((c) => /^tamp compress .*--prune .*--clusters .*--int8/.test(c))).toBe(true);
    expect(digits?.scores.ratio).toBeGreaterThan(35);
    expect(digits?.scores.accuracyAfter).toBeGreaterThan(0.97);
    expect(objects?.scores.mAPAfter).toBeGreaterThanOrEqual(0.8);
  });

  it('each demo’s JavaScript (gzipped) and models are within budget', () => {
    process.stderr.write(`${sizeTable(sizes)}\n`);
    for (const s of sizes) {
      expect(s.overBudget, `${s.demo} (demos/budgets.ts)`).toEqual([]);
      expect(Object.keys(s.models).sort()).toEqual(Object.keys(BUDGETS[s.demo].models).sort());
    }
  });
});

/** Ten MNIST test digits, 0 to 9: the first of each class. */
function tenDigits(): Array<{ label: number; pixels: Float32Array }> {
  const mnist = loadMnist();
  const out: Array<{ label: number; pixels: Float32Array }> = [];
  for (let d = 0; d < 10; d++) {
    const index = mnist.test.labels.findIndex((l) => l === d);
    out.push({ label: d, pixels: gatherBatch(mnist.test, Uint32Array.of(index)).xs });
  }
  return out;
}

/** The strokes that redraw a 28x28 digit: one per run of ink (> 0.35) in each row, as [first column, last column, row]. */
function strokes(pixels: Float32Array): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let y = 0; y < 28; y++) {
    let x = 0;
    while (x < 28) {
      if ((pixels[y * 28 + x] as number) <= 0.35) {
        x++;
        continue;
      }
      const start = x;
      while (x < 28 && (pixels[y * 28 + x] as number) > 0.35) x++;
      out.push([start, x - 1, y]);
    }
  }
  return out;
}

async function padBox(page: Page): Promise<{ x: number; y: number; s: number }> {
  const box = await page.locator('#pad').boundingBox();
  if (box === null) throw new Error('the drawing pad is not visible');
  return { x: box.x, y: box.y, s: box.width / 28 };
}

/** Draw a digit on the pad with the mouse, at 10x. */
async function drawDigit(page: Page, pixels: Float32Array): Promise<void> {
  const { x: bx, y: by, s } = await padBox(page);
  for (const [first, last, y] of strokes(pixels)) {
    await page.mouse.move(bx + (first + 0.5) * s, by + (y + 0.5) * s);
    await page.mouse.down();
    await page.mouse.move(bx + (last + 0.5) * s, by + (y + 0.5) * s, { steps: 2 });
    await page.mouse.up();
  }
}

/** The same strokes as touch input (Chromium turns touches into pointer events of type touch). */
async function drawDigitByTouch(page: Page, pixels: Float32Array): Promise<void> {
  const { x: bx, y: by, s } = await padBox(page);
  const cdp = await page.context().newCDPSession(page);
  const touch = (type: 'touchStart' | 'touchMove' | 'touchEnd', x: number, y: number) =>
    cdp.send('Input.dispatchTouchEvent', { type, touchPoints: type === 'touchEnd' ? [] : [{ x: bx + x * s, y: by + y * s }] });
  for (const [first, last, y] of strokes(pixels)) {
    await touch('touchStart', first + 0.5, y + 0.5);
    await touch('touchMove', (first + last + 1) / 2, y + 0.5);
    await touch('touchMove', last + 0.5, y + 0.5);
    await touch('touchEnd', last + 0.5, y + 0.5);
  }
  await cdp.detach();
}

async function readDigits(page: Page, digits: ReturnType<typeof tenDigits>, shot: string): Promise<number[]> {
  const read: number[] = [];
  for (const { pixels } of digits) {
    await page.click('#clear');
    await drawDigit(page, pixels);
    await page.waitForFunction(() => window.digits.settled());
    read.push(await page.evaluate(() => window.digits.top[0]?.digit ?? -1));
    if (read.length === 3) await page.screenshot({ path: join(ARTIFACTS, shot) });
  }
  return read;
}

describe('demos in headless Chromium', () => {
  it('digits: ten drawn digits are read right on WebGPU (forced), with the compressed and the fp32 model', async () => {
    browser = await launchChromium({ webgpu: true });
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await page.goto(`${servers.digits?.url}/index.html?device=webgpu`);
    await page.waitForFunction(() => window.digits?.ready === true);
    expect(await page.textContent('#device')).toMatch(/^WebGPU \(.*\)/);
    expect(await page.evaluate(() => window.digits.deviceName)).toBe('webgpu');
    expect(await page.isHidden('#fallback')).toBe(true);
    const digits = tenDigits();
    const labels = digits.map((d) => d.label);
    expect(await readDigits(page, digits, 'demo-digits-webgpu-compressed.png'), 'compressed model').toEqual(labels);
    expect(await page.textContent('#size')).toMatch(/KiB; .* of weights on the GPU/);
    await page.selectOption('#model', 'fp32');
    await page.waitForFunction(() => window.digits.ready && window.digits.kind === 'fp32');
    expect(await page.textContent('#model-name')).toMatch(/fp32/);
    expect(await page.textContent('#size')).toMatch(/MiB/);
    expect(await readDigits(page, digits, 'demo-digits-webgpu-fp32.png'), 'fp32 model').toEqual(labels);
    expect(await page.textContent('#latency')).toMatch(/[\d.]+ ms/);
    expect(errors, errors.join('\n')).toEqual([]);
    await page.close();
  });

  it('digits: a digit drawn with touch input is read right too', async () => {
    const context = await (browser as Browser).newContext({ hasTouch: true });
    const page = await context.newPage();
    await page.goto(`${servers.digits?.url}/index.html?device=webgpu`);
    await page.waitForFunction(() => window.digits?.ready === true);
    let touches = 0;
    await page.exposeFunction('countTouch', () => touches++);
    await page.evaluate(() => document.getElementById('pad')?.addEventListener('pointerdown', (e) => e.pointerType === 'touch' && (window as unknown as { countTouch: () => void }).countTouch()));
    const three = tenDigits()[3] as { label: number; pixels: Float32Array };
    await drawDigitByTouch(page, three.pixels);
    await page.waitForFunction(() => window.digits.settled());
    expect(touches, 'strokes arrived as touch pointers').toBeGreaterThan(5);
    expect(await page.evaluate(() => window.digits.top[0]?.digit)).toBe(3);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-digits-touch.png') });
    await context.close();
  });

  it('objects: on 50 fresh scenes rendered in the page, mAP@0.5 of the boxes is at least 0.8 (WebGPU, forced)', async () => {
    const page = await (browser as Browser).newPage();
    const errors = pageErrors(page);
    await page.goto(`${servers.objects?.url}/index.html?device=webgpu`);
    await page.waitForFunction(() => window.objects?.ready === true && window.objects.runs > 0);
    expect(await page.textContent('#device')).toMatch(/^WebGPU \(.*\)/);
    const seeds = Array.from({ length: 50 }, (_, i) => sceneSeed(90_210, 'demo-test', i));
    const found: Detection[][] = [];
    for (const seed of seeds) found.push(await page.evaluate((s) => window.objects.showScene(s), seed));
    await page.screenshot({ path: join(ARTIFACTS, 'demo-objects-webgpu.png') });
    const truth = seeds.map((s) => renderScene(s).objects);
    const { mAP } = meanAveragePrecision(found, truth, 3);
    process.stderr.write(`objects demo: mAP@0.5 ${mAP.toFixed(3)} on 50 fresh scenes (${truth.flat().length} objects)\n`);
    expect(mAP).toBeGreaterThanOrEqual(0.8);
    expect(await page.textContent('#found')).not.toBe('–');
    // An uploaded image (a PNG scene at twice the model's size, so the page scales it down): its shapes are found.
    const scene = renderScene(sceneSeed(90_210, 'demo-upload', 0), { size: 192 });
    const rgba = new Uint8Array(rgbToRgba(scene.pixels).buffer);
    const runs = await page.evaluate(() => window.objects.runs);
    await page.setInputFiles('#upload', { name: 'scene.png', mimeType: 'image/png', buffer: Buffer.from(encodePng({ width: 192, height: 192, rgba })) });
    await page.waitForFunction((n) => window.objects.runs > n, runs);
    const uploaded = await page.evaluate(() => window.objects.detections);
    expect(meanAveragePrecision([uploaded], [scene.objects], 3).mAP, `uploaded scene: ${JSON.stringify(scene.objects)} vs ${JSON.stringify(uploaded.slice(0, 4))}`).toBeGreaterThanOrEqual(0.5);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-objects-upload.png') });
    expect(errors, errors.join('\n')).toEqual([]);
    await page.close();
  });

  it('with WebGPU unavailable both pages show the fallback and its reason, and still predict on WASM', async () => {
    await browser?.close();
    browser = await launchChromium({ webgpu: false });
    const page = await browser.newPage();
    await page.goto(`${servers.digits?.url}/index.html`);
    await page.waitForFunction(() => window.digits?.ready === true);
    expect(await page.textContent('#device')).toBe('WASM');
    expect(await page.isVisible('#fallback')).toBe(true);
    expect(await page.textContent('#fallback')).toMatch(/Running on WASM: WebGPU skipped: .*(navigator\.gpu|adapter)/);
    const [seven] = tenDigits().filter((d) => d.label === 7);
    await drawDigit(page, (seven as { pixels: Float32Array }).pixels);
    await page.waitForFunction(() => window.digits.settled());
    expect(await page.evaluate(() => window.digits.top[0]?.digit)).toBe(7);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-digits-wasm-fallback.png') });

    await page.goto(`${servers.objects?.url}/index.html`);
    await page.waitForFunction(() => window.objects?.ready === true && window.objects.runs > 0);
    expect(await page.textContent('#device')).toBe('WASM');
    expect(await page.textContent('#fallback')).toMatch(/WebGPU skipped/);
    const seed = sceneSeed(90_210, 'demo-test', 0);
    const boxes = await page.evaluate((s) => window.objects.showScene(s), seed);
    expect(meanAveragePrecision([boxes], [renderScene(seed).objects], 3).mAP).toBeGreaterThan(0.5);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-objects-wasm-fallback.png') });
    await page.close();
  });
});
