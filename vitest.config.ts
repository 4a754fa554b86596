import { configDefaults, defineConfig } from 'vitest/config';

// `npm test`: every suite that needs nothing but Node. test/standard needs the published ARP
// standard and runs with its own config (`npm run test:standard`); test/browser needs Chromium and
// the built service (`npm run test:browser`).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/standard/**', 'test/browser/**'],
    environment: 'node',
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
