/**
 * The SQL of the PostgreSQL store, built once per schema (every table name is qualified, so that
 * one database can hold several coordinators, or one schema per test). Pure functions of the schema
 * name: nothing here talks to the database.
 */
import { createHash } from 'node:crypto';

/** A double-quoted SQL identifier. */
export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

const RUN_COLUMNS = 'run_id, doc, constraints, start_fingerprint, deadline_at, steps';
const NODE_COLUMNS = `run_id, node_run_id, doc, depth, constraints, child_count, rounds, idempotency_key,
  idempotency_fingerprint, completion_fingerprint, ended_by_coordinator, assignment_token_hash, deadline_at`;
const LIVE = `state IN ('queued', 'running')`;

function liveSubtree(s: string, start: 'parent_node_run_id' | 'node_run_id'): string {
  const columns = NODE_COLUMNS.replaceAll(/\b(\w+)\b/g, (column) => `n.${column}`);
  return `
    WITH RECURSIVE target(node_run_id) AS (
      SELECT node_run_id FROM ${s}.node_runs WHERE run_id = $1 AND ${start} = $2 AND ${LIVE}
      UNION ALL
      SELECT n.node_run_id FROM ${s}.node_runs n JOIN target t ON n.parent_node_run_id = t.node_run_id
       WHERE n.run_id = $1 AND n.${LIVE}
    )
    SELECT ${columns} FROM ${s}.node_runs n JOIN target t ON t.node_run_id = n.node_run_id WHERE n.run_id = $1`;
}

