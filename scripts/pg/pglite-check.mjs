// What a PostgreSQL store needs, probed on a throwaway PostgreSQL 15 server and on PGlite through
// the same handle (pglite-adapter.mjs), side by side:
//
//   node scripts/pg/pglite-check.mjs [--seconds 2]
//
// Prints one row per probe with what each backend did, then start times and a short throughput
// comparison (point reads and a 7-statement write transaction, 50 concurrent callers).
import { performance } from 'node:perf_hooks';
import { openPglite, openPostgres, transaction } from './pglite-adapter.mjs';
import { startThrowawayPostgres } from './throwaway.mjs';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 2;
const SCHEMA = `
  DROP TABLE IF EXISTS run_events, node_runs, runs, jobs;
  CREATE TABLE runs (run_id text PRIMARY KEY, state text NOT NULL, node_count int NOT NULL DEFAULT 0,
                     event_seq int NOT NULL DEFAULT 0, doc jsonb NOT NULL);
  CREATE TABLE node_runs (node_run_id text PRIMARY KEY, run_id text NOT NULL REFERENCES runs,
                          doc jsonb NOT NULL);
  CREATE TABLE run_events (run_id text NOT NULL, seq int NOT NULL, doc jsonb NOT NULL,
                           PRIMARY KEY (run_id, seq));
  CREATE TABLE jobs (id int PRIMARY KEY, state text NOT NULL);
  INSERT INTO jobs VALUES (1, 'queued'), (2, 'queued');
  INSERT INTO runs (run_id, state, doc) VALUES ('r1', 'running', '{"k":"v"}');`;

const tick = () => new Promise((resolve) => setTimeout(resolve, 100));
const withTimeout = (promise, ms, fallback) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(fallback), ms))]);

/** Two callers: A takes something and holds it; B tries meanwhile. Returns B's view and the order. */
async function contend(pool, holdSql, trySql) {
  const order = [];
  let bResult;
  await pool.query(`UPDATE jobs SET state = 'queued'`);
  let holds;
  const aHolds = new Promise((resolve) => {
    holds = resolve;
  });
  const a = transaction(pool, async (client) => {
    await client.query(holdSql);
    order.push('A holds');
    holds();
    await tick(); // give B the chance to run into it
    await client.query("UPDATE jobs SET state = 'claimed' WHERE id = 1");
    order.push('A commits');
  });
  await aHolds;
  const b = transaction(pool, async (client) => {
    order.push('B in tx');
    bResult = (await client.query(trySql)).rows[0];
    order.push('B got');
  });
  await Promise.all([a, b]);
  return `${JSON.stringify(bResult)}; ${order.join(' → ')}`;
}

