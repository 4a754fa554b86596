/**
 * PostgreSQL compiled to WASM (PGlite), in process, behind the same `Database` handle a store uses
 * over a real server, so that `npm test` runs the PostgreSQL store with nothing but Node. PGlite is
 * one session: the pool hands out its single connection to one caller at a time, which also makes
 * it the lock between transactions. Its own `listen()` sees every notification.
 */
import { PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import pg from 'pg';
import type { Database } from '../../src/store/postgres/database.js';

export interface PgliteDatabase extends Database {
  readonly db: PGlite;
}

export async function openPglite(): Promise<PgliteDatabase> {
  const db = await PGlite.create();
  const pool = new pg.Pool({
    ...createPgConfig(db),
    pipeline: true,
    max: 1,
    connectionTimeoutMillis: 20_000,
  });
  pool.on('error', () => {});
  return {
    db,
    pool,
    async listen(channel, onPayload) {
      const unlisten = await db.listen(channel, onPayload);
      return async () => {
        await unlisten();
      };
    },
    async close() {
      await pool.end();
      await db.close();
    },
  };
}
