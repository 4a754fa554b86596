import { defineConfig } from 'vitest/config';

/**
 * The HTTP-level suites, with every app they build on the PostgreSQL store (RC_TEST_STORE, see
 * test/helpers/stores.ts), and the suites that need a PostgreSQL server. Kept out of `npm test`
 * (whose include is test/**\/*.test.ts and whose store is the memory store) so that the default suite
 * needs nothing but Node; `npm run test:postgres` runs this against a throwaway server, and
 * `npm run test:pglite` runs the same suites on PGlite.
 */
const storeSuites = [
  'test/http/**/*.test.ts',
  'test/dispatch/**/*.test.ts',
  'test/auth/**/*.test.ts',
  'test/clients/**/*.test.ts',
  'test/tracing/propagation.test.ts',
  'test/health/**/*.test.ts',
  // The explorer's examples, executed in order against a fresh app.
  'test/contract/examples.test.ts',
  // The real process, spawned with the run's environment: under test:postgres that holds
  // RC_DATABASE_URL (the throwaway server's), the setting that puts the service on PostgreSQL.
  'test/server.test.ts',
  // Checks that the switch above really gives apps the PostgreSQL store.
  'test/helpers/stores.test.ts',
];

/**
 * Left out because they never build an app, so the store cannot change what they check: parsing of
 * the auth settings and of the Authorization header, and the service clients against loopback
 * servers.
 */
const storeless = [
  'test/auth/settings.test.ts',
  'test/auth/bearer.test.ts',
  'test/clients/http.test.ts',
  'test/clients/services.test.ts',
];

/** PGlite runs the store suites in process; the suites that need a server only run against one. */
const onPglite = process.env.RC_TEST_STORE === 'pglite';

/**
 * Left out on PGlite only: PGlite executes PostgreSQL on the JavaScript thread, so a statement that
 * ends 2,000 NodeRuns blocks the event loop, which is exactly what this suite checks the service
 * never does. Against a server the statement runs in another process and the suite runs.
 */
const notOnPglite = ['test/http/big-cascades.test.ts'];

export default defineConfig({
  test: {
    include: [...(onPglite ? [] : ['test/**/*.pgtest.ts']), ...storeSuites],
    exclude: [...storeless, ...(onPglite ? notOnPglite : [])],
    environment: 'node',
    env: { RC_TEST_STORE: onPglite ? 'pglite' : 'postgres' },
    globalSetup: onPglite ? [] : ['test/pg-tools/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    // Commits take I/O here: the suites that commit thousands of events need more than the
    // 20 s of `npm test`.
    testTimeout: 60_000,
    hookTimeout: 30_000,
  },
});
