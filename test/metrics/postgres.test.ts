/**
 * Metrics of the PostgreSQL store (on PGlite, in process): commit transactions are timed with
 * `store="postgres"`, and the pool gauges appear, read at scrape time.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock, startRun, useApp } from '../helpers/app.js';
import { closeShared, openPostgresStore } from '../helpers/postgres-stores.js';
import { scrape } from './exposition.js';

const newApp = useApp();
afterAll(() => closeShared());

describe('metrics on the PostgreSQL store', () => {
  it('times each commit transaction and shows the pool', async () => {
    const clock = new ManualClock();
    const t = await newApp({ clock, store: await openPostgresStore('pglite', clock) });
    const before = await scrape(t);
    expect(before.value('arp_rc_store_commit_duration_seconds_count', { store: 'postgres' })).toBe(0);
    const run = await startRun(t);
    const done = await t.request({
      method: 'POST',
      url: `/v1/node-runs/${run.root_node_run_id}:complete`,
      payload: { state: 'succeeded' },
    });
    expect(done.statusCode, done.body).toBe(204);
    const s = await scrape(t);
    // One request at a time: each decision is a transaction of its own.
    expect(s.value('arp_rc_store_commit_duration_seconds_count', { store: 'postgres' })).toBe(2);
    expect(s.value('arp_rc_store_commit_duration_seconds_count', { store: 'memory' })).toBe(0);
    expect(s.value('arp_rc_runs_finished_total', { state: 'succeeded' })).toBe(1);
    // Nothing is in flight between requests: every open connection is idle and nobody waits.
    const open = s.value('arp_rc_db_pool_connections');
    expect(open).toBeGreaterThan(0);
    expect(s.value('arp_rc_db_pool_idle_connections')).toBe(open);
    expect(s.value('arp_rc_db_pool_waiting_queries')).toBe(0);
  });
});
