/**
 * Real Chromium for browser tests: Debian's `chromium` driven by
 * playwright-core (its own browser downloads cannot work here), headless,
 * with WebGPU unlocked (`--enable-unsafe-webgpu`; SwiftShader when there is
 * no GPU). Pages are built with Vite, like the demos, and served on loopback.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { build } from 'vite';
import { REPO } from './tamp.js';

export const CHROMIUM = process.env.TAMP_CHROMIUM ?? '/usr/bin/chromium';

/** Flags for a quiet, isolated headless Chromium (playwright gives each launch a fresh temporary profile). */
export const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchChromium(options: { webgpu: boolean }): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`browser tests need Chromium at ${CHROMIUM}: install Debian's package (apt-get install chromium) or set TAMP_CHROMIUM to a Chromium binary`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...(options.webgpu ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan'] : ['--disable-features=WebGPU', '--disable-webgpu'])],
  });
}

/** Build a Vite app (a folder with index.html) into outDir. */
export async function buildPage(root: string, outDir: string): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  await build({ root, logLevel: 'warn', configFile: false, build: { outDir, emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 }, server: { fs: { allow: [REPO] } } });
}

/** Collect the page's console errors and uncaught exceptions, for failure messages. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    // A failed request is reported below with its URL.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  return errors;
}

export const ARTIFACTS = join(REPO, 'test-artifacts');
