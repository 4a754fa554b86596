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

/** The columns of a NodeRun row as jsonb_to_recordset reads them. */
const NODE_RECORDSET = `x(node_run_id text, parent_node_run_id text, state text, kind text, doc jsonb,
  depth integer, constraints jsonb, child_count integer, rounds integer, idempotency_key text,
  idempotency_fingerprint text, completion_fingerprint text, ended_by_coordinator boolean,
  assignment_token_hash text, deadline_at bigint, set_owner boolean, owner text, lease_expires_at bigint)`;

export function statements(schema: string) {
  const s = quoteIdent(schema);
  const cascade = (inclusive: boolean) => `
    WITH RECURSIVE target(node_run_id, state) AS (
      SELECT node_run_id, state FROM ${s}.node_runs
       WHERE run_id = $1 AND ${inclusive ? 'node_run_id' : 'parent_node_run_id'} = $2 AND ${LIVE}
      UNION ALL
      SELECT n.node_run_id, n.state FROM ${s}.node_runs n JOIN target t ON n.parent_node_run_id = t.node_run_id
       WHERE n.run_id = $1 AND n.${LIVE}
    )
    UPDATE ${s}.node_runs n
       SET state = 'canceled', ended_by_coordinator = true, owner = NULL, lease_expires_at = NULL,
           deadline_at = NULL,
           doc = n.doc || jsonb_build_object('state', 'canceled', 'ended_at', $3::text, 'extensions',
                 coalesce(n.doc -> 'extensions', '{}'::jsonb) || jsonb_build_object('rc.completion_error', $4::jsonb))
      FROM target t
     WHERE n.run_id = $1 AND n.node_run_id = t.node_run_id
    RETURNING n.node_run_id, n.kind, t.state AS previous_state`;
  return nameAll(schema, {
    lockRun: `SELECT ${RUN_COLUMNS}, node_run_count, live_count, last_seq FROM ${s}.runs WHERE run_id = $1 FOR UPDATE`,
    /** NodeRuns by id (in any Run, to tell "another Run's" from "unknown") and by idempotency key. */
    loadNodeRuns: `
      SELECT ${NODE_COLUMNS} FROM ${s}.node_runs WHERE node_run_id = ANY($2::text[])
      UNION ALL
      SELECT ${NODE_COLUMNS} FROM ${s}.node_runs
       WHERE run_id = $1 AND parent_node_run_id = $3 AND idempotency_key = ANY($4::text[])`,
    cascadeExclusive: cascade(false),
    cascadeInclusive: cascade(true),
    insertRun: `
      INSERT INTO ${s}.runs (run_id, state, doc, constraints, start_fingerprint, deadline_at, steps,
                             node_run_count, live_count, last_seq, started_at, ended_at, tenant_id,
                             root_node_type_id)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    updateRun: `
      UPDATE ${s}.runs SET state = $2, doc = $3, deadline_at = $4, steps = $5, node_run_count = $6,
                           live_count = $7, last_seq = $8, ended_at = $9
       WHERE run_id = $1`,
    updateCounters: `UPDATE ${s}.runs SET node_run_count = $2, live_count = $3, last_seq = $4 WHERE run_id = $1`,
    insertNodeRuns: `
      INSERT INTO ${s}.node_runs (run_id, node_run_id, parent_node_run_id, state, kind, doc, depth, constraints,
                                  child_count, rounds, idempotency_key, idempotency_fingerprint,
                                  completion_fingerprint, ended_by_coordinator, assignment_token_hash,
                                  deadline_at, owner, lease_expires_at)
      SELECT $1, node_run_id, parent_node_run_id, state, kind, doc, depth, constraints, child_count, rounds,
             idempotency_key, idempotency_fingerprint, completion_fingerprint, ended_by_coordinator,
             assignment_token_hash, deadline_at, owner, lease_expires_at
        FROM jsonb_to_recordset($2::jsonb) AS ${NODE_RECORDSET}`,
    updateNodeRuns: `
      UPDATE ${s}.node_runs n
         SET state = x.state, kind = x.kind, doc = x.doc, child_count = x.child_count, rounds = x.rounds,
             completion_fingerprint = x.completion_fingerprint, ended_by_coordinator = x.ended_by_coordinator,
             assignment_token_hash = x.assignment_token_hash, deadline_at = x.deadline_at,
             owner = CASE WHEN x.set_owner THEN x.owner ELSE n.owner END,
             lease_expires_at = CASE WHEN x.set_owner THEN x.lease_expires_at ELSE n.lease_expires_at END
        FROM jsonb_to_recordset($2::jsonb) AS ${NODE_RECORDSET}
       WHERE n.run_id = $1 AND n.node_run_id = x.node_run_id`,
    /** Appends events and wakes every instance's streams of the Run, when the transaction commits. */
    appendEvents: `
      WITH appended AS (
        INSERT INTO ${s}.run_events (run_id, seq, node_run_id, line)
        SELECT $1, seq, node_run_id, line FROM unnest($2::bigint[], $3::text[], $4::text[]) AS e(seq, node_run_id, line)
      )
      SELECT pg_notify($5, $6)`,
    insertEffects: `
      INSERT INTO ${s}.outbox (run_id, effect_id, kind, node_run_id, executor_kind, next_attempt_at)
      SELECT $1, effect_id, 'cancel_execution', node_run_id, executor_kind, $5
        FROM unnest($2::text[], $3::text[], $4::text[]) AS e(effect_id, node_run_id, executor_kind)`,
    effectDone: `DELETE FROM ${s}.outbox WHERE run_id = $1 AND effect_id = $2`,
    renewLeases: `
      UPDATE ${s}.node_runs SET lease_expires_at = $2 WHERE owner = $1 AND ${LIVE}`,
    adoptQueued: `
      UPDATE ${s}.node_runs n SET owner = $1, lease_expires_at = $2
        FROM (SELECT run_id, node_run_id FROM ${s}.node_runs
               WHERE state = 'queued' AND lease_expires_at < $3
               ORDER BY lease_expires_at LIMIT $4 FOR UPDATE SKIP LOCKED) q
       WHERE n.run_id = q.run_id AND n.node_run_id = q.node_run_id
      RETURNING n.run_id, n.node_run_id`,
    lostExecutions: `
      SELECT run_id, node_run_id FROM ${s}.node_runs
       WHERE state = 'running' AND kind = 'atomic' AND lease_expires_at < $1
       ORDER BY lease_expires_at LIMIT $2`,
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
      UPDATE ${s}.node_runs SET owner = NULL, lease_expires_at = 0 WHERE owner = $1 AND state = 'queued'`,
    finishedBefore: `
      SELECT run_id FROM ${s}.runs WHERE state <> 'running' AND ended_at < $1 ORDER BY ended_at LIMIT $2`,
    deleteRun: [
      `DELETE FROM ${s}.run_events WHERE run_id = $1`,
      `DELETE FROM ${s}.outbox WHERE run_id = $1`,
      `DELETE FROM ${s}.node_runs WHERE run_id = $1`,
      `DELETE FROM ${s}.runs WHERE run_id = $1`,
    ],
    getRun: `SELECT ${RUN_COLUMNS} FROM ${s}.runs WHERE run_id = $1`,
    getNodeRun: `SELECT ${NODE_COLUMNS} FROM ${s}.node_runs WHERE node_run_id = $1`,
    runJson: `SELECT doc::text AS json FROM ${s}.runs WHERE run_id = $1`,
    nodeRunJson: `SELECT doc::text AS json FROM ${s}.node_runs WHERE node_run_id = $1`,
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

/**
 * Every statement becomes a named (prepared) statement: each connection parses and plans it once.
 * Names carry a hash of the schema, since one connection may serve stores of several schemas.
 */
function nameAll<T extends Record<string, string | readonly string[]>>(
  schema: string,
  texts: T,
): { readonly [K in keyof T]: T[K] extends string ? Statement : readonly Statement[] } {
  const prefix = `rc${createHash('sha1').update(schema).digest('hex').slice(0, 10)}`;
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
