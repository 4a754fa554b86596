// The durable store of `npm run bench -- --store postgres`: one throwaway PostgreSQL server for the
// whole run (scripts/pg/throwaway.mjs, default durability), a fresh schema for every scenario, and
// the server's CPU time for the "server side" figures. See BENCHMARKS.md, "Durable store".
import { copyFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { startThrowawayPostgres } from '../pg/throwaway.mjs';
import { treeCpuSeconds } from './procfs.mjs';

/**
 * Starts the server. `cpus` is a taskset CPU list for the postmaster and every backend, or undefined
 * for unpinned; `settings` are extra `-c name=value` server settings. The server's log is copied to
 * `logPath` when it stops.
 */
export async function startBenchPostgres({ cpus, settings = {}, log, logPath }) {
  const server = await startThrowawayPostgres({ cpus, settings, log, maxConnections: 200 });
  const admin = new pg.Client({ connectionString: server.adminUrl, application_name: 'bench-admin' });
  try {
    await admin.connect();
    const facts = await serverFacts(admin);
    const statements = /pg_stat_statements/.test(settings.shared_preload_libraries ?? '');
    if (statements) await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    let schemas = 0;
    return {
      kind: 'postgres',
      facts: {
        ...facts,
        placement: cpus === undefined ? 'unpinned' : `taskset -c ${cpus}`,
        dataDirectory: server.dir,
      },
      /** A schema no scenario has used yet; the services create it when they start. */
      freshSchema(label) {
        schemas += 1;
        return `bench_${schemas}_${label.replace(/[^A-Za-z0-9]/g, '_')}`.slice(0, 50);
      },
      serviceEnv: (schema) => ({ RC_DATABASE_URL: server.url, RC_DATABASE_SCHEMA: schema }),
      /** CPU seconds of the postmaster and all its backends so far. */
      cpuSeconds: () => treeCpuSeconds(server.pid),
      /**
       * After a scenario: drop its schema and write every dirty page out, so that the next scenario
       * starts from the same state and no checkpoint left over from this one lands in its window.
       */
      async clear(schema) {
        if (statements)
          await dumpStatements(admin, join(dirname(logPath), `postgres-statements-${schema}.txt`));
        await admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
        await admin.query('CHECKPOINT');
      },
      async stop() {
        await admin.end().catch(() => {});
        try {
          copyFileSync(join(server.dir, 'server.log'), logPath);
        } catch {
          // no log written
        }
        await server.stop();
      },
    };
  } catch (error) {
    await admin.end().catch(() => {});
    await server.stop();
    throw error;
  }
}

async function serverFacts(admin) {
  const setting = async (name) => (await admin.query(`SELECT current_setting($1) AS v`, [name])).rows[0].v;
  const version = (await admin.query('SHOW server_version')).rows[0].server_version;
  const names = [
    'synchronous_commit',
    'fsync',
    'wal_sync_method',
    'full_page_writes',
    'shared_buffers',
    'max_wal_size',
    'checkpoint_timeout',
  ];
  const settings = {};
  for (const name of names) settings[name] = await setting(name);
  return { version, settings };
}

/**
 * With pg_stat_statements loaded (--pg-set shared_preload_libraries=pg_stat_statements): the
 * statements of the scenario that just ended, most server time first, then a fresh count.
 */
async function dumpStatements(admin, path) {
  const { rows } = await admin.query(`
    SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
           round((total_exec_time / greatest(calls, 1) * 1000)::numeric, 1) AS mean_us,
           rows, shared_blks_hit + shared_blks_read AS blocks, left(regexp_replace(query, '\\s+', ' ', 'g'), 400) AS query
      FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25`);
  const lines = rows.map(
    (r) =>
      `${r.total_ms} ms total, ${r.calls} calls, ${r.mean_us} us mean, ${r.rows} rows, ${r.blocks} blocks: ${r.query}`,
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
  await admin.query('SELECT pg_stat_statements_reset()');
}