export function statements(schema: string) {
  const s = quoteIdent(schema);
  return nameAll(schema, {
    /** The rows of a batch's Runs, locked in run_id order (two batches never wait on each other in a cycle). */
    lockRuns: `
      SELECT ${RUN_COLUMNS}, node_run_count, live_count, last_seq FROM ${s}.runs
       WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE`,
    /**
     * The NodeRuns a batch's decisions need: by id ($1, in any Run, to tell another Run's from
     * unknown), and by (run, parent, idempotency key) ($2, $3, $4, side by side).
     */
    loadNodeRuns: `
      SELECT ${NODE_COLUMNS} FROM ${s}.node_runs WHERE node_run_id = ANY($1::text[])
      UNION ALL
      SELECT n.* FROM unnest($2::text[], $3::text[], $4::text[]) AS k(run_id, parent_node_run_id, idempotency_key)
       -- One index lookup per key, whatever plan the prepared statement settles on.
       CROSS JOIN LATERAL (
         SELECT ${NODE_COLUMNS} FROM ${s}.node_runs
          WHERE run_id = k.run_id AND parent_node_run_id = k.parent_node_run_id
            AND idempotency_key = k.idempotency_key
       ) n`,
    /**
     * The unfinished NodeRuns below $2, which a cascade ends (`liveSubtreeFrom`: and $2 itself).
     * Unfinished NodeRuns only have unfinished ancestors, so the walk never enters a finished one.
     */
    liveSubtree: liveSubtree(s, 'parent_node_run_id'),
    liveSubtreeFrom: liveSubtree(s, 'node_run_id'),
    effectDone: `DELETE FROM ${s}.outbox WHERE run_id = $1 AND effect_id = $2`,
    /** This process's lease: one row, whatever it holds. */
    renewLease: `
      INSERT INTO ${s}.instances (instance_id, lease_expires_at) VALUES ($1, $2)
      ON CONFLICT (instance_id) DO UPDATE SET lease_expires_at = EXCLUDED.lease_expires_at`,
    endLease: `DELETE FROM ${s}.instances WHERE instance_id = $1`,
    /** Queued NodeRuns held by nobody, or by a process whose lease ended; taken without waiting. */
    adoptQueued: `
      UPDATE ${s}.node_runs n SET owner = $1
        FROM (SELECT q.run_id, q.node_run_id FROM ${s}.node_runs q
                LEFT JOIN ${s}.instances i ON i.instance_id = q.owner
               WHERE q.state = 'queued' AND q.owner IS DISTINCT FROM $1
                 AND (i.instance_id IS NULL OR i.lease_expires_at < $2)
               LIMIT $3 FOR UPDATE OF q SKIP LOCKED) q
       WHERE n.run_id = q.run_id AND n.node_run_id = q.node_run_id
      RETURNING n.run_id, n.node_run_id`,
    /** Atomic executions whose waiting process's lease ended (or that nobody waits for). */
    lostExecutions: `
      SELECT n.run_id, n.node_run_id FROM ${s}.node_runs n
        LEFT JOIN ${s}.instances i ON i.instance_id = n.owner
       WHERE n.state = 'running' AND n.kind = 'atomic'
         AND (i.instance_id IS NULL OR i.lease_expires_at < $1)
       LIMIT $2`,
    nodeRunDeadlines: `
      SELECT run_id, node_run_id, deadline_at FROM ${s}.node_runs
       WHERE state = 'running' AND deadline_at < $1 ORDER BY deadline_at LIMIT $2`,
    runDeadlines: `
      SELECT run_id, deadline_at FROM ${s}.runs
       WHERE state = 'running' AND deadline_at < $1 ORDER BY deadline_at LIMIT $2`,
    dueEffects: `
      UPDATE ${s}.outbox o SET attempts = o.attempts + 1,
             next_attempt_at = $1 + least($3::bigint * (1::bigint << least(o.attempts, 20)), $4::bigint)
        FROM (SELECT run_id, effect_id FROM ${s}.outbox WHERE next_attempt_at <= $1
               ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
       WHERE o.run_id = d.run_id AND o.effect_id = d.effect_id
      RETURNING o.run_id, o.effect_id, o.node_run_id, o.executor_kind, o.attempts`,
    releaseQueued: `
      UPDATE ${s}.node_runs n SET owner = NULL
        FROM (SELECT run_id, node_run_id FROM ${s}.node_runs WHERE state = 'queued' AND owner = $1
               FOR UPDATE SKIP LOCKED) q
       WHERE n.run_id = q.run_id AND n.node_run_id = q.node_run_id`,
    finishedBefore: `
      SELECT run_id FROM ${s}.runs WHERE state <> 'running' AND ended_at < $1 ORDER BY ended_at LIMIT $2`,
    deleteRun: [
      `DELETE FROM ${s}.run_events WHERE run_id = $1`,
      `DELETE FROM ${s}.outbox WHERE run_id = $1`,
      `DELETE FROM ${s}.node_runs WHERE run_id = $1`,
      `DELETE FROM ${s}.runs WHERE run_id = $1`,
    ],
    getRun: `SELECT ${RUN_COLUMNS} FROM ${s}.runs WHERE run_id = $1`,
    getNodeRun: `SELECT ${NODE_COLUMNS} FROM ${s}.node_runs WHERE node_run_id = ANY($1::text[])`,
    runJson: `SELECT run_id AS id, doc::text AS json FROM ${s}.runs WHERE run_id = ANY($1::text[])`,
    nodeRunJson: `SELECT node_run_id AS id, doc::text AS json FROM ${s}.node_runs WHERE node_run_id = ANY($1::text[])`,
    locate: `SELECT run_id FROM ${s}.node_runs WHERE node_run_id = $1`,
    countLiveRuns: `SELECT count(*)::integer AS count FROM ${s}.runs WHERE state = 'running'`,
    findAssignment: `
      SELECT run_id, node_run_id FROM ${s}.node_runs WHERE assignment_token_hash = $1 AND ${LIVE}`,
    events: `
      SELECT r.last_seq, r.state, e.seq, e.node_run_id, n.parent_node_run_id, e.line
        FROM ${s}.runs r
        LEFT JOIN LATERAL (
          SELECT seq, node_run_id, line FROM ${s}.run_events
           WHERE run_id = r.run_id AND seq > $2 ORDER BY seq LIMIT $3
        ) e ON true
        LEFT JOIN ${s}.node_runs n ON n.run_id = r.run_id AND n.node_run_id = e.node_run_id
       WHERE r.run_id = $1
       ORDER BY e.seq`,
  });
}

export interface Statement {
  readonly name: string;
  readonly text: string;
}

/** The prefix of the statement names of a schema's store. */
export const statementPrefix = (schema: string) =>
  `rc${createHash('sha1').update(schema).digest('hex').slice(0, 10)}`;

/**
 * Every statement becomes a named (prepared) statement: each connection parses and plans it once.
 * Names carry a hash of the schema, since one connection may serve stores of several schemas.
 */
function nameAll<T extends Record<string, string | readonly string[]>>(
  schema: string,
  texts: T,
): { readonly [K in keyof T]: T[K] extends string ? Statement : readonly Statement[] } {
  const prefix = statementPrefix(schema);
  const named: Record<string, Statement | Statement[]> = {};
  for (const [key, text] of Object.entries(texts)) {
    named[key] =
      typeof text === 'string'
        ? { name: `${prefix}_${key}`, text }
        : text.map((t, i) => ({ name: `${prefix}_${key}_${i}`, text: t }));
  }
  return named as never;
}

export type Statements = ReturnType<typeof statements>;
