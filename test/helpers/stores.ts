/**
 * Which store the apps of a test run use. The memory store by default; with RC_TEST_STORE=postgres
 * every app gets its own `PostgresStore` on a fresh, migrated schema, so that the HTTP suites check
 * the same behaviour on every store. The server is RC_TEST_DATABASE_URL (or the one the postgres
 * config's globalSetup started); without one, or with RC_TEST_STORE=pglite, PGlite in process. One
 * database handle per test file, opened on first use and closed after the file's last test.
 *
 *   npm run test:postgres                                          # the store suites, throwaway server
 *   npm run test:pglite                                            # the same on PGlite
 *   RC_TEST_STORE=pglite npx vitest run test/http/lifecycle.test.ts   # one file
 */
import { afterAll, inject } from 'vitest';
import type { Clock } from '../../src/coordinator/ports.js';
import { MemoryStore, type MemoryStoreOptions } from '../../src/store/memory.js';
import type { Store } from '../../src/store/store.js';

export type TestStoreKind = 'memory' | 'postgres' | 'pglite';

function storeKind(): TestStoreKind {
  const value = process.env.RC_TEST_STORE || 'memory';
  if (value === 'memory' || value === 'postgres' || value === 'pglite') return value;
  throw new Error(`RC_TEST_STORE=${value}: expected memory, postgres or pglite`);
}

function databaseUrl(): string | undefined {
  // Undefined unless the config's globalSetup provides it.
  const injected: string | undefined = inject('databaseUrl');
  return process.env.RC_TEST_DATABASE_URL || injected || undefined;
}

const url = databaseUrl();

/** The kind of store every app of this run gets (`pglite` when postgres has no server to use). */
export const testStoreKind: TestStoreKind = (() => {
  const kind = storeKind();
  return kind === 'postgres' && !url ? 'pglite' : kind;
})();

/** Whether apps get a PostgreSQL store (on a real server or on PGlite). */
export const onPostgres = testStoreKind !== 'memory';

let postgres: Promise<typeof import('./postgres-stores.js')> | undefined;

if (onPostgres) {
  // Registered while the test file is collected: runs after its last test, when its apps are closed.
  afterAll(async () => {
    await (await postgres)?.closeShared();
  });
}

/**
 * A store of the configured kind for one app, started and on its own schema; undefined for the
 * memory store, which `buildApp` makes itself from the app's options.
 */
export async function openTestStore(clock: Clock): Promise<Store | undefined> {
  if (!onPostgres) return undefined;
  postgres ??= import('./postgres-stores.js');
  const server = testStoreKind === 'postgres' && url ? { url } : 'pglite';
  return (await postgres).openPostgresStore(server, clock);
}

/**
 * A store of the configured kind, also when that is memory: for tests that wrap or observe the
 * store they pass to the app. `memory` configures the memory store only.
 */
export async function newTestStore(
  clock: Clock,
  memory: MemoryStoreOptions = { maxFinishedRuns: 1_000 },
): Promise<Store> {
  return (await openTestStore(clock)) ?? new MemoryStore(memory);
}

/**
 * `store` with some methods replaced (the rest answered by `store` itself), to watch or break a store
 * of any kind without knowing its class.
 */
export function intercept<S extends Store>(store: S, overrides: Partial<Store>): S {
  return new Proxy(store, {
    get(target, property) {
      const own = overrides[property as keyof Store];
      if (own) return own;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
