/**
 * A decision's whole write as ONE statement (data-modifying CTEs): the Run's row, new and changed
 * NodeRuns, the cascade over the unfinished subtree, the events with their seq, the executor cancels
 * owed, and the notification to every instance, in one round trip. The text depends on which parts a
 * decision has (its shape); each shape is a named statement, planned once per connection.
 */
import { createHash, randomUUID } from 'node:crypto';
import { terminationError } from '../../core/cascade.js';
import {
  type Decision,
  type EndedExecution,
  isTerminal,
  type NodeRunRecord,
  type RunEvent,
} from '../../core/model.js';
import { type LockedRunRow, type NodeRunRow, nodeRunParam, type Ownership } from './rows.js';
import { quoteIdent, type Statement } from './sql.js';

export interface WriteShape {
  readonly run: 'insert' | 'update' | 'counters';
  readonly cascade: 'none' | 'inclusive' | 'exclusive';
  readonly created: boolean;
  readonly updated: boolean;
  readonly events: boolean;
  /** Cancels the decision itself asked for (those of the cascade come with it). */
  readonly effects: boolean;
}

/** Values for the parts a shape has, by name; the statement says in which order they are bound. */
export type WriteValues = Record<string, unknown>;

export interface WriteStatement extends Statement {
  readonly params: readonly string[];
}

const NODE_RECORDSET = `x(node_run_id text, parent_node_run_id text, state text, kind text, doc jsonb,
  depth integer, constraints jsonb, child_count integer, rounds integer, idempotency_key text,
  idempotency_fingerprint text, completion_fingerprint text, ended_by_coordinator boolean,
  assignment_token_hash text, deadline_at bigint, set_owner boolean, owner text)`;

