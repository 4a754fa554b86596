import { defineConfig } from 'vite';

/**
 * Builds the Run inspector (ui/) into dist/ui, which src/plugins/ui.ts serves at /ui/. Run from the
 * project root as `vite build ui` (`npm run build`). Everything is bundled: the page fetches nothing
 * but its own files and the coordinator's API.
 */
export default defineConfig({
  base: '/ui/',
  build: {
    outDir: '../dist/ui',
    emptyOutDir: true,
    target: 'es2022',
    // No inline scripts or data: URLs, so the CSP can stay 'self' only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: true,
  },
});
