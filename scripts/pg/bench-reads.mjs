// Point reads by primary key through a pg.Pool: how many per second one Node process gets, and what
// each costs in this process's CPU, by pool size and query form.
//
//   node scripts/pg/bench-reads.mjs [--pools 5,10,20] [--callers 50] [--seconds 2] [--warmup 0.5]
//                                   [--rounds 3] [--rows 10000] [--variants all|name,name] [--pin]
//
// Against a throwaway PostgreSQL 15 server (or RC_DATABASE_URL). Rows hold the same ~1 KB document
// twice: as text and as jsonb. Variants:
//   text            SELECT body (text), unnamed statement (parse + bind + execute every time)
//   text-named      the same as a named (prepared once per connection) statement
//   text-array      named, rowMode 'array'
//   jsonb           SELECT doc (jsonb), unnamed: pg JSON.parse()s the value
//   jsonb-named     named
//   jsonb-array     named, rowMode 'array'
//   jsonb-as-text   named, SELECT doc::text: the server renders the JSON, we do not parse it
//   coalesced       jsonb-as-text, but the reads asked for in the same event-loop turn go out as one
//                   `WHERE id = ANY($1)` query (a DataLoader-style batch)
import pg from 'pg';
import {
  bestOfRounds,
  machineNote,
  measure,
  nodeRunDoc,
  openServer,
  parseOptions,
  report,
} from './bench-common.mjs';

const USAGE = `usage: node scripts/pg/bench-reads.mjs [--pools 5,10,20] [--callers 50] [--seconds 2] [--warmup 0.5]
                                      [--rounds 3] [--rows 10000] [--variants all|text,text-named,...] [--pin]`;
const VARIANTS = {
  text: { sql: 'SELECT body FROM docs WHERE id = $1' },
  'text-named': { sql: 'SELECT body FROM docs WHERE id = $1', named: true },
  'text-array': { sql: 'SELECT body FROM docs WHERE id = $1', named: true, array: true },
  jsonb: { sql: 'SELECT doc FROM docs WHERE id = $1' },
  'jsonb-named': { sql: 'SELECT doc FROM docs WHERE id = $1', named: true },
  'jsonb-array': { sql: 'SELECT doc FROM docs WHERE id = $1', named: true, array: true },
  'jsonb-as-text': { sql: 'SELECT doc::text AS doc FROM docs WHERE id = $1', named: true },
  coalesced: { coalesce: true },
};

/** Reads requested in the same turn share one query; each caller gets its own row. */
function coalescer(pool) {
  let pending = new Map(); // id → [resolve, reject][]
  let batches = 0;
  let reads = 0;
  const flush = async () => {
    const batch = pending;
    pending = new Map();
    batches++;
    reads += batch.size;
    try {
      const { rows } = await pool.query({
        name: 'coalesced',
        text: 'SELECT id, doc::text AS doc FROM docs WHERE id = ANY($1)',
        values: [[...batch.keys()]],
      });
      const byId = new Map(rows.map((row) => [row.id, row]));
      for (const [id, waiters] of batch) for (const [resolve] of waiters) resolve(byId.get(id));
    } catch (error) {
      for (const waiters of batch.values()) for (const [, reject] of waiters) reject(error);
    }
  };
  return {
    perQuery: () => (reads / batches).toFixed(1),
    read: (id) =>
      new Promise((resolve, reject) => {
        if (pending.size === 0) setImmediate(flush);
        const waiters = pending.get(id) ?? [];
        waiters.push([resolve, reject]);
        pending.set(id, waiters);
      }),
  };
}

const options = parseOptions(
  { pools: '5,10,20', callers: 50, seconds: 2, warmup: 0.5, rounds: 3, rows: 10_000, variants: 'all' },
  USAGE,
);
const variants = options.variants === 'all' ? Object.keys(VARIANTS) : options.variants.split(',');
for (const v of variants) if (!VARIANTS[v]) throw new Error(`unknown variant ${v}\n${USAGE}`);

async function seed(url) {
  const client = new pg.Client(url);
  await client.connect();
  await client.query('DROP TABLE IF EXISTS docs');
  await client.query('CREATE TABLE docs (id text PRIMARY KEY, body text NOT NULL, doc jsonb NOT NULL)');
  const batch = 1000;
  for (let start = 0; start < options.rows; start += batch) {
    const docs = Array.from({ length: Math.min(batch, options.rows - start) }, (_, k) =>
      nodeRunDoc(start + k),
    );
    await client.query(
      `INSERT INTO docs SELECT d->>'node_run_id', d::text, d FROM jsonb_array_elements($1::jsonb) d`,
      [JSON.stringify(docs)],
    );
  }
  await client.query('VACUUM ANALYZE docs');
  const { rows } = await client.query('SELECT avg(octet_length(body))::int AS bytes FROM docs');
  await client.end();
  return rows[0].bytes;
}

async function run() {
  const note = machineNote(options);
  const server = await openServer(options);
  const pools = [];
  try {
    const bytes = await seed(server.url);
    const scenarios = [];
    for (const max of options.pools.split(',').map(Number)) {
      const pool = new pg.Pool({ connectionString: server.url, max });
      pools.push(pool);
      // Open every connection before measuring: SCRAM authentication costs a few ms each.
      await Promise.all(Array.from({ length: max }, () => pool.query('SELECT 1')));
      for (const variant of variants) scenarios.push({ pool, labels: { pool: max, variant } });
    }
    const rows = await bestOfRounds(options.rounds, scenarios, async ({ pool, labels }) => {
      const { sql, named, array, coalesce } = VARIANTS[labels.variant];
      const batcher = coalesce ? coalescer(pool) : undefined;
      const query = (i) => ({
        text: sql,
        values: [`nr-${(i * 7919) % options.rows}`],
        ...(named ? { name: labels.variant } : {}),
        ...(array ? { rowMode: 'array' } : {}),
      });
      const result = await measure({
        op: batcher ? (i) => batcher.read(query(i).values[0]) : (i) => pool.query(query(i)),
        callers: options.callers,
        seconds: options.seconds,
        warmup: options.warmup,
        serverPid: server.pid,
      });
      return { ...result, notes: batcher ? `${batcher.perQuery()} reads per query` : '' };
    });
    const method = `${options.callers} concurrent callers; best of ${options.rounds} rounds of ${options.seconds} s after ${options.warmup} s`;
    report('pg-reads', rows, `${note}; ${method}; documents of ${bytes} bytes; ${options.rows} rows`);
  } finally {
    for (const pool of pools) await pool.end();
    await server.stop();
  }
}

await run();
