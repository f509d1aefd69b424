// Entry of `tamp serve`'s inference thread: the TypeScript sources through tsx
// in a checkout, the compiled JavaScript in the container images.
import { existsSync } from 'node:fs';

const source = new URL('./thread.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('./thread.js', import.meta.url).href);
}