const probes = {
  'parameters, jsonb, INSERT … RETURNING': async ({ pool }) => {
    const { rows } = await pool.query(
      `INSERT INTO node_runs VALUES ($1, $2, $3) RETURNING node_run_id, doc->'n' AS n`,
      ['n1', 'r1', { n: [1, 2] }],
    );
    return JSON.stringify(rows);
  },
  'named statement, rowMode array': async ({ pool }) => {
    const q = { name: 'get-run', text: 'SELECT run_id, doc FROM runs WHERE run_id = $1', rowMode: 'array' };
    await pool.query({ ...q, values: ['r1'] });
    return JSON.stringify((await pool.query({ ...q, values: ['r1'] })).rows);
  },
  'int8 and timestamptz parsing': async ({ pool }) => {
    const [row] = (await pool.query('SELECT 9007199254740993::int8 AS big, now() AS ts')).rows;
    return `int8 ${typeof row.big} ${row.big}, timestamptz ${row.ts?.constructor.name}`;
  },
  'BEGIN/ROLLBACK, BEGIN/COMMIT': async ({ pool }) => {
    const insert = (client, id) => client.query(`INSERT INTO jobs VALUES ($1, 'queued')`, [id]);
    await transaction(pool, async (client) => {
      await insert(client, 10);
      throw new Error('roll back');
    }).catch(() => {});
    await transaction(pool, (client) => insert(client, 11));
    return JSON.stringify((await pool.query('SELECT id FROM jobs WHERE id >= 10')).rows);
  },
  'error aborts the transaction': async ({ pool }) => {
    const client = await pool.connect();
    const codes = [];
    await client.query('BEGIN');
    for (const sql of ['SELECT 1/0', 'SELECT 1']) await client.query(sql).catch((e) => codes.push(e.code));
    await client.query('ROLLBACK');
    client.release();
    return codes.join(', ');
  },
  'data-modifying CTE + jsonb_to_recordset': async ({ pool }) => {
    const events = [
      { seq: 1, doc: { type: 'a' } },
      { seq: 2, doc: { type: 'b' } },
    ];
    const { rows } = await pool.query(
      `WITH n AS (INSERT INTO node_runs VALUES ($1, $2, $3) RETURNING 1),
            e AS (INSERT INTO run_events SELECT $2, seq, doc FROM jsonb_to_recordset($4) AS x(seq int, doc jsonb)
                  RETURNING 1),
            r AS (UPDATE runs SET node_count = node_count + (SELECT count(*) FROM n),
                                  event_seq = event_seq + (SELECT count(*) FROM e)
                  WHERE run_id = $2 RETURNING node_count, event_seq)
       SELECT * FROM r`,
      ['n2', 'r1', { n: 2 }, JSON.stringify(events)],
    );
    return JSON.stringify(rows);
  },
  'FOR UPDATE: B meanwhile locks the same row': ({ pool }) =>
    contend(pool, `SELECT * FROM runs WHERE run_id = 'r1' FOR UPDATE`, `SELECT run_id FROM runs FOR UPDATE`),
  'SKIP LOCKED: B claims while A holds job 1': ({ pool }) =>
    contend(
      pool,
      `SELECT id FROM jobs WHERE id = 1 FOR UPDATE`,
      `SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
    ),
  'xact advisory lock: B tries while A holds': ({ pool }) =>
    contend(pool, 'SELECT pg_advisory_xact_lock(42)', 'SELECT pg_try_advisory_xact_lock(42) AS got'),
  'session advisory lock: taken, client released, another caller tries': async ({ pool, kind }) => {
    const a = await pool.connect();
    await a.query('SELECT pg_advisory_lock(7)');
    // On a real server A keeps its session; hold it so the pool must give B another connection.
    if (kind === 'pglite') a.release();
    const b = await pool.connect();
    const { rows } = await b.query('SELECT pg_try_advisory_lock(7) AS got');
    b.release();
    if (kind !== 'pglite') a.release();
    await pool.query('SELECT pg_advisory_unlock_all()');
    return JSON.stringify(rows[0]);
  },
  'NOTIFY in tx: rollback drops it, commit delivers it': async ({ pool, listen }) => {
    const seen = [];
    let marker;
    const gotMarker = new Promise((resolve) => {
      marker = resolve;
    });
    const unlisten = await listen('probe', (payload) => {
      seen.push(payload);
      if (payload === 'marker') marker();
    });
    await transaction(pool, async (client) => {
      await client.query(`SELECT pg_notify('probe', 'rolled-back')`);
      throw new Error('roll back');
    }).catch(() => {});
    await transaction(pool, (client) => client.query(`SELECT pg_notify('probe', 'committed')`));
    await pool.query(`SELECT pg_notify('probe', 'marker')`);
    const delivered = await withTimeout(
      gotMarker.then(() => true),
      2000,
      false,
    );
    await unlisten();
    return delivered ? seen.join(', ') : `not delivered within 2 s (${seen.join(', ')})`;
  },
  'tx calls pool.query instead of its own client': async ({ pool }) => {
    const outcome = await transaction(pool, async () => {
      const r = await withTimeout(pool.query('SELECT 1 AS one'), 1000, 'waited >1 s');
      return typeof r === 'string' ? r : 'answered';
    }).catch((e) => `error: ${e.message}`);
    return outcome;
  },
};

async function pgliteOnlyProbe() {
  // Why the adapter needs the pool mutex: PGlite's own query() lets another caller's statement run
  // inside an open BEGIN.
  const { db, close } = await openPglite();
  await db.exec('CREATE TABLE t (v int); INSERT INTO t VALUES (0)');
  await db.query('BEGIN');
  await db.query('UPDATE t SET v = 100');
  const seen = (await db.query('SELECT v FROM t')).rows[0].v;
  await db.query('ROLLBACK');
  await close();
  return `raw PGlite query() from another caller during an open BEGIN sees v=${seen} (uncommitted)`;
}

async function throughput(handle) {
  const { pool } = handle;
  await pool.query(`INSERT INTO runs (run_id, state, doc) SELECT 'p' || i, 'running', jsonb_build_object('pad', repeat('x', 1000))
                    FROM generate_series(1, 1000) i ON CONFLICT DO NOTHING`);
  const rate = async (op) => {
    let done = 0;
    const until = performance.now() + seconds * 1000;
    const caller = async () => {
      while (performance.now() < until) {
        await op(done);
        done++;
      }
    };
    await Promise.all(Array.from({ length: 50 }, caller));
    return Math.round(done / seconds);
  };
  const read = (i) => pool.query('SELECT doc FROM runs WHERE run_id = $1', [`p${(i % 1000) + 1}`]);
  let n = 0;
  const write = () =>
    transaction(pool, async (client) => {
      const run = `p${(n % 1000) + 1}`;
      const id = `w${n++}-${Math.random()}`;
      const pad = { pad: 'x'.repeat(1000) };
      await client.query('SELECT event_seq FROM runs WHERE run_id = $1 FOR UPDATE', [run]);
      await client.query('INSERT INTO node_runs VALUES ($1, $2, $3)', [id, run, pad]);
      await client.query(`UPDATE runs SET state = 'running' WHERE run_id = $1`, [run]);
      for (let k = 0; k < 2; k++) {
        await client.query(
          `INSERT INTO run_events SELECT $1, event_seq + 1 + $2, $3 FROM runs WHERE run_id = $1`,
          [run, k, { type: 'e' }],
        );
      }
      await client.query(
        'UPDATE runs SET event_seq = event_seq + 2, node_count = node_count + 1 WHERE run_id = $1',
        [run],
      );
    });
  return { reads: await rate(read), writes: await rate(write) };
}

async function timed(fn) {
  const start = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - start)];
}

async function main() {
  const [server, serverMs] = await timed(() => startThrowawayPostgres());
  const [pglite, pgliteMs] = await timed(() => openPglite());
  const dump = await pglite.db.dumpDataDir('none');
  const [fromDump, fromDumpMs] = await timed(() => openPglite({ loadDataDir: dump }));
  await fromDump.close();
  const postgres = await openPostgres(server.url, { max: 10 });
  try {
    const backends = [postgres, pglite];
    for (const b of backends) await b.pool.query(SCHEMA);
    console.log(`| probe | PostgreSQL 15 (pool of 10) | PGlite (pool of 1) |\n|---|---|---|`);
    for (const [name, probe] of Object.entries(probes)) {
      const cells = [];
      for (const b of backends) cells.push(await probe(b).catch((e) => `ERROR ${e.code ?? ''} ${e.message}`));
      console.log(`| ${name} | ${cells.join(' | ')} |`);
    }
    console.log(`\n${await pgliteOnlyProbe()}`);
    const version = async (b) => (await b.pool.query('SHOW server_version')).rows[0].server_version;
    console.log(`\nversions: PostgreSQL ${await version(postgres)}, PGlite ${await version(pglite)}`);
    console.log(
      `start: throwaway server ${serverMs} ms, PGlite fresh ${pgliteMs} ms, from a dump ${fromDumpMs} ms`,
    );
    for (const b of backends) {
      const t = await throughput(b);
      console.log(
        `${b.kind}: ${t.reads} point reads/s, ${t.writes} write tx/s (50 callers, ${seconds} s each)`,
      );
    }
    console.log(`rss after both: ${Math.round(process.memoryUsage().rss / 1e6)} MB`);
  } finally {
    await postgres.close();
    await pglite.close();
    await server.stop();
  }
}

await main();
