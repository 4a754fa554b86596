/**
 * Applies the schema's migrations, in order, each in its own transaction, under an advisory lock so
 * that instances starting at the same time take turns (the first applies, the others find nothing
 * to do). Applied versions are recorded in `<schema>.migrations`.
 */
import type pg from 'pg';
import { MIGRATIONS, type Migration } from './migrations.js';
import { quoteIdent } from './sql.js';

/** One lock id for all coordinators: migrating two schemas at once is rare and merely waits. */
const MIGRATION_LOCK = 7_361_904_512;

export interface MigrationResult {
  readonly applied: readonly number[];
  readonly current: number;
}

export async function migrate(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationResult> {
  const s = quoteIdent(schema);
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${s}.migrations (
           version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const done = new Set(
        (await client.query<{ version: number }>(`SELECT version FROM ${s}.migrations`)).rows.map(
          (r) => r.version,
        ),
      );
      const applied: number[] = [];
      for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(migration.sql.replaceAll('{schema}', s));
          await client.query(`INSERT INTO ${s}.migrations (version, name) VALUES ($1, $2)`, [
            migration.version,
            migration.name,
          ]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw new Error(`migration ${migration.version} (${migration.name}) failed: ${String(error)}`, {
            cause: error,
          });
        }
        applied.push(migration.version);
      }
      const current = Math.max(0, ...done, ...applied);
      return { applied, current };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    }
  } finally {
    client.release();
  }
}
