/**
 * The store switch of the test helpers (stores.ts): apps get the store RC_TEST_STORE selects, on the
 * server it names, and apps never see each other's rows. If the switch silently fell back to the
 * memory store, every HTTP suite "on PostgreSQL" would prove nothing.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { startRun, useApp } from './app.js';
import { intercept, onPostgres, testStoreKind } from './stores.js';

const newApp = useApp();

describe(`test apps on the ${testStoreKind} store`, () => {
  it('get the store RC_TEST_STORE selects, on a real server when one is given', async () => {
    const t = await newApp();
    const store = t.app.coordinator.store;
    expect(store).toBeInstanceOf(onPostgres ? PostgresStore : MemoryStore);
    if (!onPostgres) return;
    // PGlite has no TCP port; a real server answers with the one it listens on.
    const { rows } = await (store as PostgresStore).pool.query<{ port: number | null }>(
      'SELECT inet_server_port() AS port',
    );
    expect(rows[0]!.port === null ? 'pglite' : 'postgres').toBe(testStoreKind);
  });

  it('each have their own rows, so sequential ids repeat from app to app', async () => {
    const a = await newApp();
    const b = await newApp();
    expect((await startRun(a)).run_id).toBe('run_1');
    expect((await b.request({ method: 'GET', url: '/v1/runs/run_1' })).statusCode).toBe(404);
    expect((await startRun(b)).run_id).toBe('run_1');
    expect((await a.request({ method: 'GET', url: '/v1/runs/run_2' })).statusCode).toBe(404);
  });

  it('can be given a store that answers some calls itself and forwards the rest', async () => {
    const first = await newApp();
    const inner = first.app.coordinator.store;
    const t = await newApp({ store: intercept(inner, { countLiveRuns: async () => 7 }) });
    expect(await t.app.coordinator.store.countLiveRuns()).toBe(7);
    const run = await startRun(t);
    expect(await inner.runJson(run.run_id)).toBeDefined();
  });
});
