/**
 * globalSetup of vitest.postgres.config.ts: the PostgreSQL suites get their server as
 * `inject('databaseUrl')`. Under `npm run test:postgres` the server comes from the throwaway script's
 * RC_TEST_DATABASE_URL; run directly (`npx vitest run --config vitest.postgres.config.ts`) it starts
 * its own throwaway server for the run.
 */
import type { TestProject } from 'vitest/node';
import { startThrowawayPostgres } from '../../scripts/pg/throwaway.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const given = process.env.RC_TEST_DATABASE_URL;
  if (given) {
    project.provide('databaseUrl', given);
    return undefined;
  }
  const server = await startThrowawayPostgres();
  project.provide('databaseUrl', server.url);
  return () => server.stop();
}
