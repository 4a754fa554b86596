/**
 * The PostgreSQL store's `health()` over a database handle the test controls: a lost LISTEN session
 * is down without a query; otherwise one `SELECT 1` answers every concurrent caller, and a failure
 * says its code, never the server's address. A store that is down makes `/v1/health` degraded.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Health } from '../../src/gen/contract.js';
import type { Database } from '../../src/store/postgres/database.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import type { Store, StoreHealth } from '../../src/store/store.js';
import { ManualClock, useApp } from '../helpers/app.js';
import { intercept, newTestStore } from '../helpers/stores.js';

function database(listen: 'idle' | 'connected' | 'lost', query: () => Promise<unknown>) {
  const queries: string[] = [];
  const db: Database = {
    pool: {
      query: (text: string) => {
        queries.push(text);
        return query();
      },
    } as unknown as pg.Pool,
    listen: async () => async () => {},
    listenState: () => listen,
    close: async () => {},
  };
  return { db, queries };
}

const storeOn = (db: Database) => new PostgresStore({ db, schema: 'arp_rc', instanceId: 'test' });

describe('PostgresStore.health()', () => {
  it('is down while the LISTEN session is lost, without a query', async () => {
    const { db, queries } = database('lost', async () => ({ rows: [] }));
    const health = await storeOn(db).health();
    expect(health).toMatchObject({ ok: false, details: { kind: 'postgresql', listen: 'lost' } });
    expect(queries).toEqual([]);
  });

  it('is ok when SELECT 1 answers; concurrent callers share one query', async () => {
    const { db, queries } = database('connected', async () => ({ rows: [{ '?column?': 1 }] }));
    const store = storeOn(db);
    const answers = await Promise.all([store.health(), store.health(), store.health()]);
    for (const health of answers) expect(health).toMatchObject({ ok: true, details: { kind: 'postgresql' } });
    expect(queries).toEqual(['SELECT 1']);
  });

  it('is down when the query fails, with the error code and not the address', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.1.2.3:5432'), { code: 'ECONNREFUSED' });
    const { db } = database('connected', () => Promise.reject(refused));
    const health = await storeOn(db).health();
    expect(health).toEqual({
      ok: false,
      message: 'PostgreSQL could not be queried',
      details: { kind: 'postgresql', cause: 'ECONNREFUSED' },
    });
    expect(JSON.stringify(health)).not.toContain('10.1.2.3');
  });
});

describe('/v1/health with a store that is down', () => {
  const newApp = useApp();

  it('is degraded (200) with the store check down and its message', async () => {
    const down: StoreHealth = { ok: false, message: 'The LISTEN session to PostgreSQL was lost' };
    const store: Store = intercept(await newTestStore(new ManualClock()), { health: async () => down });
    const t = await newApp({ store });
    const res = await t.request({ method: 'GET', url: '/v1/health' });
    expect(res.statusCode).toBe(200);
    const body = res.json() as Health;
    expect(body.status).toBe('degraded');
    expect(body.checks).toEqual([{ name: 'store', status: 'down', message: down.message }]);
  });

  it('a store whose health() throws counts as down', async () => {
    const store: Store = intercept(await newTestStore(new ManualClock()), {
      health: () => Promise.reject(new Error('boom')),
    });
    const t = await newApp({ store });
    const body = (await t.request({ method: 'GET', url: '/v1/health' })).json() as Health;
    expect(body.status).toBe('degraded');
    expect(body.checks?.[0]).toMatchObject({ name: 'store', status: 'down' });
  });
});
