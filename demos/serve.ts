/** pnpm demo: both demos on Vite's dev server (http://localhost:5173 digits, :5174 objects). */
import { join } from 'node:path';
import { createServer } from 'vite';
import { DEMOS_DIR, DEMO_NAMES } from './site.js';

for (const [i, demo] of DEMO_NAMES.entries()) {
  const root = join(DEMOS_DIR, demo);
  const server = await createServer({ root, configFile: join(root, 'vite.config.ts'), server: { port: 5173 + i, host: process.argv.includes('--host') ? '0.0.0.0' : 'localhost' } });
  await server.listen();
  process.stdout.write(`${demo.padEnd(8)} ${server.resolvedUrls?.local[0] ?? '?'}   (?device=webgpu|wasm|cpu forces a device)\n`);
}
process.stdout.write('Ctrl-C stops both. WebGPU needs a browser with it enabled (Chrome/Edge 113+; Chromium on Linux: --enable-unsafe-webgpu).\n');
