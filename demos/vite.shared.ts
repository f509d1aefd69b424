import { type UserConfig, defineConfig } from 'vite';

/** The demos' Vite settings: relative asset URLs (dist/ works from any folder or sub-path), the dev server's port. */
export function demoConfig(port: number): UserConfig {
  return defineConfig({
    base: './',
    build: {
      target: 'es2022',
      chunkSizeWarningLimit: 4096,
      rollupOptions: {
        onwarn(warning, warn) {
          // tfjs-backend-wasm is imported statically by the page (for its .wasm URLs) and
          // dynamically by @tamp/core's backend selection; one chunk is what we want.
          if (warning.code === 'INEFFECTIVE_DYNAMIC_IMPORT') return;
          warn(warning);
        },
      },
    },
    server: { port, strictPort: false },
  });
}
