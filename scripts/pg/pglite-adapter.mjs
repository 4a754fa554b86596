// Prototype: PGlite (PostgreSQL compiled to WASM, in-process) behind the same small handle a store
// would use over a real server with `pg`:
//
//   { kind, pool, listen(channel, onPayload) → Promise<unlisten>, close() }
//
// `pool` is a real pg.Pool in both cases, so queries, named statements, rowMode and type parsing are
// node-postgres's own. For PGlite the pool sits on PGlite's node-postgres connection shim
// (`@electric-sql/pglite/node-postgres`). See pglite-check.mjs for what holds and what does not.
//
// PGlite is ONE backend session. Every caller shares it, so the pool must hand out one client at a
// time (max: 1): a transaction holds the only client until release(), which is the mutex that keeps
// another caller's statement from landing inside someone else's BEGIN … COMMIT. Consequences:
// transactions never overlap (no row-lock waits, SKIP LOCKED never skips, session advisory locks are
// re-entrant for everyone), and a transaction that calls pool.query() instead of its own client waits
// for itself — connectionTimeoutMillis turns that deadlock into an error.
import { PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import pg from 'pg';

/** An in-memory PGlite (or `dataDir` on disk; `loadDataDir` a dumpDataDir() tarball to skip initdb). */
export async function openPglite({ dataDir, loadDataDir, connectionTimeoutMillis = 10_000 } = {}) {
  const db = await PGlite.create({ dataDir, loadDataDir });
  const pool = new pg.Pool({ ...createPgConfig(db), max: 1, connectionTimeoutMillis });
  pool.on('error', () => {}); // an idle PGlite client has no socket that could fail
  return {
    kind: 'pglite',
    db,
    pool,
    // Notifications come back in whichever statement's reply follows the commit, on the shared
    // session; a second pg.Client doing LISTEN would not see them. PGlite's own listen() sees all.
    listen: (channel, onPayload) => db.listen(channel, onPayload),
    async close() {
      await pool.end();
      await db.close();
    },
  };
}

/** The same handle over a real server: a pool plus one dedicated LISTEN connection, opened lazily. */
export async function openPostgres(url, { max = 10, connectionTimeoutMillis = 10_000 } = {}) {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis });
  pool.on('error', () => {}); // idle clients that lose their socket are dropped by the pool
  const handlers = new Map(); // channel → Set of callbacks
  let listener;
  const listenerClient = async () => {
    if (!listener) {
      listener = new pg.Client({ connectionString: url });
      listener.on('notification', ({ channel, payload }) => {
        for (const handler of handlers.get(channel) ?? []) handler(payload);
      });
      await listener.connect();
    }
    return listener;
  };
  return {
    kind: 'postgres',
    pool,
    async listen(channel, onPayload) {
      const client = await listenerClient();
      if (!handlers.has(channel)) {
        handlers.set(channel, new Set());
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      handlers.get(channel).add(onPayload);
      return async () => {
        const set = handlers.get(channel);
        set?.delete(onPayload);
        if (set?.size === 0) {
          handlers.delete(channel);
          await client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`);
        }
      };
    },
    async close() {
      await listener?.end();
      await pool.end();
    },
  };
}

/** BEGIN … COMMIT on one client, ROLLBACK on any error; the same code for both handles. */
export async function transaction(pool, work) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
