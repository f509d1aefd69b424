import { defineConfig } from 'vite';

// Relative asset URLs, so dist/ works from any folder or sub-path.
export default defineConfig({
  base: './',
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
  server: { port: 5173, strictPort: false },
});