export function writeStatement(schema: string, shape: WriteShape): WriteStatement {
  const s = quoteIdent(schema);
  const params: string[] = [];
  const p = (name: string, cast = '') => {
    let index = params.indexOf(name);
    if (index < 0) index = params.push(name) - 1;
    return `$${index + 1}${cast}`;
  };
  const run = p('run_id');
  const ctes: string[] = [];
  const live = `${p('live')}::integer`;
  let liveCount = live;

  if (shape.cascade !== 'none') {
    const start = shape.cascade === 'inclusive' ? 'node_run_id' : 'parent_node_run_id';
    ctes.push(`target(node_run_id, state) AS (
        SELECT node_run_id, state FROM ${s}.node_runs
         WHERE run_id = ${run} AND ${start} = ${p('cascade_from')} AND state IN ('queued', 'running')
        UNION ALL
        SELECT n.node_run_id, n.state FROM ${s}.node_runs n JOIN target t ON n.parent_node_run_id = t.node_run_id
         WHERE n.run_id = ${run} AND n.state IN ('queued', 'running'))`);
    ctes.push(`cascaded AS (
        UPDATE ${s}.node_runs n
           SET state = 'canceled', ended_by_coordinator = true, owner = NULL,
               deadline_at = NULL,
               doc = n.doc || jsonb_build_object('state', 'canceled', 'ended_at', ${p('cascade_time', '::text')},
                     'extensions', coalesce(n.doc -> 'extensions', '{}'::jsonb)
                       || jsonb_build_object('rc.completion_error', ${p('cascade_error', '::jsonb')}))
          FROM target t
         WHERE n.run_id = ${run} AND n.node_run_id = t.node_run_id
        RETURNING n.node_run_id, n.kind, t.state AS previous_state)`);
    ctes.push(`cascade_owed AS (
        INSERT INTO ${s}.outbox (run_id, effect_id, kind, node_run_id, executor_kind, next_attempt_at)
        SELECT ${run}, gen_random_uuid()::text, 'cancel_execution', node_run_id, kind, ${p('effects_due', '::bigint')}
          FROM cascaded WHERE previous_state = 'running'
        RETURNING node_run_id, executor_kind, effect_id)`);
    liveCount = `${live} - (SELECT count(*)::integer FROM cascaded)`;
  }

  const counters = `node_run_count = ${p('node_run_count', '::integer')}, live_count = ${liveCount},
                    last_seq = ${p('last_seq', '::bigint')}`;
  if (shape.run === 'insert') {
    ctes.push(`run_row AS (
        INSERT INTO ${s}.runs (run_id, state, doc, constraints, start_fingerprint, deadline_at, steps,
                               node_run_count, live_count, last_seq, started_at, ended_at, tenant_id,
                               root_node_type_id)
        VALUES (${run}, ${p('state')}, ${p('doc', '::jsonb')}, ${p('constraints', '::jsonb')},
                ${p('start_fingerprint')}, ${p('deadline_at', '::bigint')}, ${p('steps', '::integer')},
                ${p('node_run_count', '::integer')}, ${live}, ${p('last_seq', '::bigint')},
                ${p('started_at', '::timestamptz')}, ${p('ended_at', '::timestamptz')}, ${p('tenant_id')},
                ${p('root_node_type_id')})
        RETURNING 1)`);
  } else if (shape.run === 'update') {
    ctes.push(`run_row AS (
        UPDATE ${s}.runs SET state = ${p('state')}, doc = ${p('doc', '::jsonb')},
                             deadline_at = ${p('deadline_at', '::bigint')}, steps = ${p('steps', '::integer')},
                             ended_at = ${p('ended_at', '::timestamptz')}, ${counters}
         WHERE run_id = ${run} RETURNING 1)`);
  } else {
    ctes.push(`run_row AS (UPDATE ${s}.runs SET ${counters} WHERE run_id = ${run} RETURNING 1)`);
  }

  if (shape.created) {
    ctes.push(`created AS (
        INSERT INTO ${s}.node_runs (run_id, node_run_id, parent_node_run_id, state, kind, doc, depth, constraints,
                                    child_count, rounds, idempotency_key, idempotency_fingerprint,
                                    completion_fingerprint, ended_by_coordinator, assignment_token_hash,
                                    deadline_at, owner)
        SELECT ${run}, node_run_id, parent_node_run_id, state, kind, doc, depth, constraints, child_count, rounds,
               idempotency_key, idempotency_fingerprint, completion_fingerprint, ended_by_coordinator,
               assignment_token_hash, deadline_at, owner
          FROM jsonb_to_recordset(${p('created', '::jsonb')}) AS ${NODE_RECORDSET}
        RETURNING 1)`);
  }
  if (shape.updated) {
    ctes.push(`updated AS (
        UPDATE ${s}.node_runs n
           SET state = x.state, kind = x.kind, doc = x.doc, child_count = x.child_count, rounds = x.rounds,
               completion_fingerprint = x.completion_fingerprint, ended_by_coordinator = x.ended_by_coordinator,
               assignment_token_hash = x.assignment_token_hash, deadline_at = x.deadline_at,
               owner = CASE WHEN x.set_owner THEN x.owner ELSE n.owner END
          FROM jsonb_to_recordset(${p('updated', '::jsonb')}) AS ${NODE_RECORDSET}
         -- The ids again as an array, so that the rows are found by their key, not by reading the Run.
         WHERE n.run_id = ${run} AND n.node_run_id = ANY(${p('updated_ids', '::text[]')})
           AND n.node_run_id = x.node_run_id
        RETURNING 1)`);
  }
  if (shape.events) {
    ctes.push(`appended AS (
        INSERT INTO ${s}.run_events (run_id, seq, node_run_id, line)
        SELECT ${run}, seq, node_run_id, line
          FROM unnest(${p('seqs', '::bigint[]')}, ${p('event_node_run_ids', '::text[]')}, ${p('lines', '::text[]')})
               AS e(seq, node_run_id, line)
        RETURNING 1)`);
  }
  if (shape.effects) {
    ctes.push(`owed AS (
        INSERT INTO ${s}.outbox (run_id, effect_id, kind, node_run_id, executor_kind, next_attempt_at)
        SELECT ${run}, effect_id, 'cancel_execution', node_run_id, executor_kind, ${p('effects_due', '::bigint')}
          FROM unnest(${p('effect_ids', '::text[]')}, ${p('effect_node_run_ids', '::text[]')},
                      ${p('effect_kinds', '::text[]')}) AS e(effect_id, node_run_id, executor_kind)
        RETURNING 1)`);
  }

  const ended =
    shape.cascade === 'none'
      ? `'[]'::json`
      : `coalesce((SELECT json_agg(json_build_object('node_run_id', node_run_id, 'kind', executor_kind,
                                                     'effect_id', effect_id)) FROM cascade_owed), '[]'::json)`;
  const notify = shape.events ? `(SELECT pg_notify(${p('channel')}, ${p('notification')}))` : 'NULL';
  const recursive = shape.cascade === 'none' ? '' : 'RECURSIVE ';
  const text = `WITH ${recursive}${ctes.join(',\n     ')}
    SELECT ${ended} AS ended, ${notify} AS notified, (SELECT count(*) FROM run_row) AS runs`;
  const key = JSON.stringify([schema, shape]);
  const name = `rcw${createHash('sha1').update(key).digest('hex').slice(0, 16)}`;
  return { name, text, params };
}

