import { defineConfig } from 'vitest/config';

// Suites that need a PostgreSQL server. Kept out of `npm test` (whose include is test/**/*.test.ts) so
// that the default suite needs nothing but Node; `npm run test:postgres` runs these against a
// throwaway server.
export default defineConfig({
  test: {
    include: ['test/**/*.pgtest.ts'],
    environment: 'node',
    globalSetup: ['test/pg-tools/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
