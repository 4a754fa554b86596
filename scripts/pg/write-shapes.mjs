// The transaction shapes bench-writes.mjs compares. Each commits "create one child NodeRun under a
// Run's root": lock and read the Run and its root, insert the child (~1 KB jsonb), rewrite the root,
// append two RunEvents, bump the Run's counters. Round trips per create in brackets:
//
//   separate    BEGIN; SELECT … FOR UPDATE; INSERT child; UPDATE parent; INSERT 2 events;
//               UPDATE run; COMMIT                                                          [7]
//   cte         BEGIN; SELECT … FOR UPDATE; every write in one statement (data-modifying CTEs fed by
//               jsonb_to_recordset($n)); COMMIT                                             [4]
//   optimistic  no explicit transaction: SELECT (no lock), then one CTE statement whose writes all
//               hang off `UPDATE runs … WHERE version = $seen`; a conflict retries from the read [2]
//   batched     group commit: creates that arrive while earlier batches are in flight are committed
//               together — lock all their Runs (in run_id order), one CTE statement, one COMMIT
//                                                                              [4 per batch]
import { nodeRunDoc } from './bench-common.mjs';

export const SCHEMA = `
  DROP TABLE IF EXISTS run_events, node_runs, runs;
  CREATE TABLE runs (run_id text PRIMARY KEY, state text NOT NULL, version int NOT NULL DEFAULT 0,
                     node_count int NOT NULL DEFAULT 0, event_seq int NOT NULL DEFAULT 0, doc jsonb NOT NULL);
  CREATE TABLE node_runs (node_run_id text PRIMARY KEY, run_id text NOT NULL REFERENCES runs,
                          parent_id text, doc jsonb NOT NULL);
  CREATE INDEX node_runs_run_id ON node_runs (run_id);
  CREATE TABLE run_events (run_id text NOT NULL, seq int NOT NULL, doc jsonb NOT NULL,
                           PRIMARY KEY (run_id, seq));`;

const READ = `SELECT r.run_id, r.state, r.version, r.event_seq, r.node_count, p.doc AS parent
                FROM runs r JOIN node_runs p ON p.node_run_id = 'root-' || r.run_id`;
const LOCK = { name: 'lock-run', text: `${READ} WHERE r.run_id = $1 FOR UPDATE OF r` };
const PEEK = { name: 'peek-run', text: `${READ} WHERE r.run_id = $1` };
const LOCK_MANY = {
  name: 'lock-runs',
  text: `${READ} WHERE r.run_id = ANY($1) ORDER BY r.run_id FOR UPDATE OF r`,
};

// $1 runs [{run_id, event_seq, added}], $2 children, $3 parent rewrites, $4 events; with `guard`,
// $5 is the version read and every write hangs off the guarded UPDATE; with `notify`, the last
// parameter is the pg_notify payload.
//
// The planner guesses 100 rows for jsonb_to_recordset(), so `UPDATE t … FROM jsonb_to_recordset(…)`
// hash-joins against a sequential scan of t (1.1 ms instead of 0.1 ms on 10,000 runs, measured, and
// held under the row lock). `t.key = ANY(ARRAY(SELECT …))` gives it an index condition.
const keysOf = (param, key) => `ANY(ARRAY(SELECT jsonb_array_elements(${param})->>'${key}'))`;
function writesSql({ guard = false, notify = false } = {}) {
  return `
  WITH r AS (UPDATE runs SET event_seq = x.event_seq, node_count = node_count + x.added, version = version + 1
               FROM jsonb_to_recordset($1) AS x(run_id text, event_seq int, added int)
              WHERE runs.run_id = ${keysOf('$1', 'run_id')} AND runs.run_id = x.run_id
                    ${guard ? 'AND runs.version = $5' : ''} RETURNING runs.run_id),
       n AS (INSERT INTO node_runs SELECT x.node_run_id, x.run_id, x.parent_id, x.doc
               FROM jsonb_to_recordset($2) AS x(node_run_id text, run_id text, parent_id text, doc jsonb)
              ${guard ? 'WHERE EXISTS (SELECT FROM r)' : ''} RETURNING 1),
       p AS (UPDATE node_runs SET doc = x.doc FROM jsonb_to_recordset($3) AS x(node_run_id text, doc jsonb)
              WHERE node_runs.node_run_id = ${keysOf('$3', 'node_run_id')} AND node_runs.node_run_id = x.node_run_id
                    ${guard ? 'AND EXISTS (SELECT FROM r)' : ''} RETURNING 1),
       e AS (INSERT INTO run_events SELECT x.run_id, x.seq, x.doc
               FROM jsonb_to_recordset($4) AS x(run_id text, seq int, doc jsonb)
              ${guard ? 'WHERE EXISTS (SELECT FROM r)' : ''} RETURNING 1)
       ${notify ? `, t AS (SELECT pg_notify('run_events', $${guard ? 6 : 5}) FROM r)` : ''}
  SELECT (SELECT count(*) FROM r)::int AS runs, (SELECT count(*) FROM n)::int AS children,
         (SELECT count(*) FROM e)::int AS events ${notify ? ', (SELECT count(*) FROM t)::int AS notified' : ''}`;
}
const WRITES = { name: 'writes', text: writesSql() };
const WRITES_NOTIFY = { name: 'writes-notify', text: writesSql({ notify: true }) };
const WRITES_GUARDED = { name: 'writes-guarded', text: writesSql({ guard: true }) };

