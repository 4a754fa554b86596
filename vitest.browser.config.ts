import { defineConfig } from 'vitest/config';

/**
 * The browser suites (`npm run test:browser`): a real Chromium (test/helpers/browser.ts) against the
 * built service (`npm run build` first: they load the UI from dist/). Kept out of `npm test`, which
 * needs nothing but Node.
 */
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    environment: 'node',
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // One browser at a time on a small machine.
    fileParallelism: false,
  },
});
