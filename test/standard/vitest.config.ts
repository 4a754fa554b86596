import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:standard` (scripts/standard/run.sh): the project's contract against the published
// ARP standard, whose spec/v1 directory the script passes in ARP_STANDARD_SPEC_V1.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/standard/**/*.test.ts'],
    environment: 'node',
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 20_000,
  },
});
