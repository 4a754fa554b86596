// Throughput and latency of the write transaction a PostgreSQL store would commit per NodeRun create,
// in the shapes of write-shapes.mjs, against a throwaway PostgreSQL 15 server (or RC_DATABASE_URL).
//
//   node scripts/pg/bench-writes.mjs [--variants separate,cte,optimistic,batched,cte-notify]
//        [--contention many,hot] [--sync on,off] [--pools 10] [--callers 50] [--seconds 2]
//        [--warmup 0.5] [--rounds 3] [--runs 10000] [--pin]
//
// Contention: `many` spreads the callers over --runs Runs; `hot` sends every caller to ONE Run (all
// wait for its row lock). Sync: synchronous_commit per connection (the server default is on).
// cte-notify is cte plus pg_notify() in the write statement, received on a dedicated LISTEN
// connection: its notes give the delivery latency after the COMMIT was sent and after it was
// acknowledged.
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
import { batched, cte, optimistic, SCHEMA, separate } from './write-shapes.mjs';

const USAGE = `usage: node scripts/pg/bench-writes.mjs [--variants separate,cte,optimistic,batched,cte-notify]
       [--contention many,hot] [--sync on,off] [--pools 10] [--callers 50] [--seconds 2] [--warmup 0.5]
       [--rounds 3] [--runs 10000] [--pin]`;
const options = parseOptions(
  {
    variants: 'separate,cte,optimistic,batched,cte-notify',
    contention: 'many,hot',
    sync: 'on,off',
    pools: '10',
    callers: 50,
    seconds: 2,
    warmup: 0.5,
    rounds: 3,
    runs: 10_000,
  },
  USAGE,
);
const list = (text) => text.split(',').filter(Boolean);

async function seed(url) {
  const client = new pg.Client(url);
  await client.connect();
  await client.query(SCHEMA);
  await client.query(
    `INSERT INTO runs (run_id, state, doc)
       SELECT 'run-' || i, 'running', jsonb_build_object('run_id', 'run-' || i, 'pad', repeat('r', 400))
       FROM generate_series(0, $1 - 1) i`,
    [options.runs],
  );
  await client.query(
    `INSERT INTO node_runs SELECT 'root-run-' || i, 'run-' || i, NULL, $2::jsonb
       FROM generate_series(0, $1 - 1) i`,
    [options.runs, nodeRunDoc(0)],
  );
  await client.query('VACUUM ANALYZE');
  await client.end();
}

/** Listens on run_events; returns delivery latency percentiles over what `timings` recorded. */
async function notificationListener(url) {
  const delivered = new Map();
  const waiters = new Map();
  const client = new pg.Client(url);
  client.on('notification', ({ payload }) => {
    delivered.set(payload, performance.now());
    waiters.get(payload)?.();
  });
  await client.connect();
  await client.query('LISTEN run_events');
  let drains = 0;
  return {
    /** Notifications arrive in commit order: once a marker sent now arrives, every earlier one has. */
    async drain(pool) {
      const marker = `drain-${drains++}`;
      const arrived = new Promise((resolve) => waiters.set(marker, resolve));
      await pool.query(`SELECT pg_notify('run_events', $1)`, [marker]);
      await arrived;
    },
    summary(timings) {
      const afterSent = [];
      const afterAck = [];
      let missing = 0;
      for (const [id, { sent, acked }] of timings) {
        const at = delivered.get(id);
        if (at === undefined) missing++;
        else {
          afterSent.push(at - sent);
          afterAck.push(at - acked);
        }
      }
      const pct = (values, p) => {
        values.sort((a, b) => a - b);
        return (values[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? NaN).toFixed(2);
      };
      const sentText = `${pct(afterSent, 50)}/${pct(afterSent, 99)}`;
      return `notify ms after COMMIT sent p50/p99 ${sentText}, after ack ${pct(afterAck, 50)}/${pct(afterAck, 99)}; ${missing} missing`;
    },
    end: () => client.end(),
  };
}

async function run() {
  const note = machineNote(options);
  const server = await openServer(options);
  const pools = [];
  let listener;
  try {
    await seed(server.url);
    listener = await notificationListener(server.url);
    const scenarios = [];
    for (const max of list(options.pools).map(Number)) {
      for (const sync of list(options.sync)) {
        const pool = new pg.Pool({
          connectionString: server.url,
          max,
          options: `-c synchronous_commit=${sync}`,
        });
        pools.push(pool);
        await Promise.all(Array.from({ length: max }, () => pool.query('SELECT 1')));
        for (const contention of list(options.contention)) {
          for (const variant of list(options.variants)) {
            scenarios.push({ pool, labels: { pool: max, sync, contention, variant } });
          }
        }
      }
    }
    const rows = await bestOfRounds(options.rounds, scenarios, (scenario) =>
      runScenario(scenario, server, listener),
    );
    const method = `${options.callers} concurrent callers; best of ${options.rounds} rounds of ${options.seconds} s after ${options.warmup} s`;
    report('pg-writes', rows, `${note}; ${method}; ${options.runs} Runs; fsync on`);
  } finally {
    await listener?.end();
    for (const pool of pools) await pool.end();
    await server.stop();
  }
}

async function runScenario({ pool, labels: { contention, variant } }, server, listener) {
  const runOf = (i) => `run-${contention === 'hot' ? 0 : (i * 7919) % options.runs}`;
  const timings = new Map();
  const onCommit = (id, sent, acked) => timings.set(id, { sent, acked });
  let conflicts = 0;
  const group = batched(pool);
  const op = {
    separate: (i) => separate(pool, runOf(i)),
    cte: (i) => cte(pool, runOf(i)),
    'cte-notify': (i) => cte(pool, runOf(i), onCommit),
    optimistic: async (i) => {
      conflicts += await optimistic(pool, runOf(i));
    },
    batched: (i) => group.create(runOf(i)),
  }[variant];
  if (!op) throw new Error(`unknown variant ${variant}\n${USAGE}`);
  const result = await measure({ op, ...options, serverPid: server.pid });
  if (variant === 'cte-notify') await listener.drain(pool);
  const notes = {
    optimistic: `${conflicts} conflicts retried`,
    batched: `${(group.stats.creates / group.stats.batches).toFixed(1)} creates per transaction`,
    'cte-notify': listener.summary(timings),
  }[variant];
  return { ...result, notes: notes ?? '' };
}

await run();
