/**
 * Opens the PostgreSQL store a process runs on: the connection, the schema's migrations (under an
 * advisory lock, so that instances starting together take turns), and the LISTEN for other
 * instances' commits.
 */
import { openDatabase } from './database.js';
import { migrate } from './migrate.js';
import type { DatabaseSettings } from './settings.js';
import { PostgresStore } from './store.js';

export async function openPostgresStore(
  settings: DatabaseSettings,
  options: { now: () => number; dispatching: boolean; onError: (error: unknown, context: string) => void },
): Promise<PostgresStore> {
  const db = openDatabase({
    url: settings.url,
    poolSize: settings.poolSize,
    statementTimeoutMs: settings.statementTimeoutMs,
    onError: (error) => options.onError(error, 'database connection'),
  });
  try {
    await migrate(db.pool, settings.schema);
    const store = new PostgresStore({
      db,
      schema: settings.schema,
      instanceId: settings.instanceId,
      now: options.now,
      leaseTtlMs: settings.leaseTtlMs,
      ownsDatabase: true,
      dispatching: options.dispatching,
      onListenerError: (error) => options.onError(error, 'event listener'),
    });
    await store.start();
    return store;
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}
