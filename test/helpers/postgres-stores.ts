/**
 * The PostgreSQL side of stores.ts, loaded only when apps get a PostgreSQL store (so that the default
 * suite never loads pg or PGlite): one database handle per test file, and one migrated, started
 * `PostgresStore` per app, each on a schema of its own.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../src/coordinator/ports.js';
import { type Database, openDatabase } from '../../src/store/postgres/database.js';
import { migrate } from '../../src/store/postgres/migrate.js';
import { quoteIdent } from '../../src/store/postgres/sql.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { openPglite } from './pglite.js';

/** A real server at `url`, or PGlite in process when there is none. */
export type Server = { readonly url: string } | 'pglite';

let database: Promise<Database> | undefined;
/** Schemas this file created on a real server, dropped after its last test. */
const schemas: string[] = [];

function openShared(server: Server): Promise<Database> {
  if (server === 'pglite') return openPglite();
  // Enough connections for the concurrency suites; far below the throwaway server's 200 even with
  // one test file per CPU.
  return Promise.resolve(openDatabase({ url: server.url, poolSize: 10, statementTimeoutMs: 60_000 }));
}

/** A fresh schema name: apps never share rows, and ids such as `run_1` repeat from app to app. */
const freshSchema = () => `t_${randomBytes(6).toString('hex')}`;

export async function openPostgresStore(server: Server, clock: Clock): Promise<PostgresStore> {
  database ??= openShared(server);
  const db = await database;
  const schema = freshSchema();
  if (server !== 'pglite') schemas.push(schema);
  await migrate(db.pool, schema);
  const store = new PostgresStore({
    db,
    schema,
    instanceId: schema,
    now: () => clock.now().getTime(),
  });
  await store.start();
  return store;
}

/** After the file's last test (its apps, and so their stores, are closed). */
export async function closeShared(): Promise<void> {
  const db = await database?.catch(() => undefined);
  database = undefined;
  if (!db) return;
  // A server may outlive the run (RC_TEST_DATABASE_URL); PGlite is gone with its handle.
  const created = schemas.splice(0);
  if (created.length > 0) await db.pool.query(`DROP SCHEMA ${created.map(quoteIdent).join(', ')} CASCADE`);
  await db.close();
}
