/**
 * A decision's whole write as ONE statement (data-modifying CTEs): the Run's row, new and changed
 * NodeRuns (those its cascade ended among them), the events with their seq, the executor cancels it
 * owes, and the notification to every instance. The text depends on which parts a decision has (its
 * shape); each shape is a named statement, planned once per connection.
 *
 * Documents (the Run and NodeRuns as served) are stored as `json`, which keeps their text exactly as
 * written: `jsonb` would print a number such as 1e308 as 309 digits, and reorder keys. So nothing in
 * SQL rewrites a document: a cascade's ended NodeRuns are built here, as the memory store builds them.
 */
import { createHash, randomUUID } from 'node:crypto';
import { endByCoordinator } from '../../core/cascade.js';
import {
  committedEvent,
  type Decision,
  type EndedExecution,
  isTerminal,
  type NodeRunRecord,
  type RunEvent,
} from '../../core/model.js';
import { type LockedRunRow, type NodeRunRow, nodeRunRecord } from './rows.js';
import { quoteIdent, type Statement } from './sql.js';

export interface WriteShape {
  readonly run: 'insert' | 'update' | 'counters';
  readonly created: boolean;
  readonly updated: boolean;
  readonly events: boolean;
  readonly effects: boolean;
}

/** Values for the parts a shape has, by name; the statement says in which order they are bound. */
export type WriteValues = Record<string, unknown>;

export interface WriteStatement extends Statement {
  readonly params: readonly string[];
}

/**
 * NodeRun rows as ONE json parameter (an array of row objects), read with json_to_recordset: the
 * `doc` of each row is a json value whose text is kept exactly as written. One parameter costs the
 * driver one string instead of an escaped array literal per column.
 */
const NODE_RECORDSET = `x(node_run_id text, parent_node_run_id text, state text, kind text, doc json,
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
  const counters = `node_run_count = ${p('node_run_count', '::integer')}, live_count = ${p('live', '::integer')},
                    last_seq = ${p('last_seq', '::bigint')}`;
  if (shape.run === 'insert') {
    ctes.push(`run_row AS (
        INSERT INTO ${s}.runs (run_id, state, doc, constraints, start_fingerprint, deadline_at, steps,
                               node_run_count, live_count, last_seq, started_at, ended_at, tenant_id,
                               root_node_type_id)
        VALUES (${run}, ${p('state')}, ${p('doc', '::json')}, ${p('constraints', '::jsonb')},
                ${p('start_fingerprint')}, ${p('deadline_at', '::bigint')}, ${p('steps', '::integer')},
                ${p('node_run_count', '::integer')}, ${p('live', '::integer')}, ${p('last_seq', '::bigint')},
                ${p('started_at', '::timestamptz')}, ${p('ended_at', '::timestamptz')}, ${p('tenant_id')},
                ${p('root_node_type_id')})
        RETURNING 1)`);
  } else if (shape.run === 'update') {
    ctes.push(`run_row AS (
        UPDATE ${s}.runs SET state = ${p('state')}, doc = coalesce(${p('doc', '::json')}, doc),
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
        SELECT ${run}, node_run_id, parent_node_run_id, state, kind, doc::json, depth, constraints::jsonb,
               child_count, rounds, idempotency_key, idempotency_fingerprint, completion_fingerprint,
               ended_by_coordinator, assignment_token_hash, deadline_at, owner
          FROM json_to_recordset(${p('created', '::json')}) AS ${NODE_RECORDSET}
        RETURNING 1)`);
  }
  if (shape.updated) {
    ctes.push(`updated AS (
        UPDATE ${s}.node_runs n
           SET state = x.state, kind = x.kind, doc = coalesce(x.doc, n.doc), child_count = x.child_count,
               rounds = x.rounds,
               completion_fingerprint = x.completion_fingerprint, ended_by_coordinator = x.ended_by_coordinator,
               assignment_token_hash = x.assignment_token_hash, deadline_at = x.deadline_at,
               owner = CASE WHEN x.set_owner THEN x.owner ELSE n.owner END
          FROM json_to_recordset(${p('updated', '::json')}) AS ${NODE_RECORDSET}
         -- By key: the ids again as a plain array, so that the rows are looked up, not joined to the Run.
         WHERE n.run_id = ${run} AND n.node_run_id = ANY(${p('updated_ids', '::text[]')})
           AND n.node_run_id = x.node_run_id
        RETURNING 1)`);
  }
  if (shape.events) {
    ctes.push(`appended AS (
        INSERT INTO ${s}.run_events (run_id, seq, node_run_id, line)
        -- Each event is one element of a json array; its text is the line, exactly as written.
        SELECT ${run}, (value ->> 'seq')::bigint, value ->> 'node_run_id', value::text
          FROM json_array_elements(${p('events', '::json')})
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
  const notify = shape.events ? `(SELECT pg_notify(${p('channel')}, ${p('notification')}))` : 'NULL';
  const text = `WITH ${ctes.join(',\n     ')}
    SELECT ${notify} AS notified, (SELECT count(*) FROM run_row) AS runs`;
  const key = JSON.stringify([schema, shape]);
  const name = `rcw${createHash('sha1').update(key).digest('hex').slice(0, 16)}`;
  return { name, text, params };
}