/** What a write needs to know about the process writing it. */
export interface WriterContext {
  readonly schema: string;
  readonly instanceId: string;
  readonly now: number;
  /** Whether this process dispatches the NodeRuns it creates (it holds them until it does). */
  readonly dispatching: boolean;
  /** When an owed effect becomes due for the other processes. */
  readonly effectsDue: number;
  /** The notification channel of the schema. */
  readonly channel: string;
  /** The statement of a shape (cached by the caller). */
  readonly statement: (shape: WriteShape) => WriteStatement;
}

/** A decision's write, ready to send; `statement` is absent when the decision changes nothing. */
export interface PreparedWrite {
  readonly statement?: WriteStatement;
  readonly values: readonly unknown[];
  readonly committed: RunEvent[];
  /** Cancels the decision asked for, with the ids of their outbox rows. */
  readonly asked: EndedExecution[];
}

/** The cancels the cascade of a write owed (one row of its statement's answer). */
export function cascadeEnded(runId: string, row: WriteRow | undefined): EndedExecution[] {
  return (row?.ended ?? []).map((ended) => ({
    runId,
    nodeRunId: ended.node_run_id,
    kind: (ended.kind ?? undefined) as EndedExecution['kind'],
    effectId: ended.effect_id,
  }));
}

export interface WriteRow {
  readonly ended: readonly { node_run_id: string; kind: string | null; effect_id: string }[];
}

const NOT_OWNED: Ownership = { set: false, owner: null };
/** Held by nobody: a queued NodeRun that any dispatching process may adopt, or a finished one. */
const RELEASED: Ownership = { set: true, owner: null };

/**
 * Who holds a NodeRun after a change. A new queued NodeRun is held by the process that will
 * dispatch it; an atomic one it claims, by the process waiting for its execution; a composite it
 * claims stays with its executor, under its deadline; a finished one by nobody.
 */
function ownership(ctx: WriterContext, before: NodeRunRow | undefined, after: NodeRunRecord): Ownership {
  const held: Ownership = { set: true, owner: ctx.instanceId };
  if (!before) return after.nodeRun.state === 'queued' && ctx.dispatching ? held : RELEASED;
  const from = before.doc.state;
  const to = after.nodeRun.state;
  if (from === to) return NOT_OWNED;
  if (isTerminal(to)) return RELEASED;
  if (from === 'queued' && to === 'running') return after.nodeRun.kind === 'atomic' ? held : RELEASED;
  return NOT_OWNED;
}