let sequence = 0;

/** The documents one create writes, derived from the Run as read; advances `run` in place. */
function change(run) {
  const id = `c-${process.pid}-${sequence++}`;
  const parentId = `root-${run.run_id}`;
  run.parent = { ...run.parent, updated_at: new Date().toISOString(), last_child: id };
  const events = [1, 2].map((k) => ({
    run_id: run.run_id,
    seq: run.event_seq + k,
    doc: { type: 'node_run_created', node_run_id: id, k },
  }));
  run.event_seq += 2;
  return {
    id,
    child: { node_run_id: id, run_id: run.run_id, parent_id: parentId, doc: nodeRunDoc(sequence) },
    events,
  };
}

/** Parameters $1-$4 for the changes made to `runs` (one entry per Run read). */
function writeParams(runs, changes) {
  return [
    JSON.stringify(runs.map((r) => ({ run_id: r.run_id, event_seq: r.event_seq, added: r.added }))),
    JSON.stringify(changes.map((c) => c.child)),
    JSON.stringify(runs.map((r) => ({ node_run_id: `root-${r.run_id}`, doc: r.parent }))),
    JSON.stringify(changes.flatMap((c) => c.events)),
  ];
}

async function inTransaction(pool, work) {
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

export function separate(pool, runId) {
  return inTransaction(pool, async (client) => {
    const run = (await client.query({ ...LOCK, values: [runId] })).rows[0];
    const c = change(run);
    const [e1, e2] = c.events;
    const statements = [
      [
        'insert-child',
        'INSERT INTO node_runs VALUES ($1, $2, $3, $4)',
        [c.id, runId, c.child.parent_id, c.child.doc],
      ],
      [
        'update-parent',
        'UPDATE node_runs SET doc = $2 WHERE node_run_id = $1',
        [c.child.parent_id, run.parent],
      ],
      [
        'insert-events',
        'INSERT INTO run_events VALUES ($1, $2, $3), ($1, $4, $5)',
        [runId, e1.seq, e1.doc, e2.seq, e2.doc],
      ],
      [
        'update-run',
        'UPDATE runs SET event_seq = $2, node_count = node_count + 1, version = version + 1 WHERE run_id = $1',
        [runId, run.event_seq],
      ],
    ];
    for (const [name, text, values] of statements) await client.query({ name, text, values });
  });
}

/** With `onCommit`, the write statement also notifies, and onCommit(id, sentAt, ackedAt) is called. */
export async function cte(pool, runId, onCommit) {
  let sent;
  const id = await inTransaction(pool, async (client) => {
    const run = (await client.query({ ...LOCK, values: [runId] })).rows[0];
    const c = change(run);
    const params = writeParams([{ ...run, added: 1 }], [c]);
    const statement = onCommit
      ? { ...WRITES_NOTIFY, values: [...params, c.id] }
      : { ...WRITES, values: params };
    await client.query(statement);
    sent = performance.now();
    return c.id;
  });
  onCommit?.(id, sent, performance.now());
}

/** Returns the number of conflicts it retried. */
export async function optimistic(pool, runId) {
  for (let conflicts = 0; ; conflicts++) {
    const run = (await pool.query({ ...PEEK, values: [runId] })).rows[0];
    const seen = run.version;
    const c = change(run);
    const values = [...writeParams([{ ...run, added: 1 }], [c]), seen];
    const { rows } = await pool.query({ ...WRITES_GUARDED, values });
    if (rows[0].runs === 1) return conflicts;
  }
}

/** A group committer: `create(runId)` resolves once a batch holding it committed. */
export function batched(pool, { maxInFlight = 2, maxBatch = 200 } = {}) {
  let pending = [];
  let inFlight = 0;
  let scheduled = false;
  const stats = { batches: 0, creates: 0 };
  const commit = (items) =>
    inTransaction(pool, async (client) => {
      const ids = [...new Set(items.map((item) => item.runId))].sort();
      const runs = (await client.query({ ...LOCK_MANY, values: [ids] })).rows;
      const byId = new Map(runs.map((run) => [run.run_id, { ...run, added: 0 }]));
      const changes = items.map((item) => {
        const run = byId.get(item.runId);
        run.added++;
        return change(run);
      });
      await client.query({ ...WRITES, values: writeParams([...byId.values()], changes) });
    });
  const pump = () => {
    scheduled = false;
    while (inFlight < maxInFlight && pending.length > 0) {
      const items = pending.slice(0, maxBatch);
      pending = pending.slice(maxBatch);
      inFlight++;
      stats.batches++;
      stats.creates += items.length;
      commit(items)
        .then(
          () => {
            for (const item of items) item.resolve();
          },
          (error) => {
            for (const item of items) item.reject(error);
          },
        )
        .finally(() => {
          inFlight--;
          pump();
        });
    }
  };
  return {
    stats,
    create: (runId) =>
      new Promise((resolve, reject) => {
        pending.push({ runId, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(pump);
        }
      }),
  };
}