/** What a write needs to know about the process writing it. */
export interface WriterContext {
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
  /** Executions to tell to stop (the cascade's and those the decision asked for), with their outbox ids. */
  readonly ended: EndedExecution[];
  /** The Run's counters after the write. */
  readonly counters: { readonly nodeRunCount: number; readonly live: number; readonly lastSeq: number };
  /** Every NodeRun record the write creates or changes (those its cascade ended included). */
  readonly records: readonly NodeRunRecord[];
}

/** Who holds a NodeRun after a change: set on the transitions that hand it to or take it from a process. */
interface Ownership {
  readonly set: boolean;
  readonly owner: string | null;
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

/**
 * NodeRun records as the json array `NODE_RECORDSET` reads: the columns of each record's row, those
 * the row keeps only inside its document, and its ownership. A document that did not change is sent
 * as null. Each element is one literal in the recordset's column order (a row spread and then
 * extended was copied generically and grown property by property, for every NodeRun written).
 */
function nodeRowsJson(
  records: readonly { record: NodeRunRecord; ownership: Ownership }[],
  before?: ReadonlyMap<string, NodeRunRow>,
): string {
  return JSON.stringify(
    records.map(({ record, ownership }) => {
      const { nodeRun } = record;
      return {
        node_run_id: nodeRun.node_run_id,
        parent_node_run_id: nodeRun.parent_node_run_id ?? null,
        state: nodeRun.state,
        kind: nodeRun.kind ?? null,
        doc: before?.get(nodeRun.node_run_id)?.doc === nodeRun ? null : nodeRun,
        depth: record.depth,
        constraints: record.constraints ?? null,
        child_count: record.childCount,
        rounds: record.rounds,
        idempotency_key: record.idempotency?.key ?? null,
        idempotency_fingerprint: record.idempotency?.fingerprint ?? null,
        completion_fingerprint: record.completionFingerprint ?? null,
        ended_by_coordinator: record.endedByCoordinator,
        assignment_token_hash: record.assignmentTokenHash ?? null,
        deadline_at: record.deadlineAt ?? null,
        set_owner: ownership.set,
        owner: ownership.owner,
      };
    }),
  );
}

/**
 * Everything a decision writes, as the values of its write statement. `cascaded` holds the rows its
 * cascade ends (the unfinished subtree, read in the same transaction).
 */
export function prepareWrite<T>(
  ctx: WriterContext,
  runId: string,
  locked: LockedRunRow | undefined,
  loaded: ReadonlyMap<string, NodeRunRow>,
  decision: Decision<T>,
  cascaded: readonly NodeRunRow[] = [],
): PreparedWrite {
  const changes = decision.changes;
  const created = changes?.created ?? [];
  const drafts = changes?.events ?? [];
  const cascade = changes?.cascade;
  const ended = cascade
    ? cascaded.map((row) => ({
        row,
        record: endByCoordinator(nodeRunRecord(row), cascade.reason, cascade.time),
      }))
    : [];
  const updated = [
    ...(changes?.updated ?? []).map((record) => ({
      record,
      ownership: ownership(ctx, loaded.get(record.nodeRun.node_run_id), record),
    })),
    ...ended.map(({ record }) => ({ record, ownership: RELEASED })),
  ];
  if (!changes || (!changes.run && created.length + updated.length + drafts.length === 0)) {
    const counters = {
      nodeRunCount: locked?.node_run_count ?? 0,
      live: locked?.live_count ?? 0,
      lastSeq: locked ? Number(locked.last_seq) : 0,
    };
    return { values: [], committed: [], ended: [], counters, records: [] };
  }
  const lastSeq = locked ? Number(locked.last_seq) : 0;
  let live = (locked?.live_count ?? 0) - ended.length;
  for (const record of created) if (!isTerminal(record.nodeRun.state)) live += 1;
  for (const record of changes.updated ?? []) {
    const before = loaded.get(record.nodeRun.node_run_id);
    if (before && !isTerminal(before.doc.state) && isTerminal(record.nodeRun.state)) live -= 1;
  }
  const committed: RunEvent[] = drafts.map((draft, i) => committedEvent(runId, lastSeq + i + 1, draft));
  const newLastSeq = lastSeq + committed.length;
  const stops: EndedExecution[] = [
    ...ended
      .filter(({ row }) => row.doc.state === 'running')
      .map(({ row }) => ({ runId, nodeRunId: row.node_run_id, kind: row.doc.kind })),
    ...(decision.effects ?? []).flatMap((effect) =>
      effect.type === 'cancel_execution' ? [effect.execution] : [],
    ),
  ].map((execution) => ({ ...execution, effectId: randomUUID() }));
  const run = changes.run;
  const shape: WriteShape = {
    run: run ? (locked ? 'update' : 'insert') : 'counters',
    created: created.length > 0,
    updated: updated.length > 0,
    events: committed.length > 0,
    effects: stops.length > 0,
  };
  const values: WriteValues = {
    run_id: runId,
    live,
    node_run_count: (locked?.node_run_count ?? 0) + created.length,
    last_seq: newLastSeq,
    effects_due: ctx.effectsDue,
  };
  if (run) {
    Object.assign(values, {
      state: run.run.state,
      // Unchanged (a claim counting a step): not sent, not rewritten.
      doc: locked?.doc === run.run ? null : JSON.stringify(run.run),
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
    values.created = nodeRowsJson(
      created.map((record) => ({ record, ownership: ownership(ctx, undefined, record) })),
    );
  }
  if (updated.length > 0) {
    values.updated_ids = updated.map(({ record }) => record.nodeRun.node_run_id);
    values.updated = nodeRowsJson(updated, loaded);
  }
  if (committed.length > 0) {
    values.events = JSON.stringify(committed);
    values.channel = ctx.channel;
    values.notification = `${newLastSeq} ${runId}`;
  }
  if (stops.length > 0) {
    values.effect_ids = stops.map((e) => e.effectId);
    values.effect_node_run_ids = stops.map((e) => e.nodeRunId);
    values.effect_kinds = stops.map((e) => e.kind ?? null);
  }
  const statement = ctx.statement(shape);
  return {
    statement,
    values: statement.params.map((name) => values[name] ?? null),
    committed,
    ended: stops,
    counters: { nodeRunCount: values.node_run_count as number, live, lastSeq: newLastSeq },
    records: [...created, ...updated.map(({ record }) => record)],
  };
}