/** Everything a decision writes, as the values of its write statement. */
export function prepareWrite<T>(
  ctx: WriterContext,
  runId: string,
  locked: LockedRunRow | undefined,
  loaded: ReadonlyMap<string, NodeRunRow>,
  decision: Decision<T>,
): PreparedWrite {
  const changes = decision.changes;
  const created = changes?.created ?? [];
  const updated = changes?.updated ?? [];
  const drafts = changes?.events ?? [];
  if (
    !changes ||
    (!changes.run && !changes.cascade && created.length + updated.length + drafts.length === 0)
  ) {
    return { values: [], committed: [], asked: [] };
  }
  const cascade = changes.cascade && locked ? changes.cascade : undefined;
  const lastSeq = locked ? Number(locked.last_seq) : 0;
  // Live NodeRuns before the cascade; the statement subtracts those the cascade ends.
  let live = locked?.live_count ?? 0;
  for (const record of created) if (!isTerminal(record.nodeRun.state)) live += 1;
  for (const record of updated) {
    const before = loaded.get(record.nodeRun.node_run_id);
    if (before && !isTerminal(before.doc.state) && isTerminal(record.nodeRun.state)) live -= 1;
  }
  const committed: RunEvent[] = drafts.map((draft, i) => ({ run_id: runId, seq: lastSeq + i + 1, ...draft }));
  const newLastSeq = lastSeq + committed.length;
  const asked = (decision.effects ?? []).flatMap((effect) =>
    effect.type === 'cancel_execution' ? [{ ...effect.execution, effectId: randomUUID() }] : [],
  );
  const run = changes.run;
  const shape: WriteShape = {
    run: run ? (locked ? 'update' : 'insert') : 'counters',
    cascade: cascade ? (cascade.inclusive ? 'inclusive' : 'exclusive') : 'none',
    created: created.length > 0,
    updated: updated.length > 0,
    events: committed.length > 0,
    effects: asked.length > 0,
  };
  const values: WriteValues = {
    run_id: runId,
    live,
    node_run_count: (locked?.node_run_count ?? 0) + created.length,
    last_seq: newLastSeq,
    effects_due: ctx.effectsDue,
  };
  if (cascade) {
    values.cascade_from = cascade.from;
    values.cascade_time = cascade.time;
    values.cascade_error = JSON.stringify(terminationError(cascade.reason));
  }
  if (run) {
    Object.assign(values, {
      state: run.run.state,
      doc: JSON.stringify(run.run),
      constraints: run.constraints ? JSON.stringify(run.constraints) : null,
      start_fingerprint: run.startFingerprint,
      deadline_at: run.deadlineAt ?? null,
      steps: run.steps,
      started_at: run.run.started_at ?? new Date(ctx.now).toISOString(),
      ended_at: run.run.ended_at ?? null,
      tenant_id: run.run.run_context?.tenant_id ?? null,
      // The root's node type, for listing Runs; the root is created with its Run.
      root_node_type_id:
        created.find((record) => record.nodeRun.node_run_id === run.run.root_node_run_id)?.nodeRun
          .node_type_ref.node_type_id ?? '',
    });
  }
  if (created.length > 0) {
    values.created = JSON.stringify(
      created.map((record) => nodeRunParam(record, ownership(ctx, undefined, record))),
    );
  }
  if (updated.length > 0) {
    values.updated_ids = updated.map((record) => record.nodeRun.node_run_id);
    values.updated = JSON.stringify(
      updated.map((record) =>
        nodeRunParam(record, ownership(ctx, loaded.get(record.nodeRun.node_run_id), record)),
      ),
    );
  }
  if (committed.length > 0) {
    values.seqs = committed.map((e) => e.seq);
    values.event_node_run_ids = committed.map((e) => e.node_run_id ?? null);
    values.lines = committed.map((e) => JSON.stringify(e));
    values.channel = ctx.channel;
    values.notification = `${newLastSeq} ${runId}`;
  }
  if (asked.length > 0) {
    values.effect_ids = asked.map((e) => e.effectId);
    values.effect_node_run_ids = asked.map((e) => e.nodeRunId);
    values.effect_kinds = asked.map((e) => e.kind ?? null);
  }
  const statement = ctx.statement(shape);
  return { statement, values: statement.params.map((name) => values[name] ?? null), committed, asked };
}
