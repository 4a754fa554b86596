/**
 * The durable store: PostgreSQL through node-postgres. Each decision is one transaction that locks
 * its Run's row (so decisions on one Run are serialised across every instance), loads exactly what
 * the decision declared it needs, and writes the decision's records, its cascade, its events with
 * their `seq`, and the effects it owes, before committing. A commit notifies every instance
 * (LISTEN/NOTIFY) so that their event streams of that Run wake up.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { terminationError } from '../../core/cascade.js';
import {
  type Decision,
  type EndedExecution,
  isTerminal,
  type Needs,
  type NodeRunRecord,
  type RunEvent,
  type RunRecord,
  type RunView,
} from '../../core/model.js';
import { EventHub } from '../../events/hub.js';
import type { Assignment, CommittedDecision, EventPage, LoggedEvent, Store } from '../store.js';
import type { Database } from './database.js';
import { PostgresRecovery } from './recovery.js';
import {
  type LockedRunRow,
  type NodeRunRow,
  nodeRunParam,
  nodeRunRecord,
  type Ownership,
  type RunRow,
  runRecord,
} from './rows.js';
import { beginDecision, type Statements, statements } from './sql.js';
import { type WriteShape, type WriteStatement, type WriteValues, writeStatement } from './write.js';

export interface PostgresStoreOptions {
  readonly db: Database;
  readonly schema: string;
  /** This process, as the owner of the NodeRuns it dispatches and executes. */
  readonly instanceId: string;
  /** Epoch milliseconds, for leases and retries. */
  readonly now?: () => number;
  /** How long an instance holds a NodeRun without renewing its lease. */
  readonly leaseTtlMs?: number;
  /** How long an owed effect waits for the instance that committed it before others retry it. */
  readonly effectGraceMs?: number;
  readonly onListenerError?: (error: unknown) => void;
  /** Close the database with the store (when the store opened it). */
  readonly ownsDatabase?: boolean;
}

/** Errors after which the whole decision is taken again: a concurrent first insert, a deadlock. */
const RETRYABLE = new Set(['23505', '40001', '40P01']);
const MAX_ATTEMPTS = 5;

const NOT_OWNED: Ownership = { set: false, owner: null, leaseExpiresAt: null };
const RELEASED: Ownership = { set: true, owner: null, leaseExpiresAt: null };
/** A queued NodeRun nobody holds: its lease ended long ago, so any instance adopts it at once. */
const UNHELD: Ownership = { set: true, owner: null, leaseExpiresAt: 0 };

export class PostgresStore implements Store {
  readonly #db: Database;
  readonly #sql: Statements;
  readonly #channel: string;
  readonly #hub: EventHub;
  readonly #instanceId: string;
  readonly #now: () => number;
  readonly #leaseTtlMs: number;
  readonly #effectGraceMs: number;
  readonly #ownsDatabase: boolean;
  readonly recovery: PostgresRecovery;
  #unlisten: Promise<() => Promise<void>> | undefined;
  /** Highest seq whose commit woke the streams of a Run (only for Runs with subscribers). */
  readonly #seen = new Map<string, number>();
  readonly #writes = new Map<string, WriteStatement>();
  readonly #schema: string;
  #liveRuns: { readonly at: number; readonly count: Promise<number> } | undefined;

  constructor(options: PostgresStoreOptions) {
    this.#db = options.db;
    this.#sql = statements(options.schema);
    this.#schema = options.schema;
    // One channel per schema, as a plain identifier (PGlite's LISTEN does not quote).
    this.#channel = `${options.schema.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_events`.slice(0, 63);
    this.#hub = new EventHub(options.onListenerError);
    this.#instanceId = options.instanceId;
    this.#now = options.now ?? Date.now;
    this.#leaseTtlMs = options.leaseTtlMs ?? 30_000;
    this.#effectGraceMs = options.effectGraceMs ?? 10_000;
    this.#ownsDatabase = options.ownsDatabase ?? false;
    this.recovery = new PostgresRecovery({
      pool: this.#db.pool,
      sql: this.#sql,
      instanceId: this.#instanceId,
      now: this.#now,
      leaseTtlMs: this.#leaseTtlMs,
      retryMs: this.#effectGraceMs,
      maxRetryMs: 300_000,
    });
  }

  /** Starts listening for other instances' commits. */
  async start(): Promise<void> {
    this.#unlisten ??= this.#db.listen(this.#channel, (payload) => this.#notified(payload));
    await this.#unlisten;
  }

  /**
   * A commit's notification (`<last seq> <run id>`), from any instance. Streams are woken once per
   * commit: a commit of this instance already woke them when it returned.
   */
  #notified(payload: string): void {
    const gap = payload.indexOf(' ');
    const seq = Number(payload.slice(0, gap));
    const runId = payload.slice(gap + 1);
    if (this.#woken(runId, seq)) this.#hub.publish(runId);
  }

  /** Records that streams of `runId` were woken for events up to `seq`; false if they already were. */
  #woken(runId: string, seq: number): boolean {
    if (!this.#hub.has(runId)) {
      this.#seen.delete(runId);
      return false;
    }
    if ((this.#seen.get(runId) ?? 0) >= seq) return false;
    this.#seen.set(runId, seq);
    return true;
  }

  get pool(): pg.Pool {
    return this.#db.pool;
  }

  async mutate<T>(
    runId: string,
    needs: Needs,
    decide: (view: RunView) => Decision<T>,
  ): Promise<CommittedDecision<T>> {
    if (!storable(runId)) {
      // No Run can have this id; the decision sees an empty Run (and must not create one).
      const decision = decide(view(runId, undefined, new Map(), needs));
      if (decision.changes) throw new Error('a Run id holding U+0000 cannot be stored');
      return { ...decision, committed: [], ended: [] };
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#transaction(runId, needs, decide);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (attempt >= MAX_ATTEMPTS || typeof code !== 'string' || !RETRYABLE.has(code)) throw error;
      }
    }
  }

  async #transaction<T>(
    runId: string,
    needs: Needs,
    decide: (view: RunView) => Decision<T>,
  ): Promise<CommittedDecision<T>> {
    const client = await this.#db.pool.connect();
    let open = false;
    let broken: Error | undefined;
    try {
      const ids = (needs.nodeRuns ?? []).filter(storable);
      open = true;
      const results = (await client.query(
        beginDecision(this.#schema, runId, ids, needs.idempotency),
      )) as unknown as pg.QueryResult[];
      const locked = results[1]?.rows[0] as LockedRunRow | undefined;
      const loaded = new Map<string, NodeRunRow>();
      for (const row of (results[2]?.rows ?? []) as NodeRunRow[]) loaded.set(row.node_run_id, row);
      const decision = decide(view(runId, locked, loaded, needs));
      const written = await this.#write(client, runId, locked, loaded, decision);
      await client.query('COMMIT');
      open = false;
      const last = written.committed.at(-1);
      if (last && this.#woken(runId, last.seq)) this.#hub.publish(runId);
      return { ...decision, ...written };
    } catch (error) {
      if (open) await client.query('ROLLBACK').catch((rollback: Error) => (broken = rollback));
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** Writes a decision's changes; returns what was committed. */
  async #write<T>(
    client: pg.PoolClient,
    runId: string,
    locked: LockedRunRow | undefined,
    loaded: Map<string, NodeRunRow>,
    decision: Decision<T>,
  ): Promise<{ committed: RunEvent[]; ended: EndedExecution[] }> {
    const changes = decision.changes;
    const created = changes?.created ?? [];
    const updated = changes?.updated ?? [];
    const drafts = changes?.events ?? [];
    const nothing = { committed: [], ended: [] };
    if (
      !changes ||
      (!changes.run && !changes.cascade && created.length + updated.length + drafts.length === 0)
    )
      return nothing;
    const now = this.#now();
    const cascade = changes.cascade && locked ? changes.cascade : undefined;
    const lastSeq = locked ? Number(locked.last_seq) : 0;
    // Live NodeRuns before the cascade; the statement subtracts those the cascade ends.
    let live = locked?.live_count ?? 0;
    for (const record of created) if (!isTerminal(record.nodeRun.state)) live += 1;
    for (const record of updated) {
      const before = loaded.get(record.nodeRun.node_run_id);
      if (before && !isTerminal(before.doc.state) && isTerminal(record.nodeRun.state)) live -= 1;
    }
    const committed: RunEvent[] = drafts.map((draft, i) => ({
      run_id: runId,
      seq: lastSeq + i + 1,
      ...draft,
    }));
    const newLastSeq = lastSeq + committed.length;
    const lease = now + this.#leaseTtlMs;
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
      effects_due: now + this.#effectGraceMs,
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
        started_at: run.run.started_at ?? new Date(now).toISOString(),
        ended_at: run.run.ended_at ?? null,
        tenant_id: run.run.run_context?.tenant_id ?? null,
        // The root's node type, for listing Runs; the root is created with its Run.
        root_node_type_id:
          created.find((record) => record.nodeRun.node_run_id === run.run.root_node_run_id)?.nodeRun
            .node_type_ref.node_type_id ?? '',
      });
    }
    if (created.length > 0) {
      const owned: Ownership = { set: true, owner: this.#instanceId, leaseExpiresAt: lease };
      values.created = JSON.stringify(
        created.map((record) => nodeRunParam(record, record.nodeRun.state === 'queued' ? owned : RELEASED)),
      );
    }
    if (updated.length > 0) {
      values.updated = JSON.stringify(
        updated.map((record) =>
          nodeRunParam(record, this.#ownership(loaded.get(record.nodeRun.node_run_id), record, lease)),
        ),
      );
    }
    if (committed.length > 0) {
      values.seqs = committed.map((e) => e.seq);
      values.event_node_run_ids = committed.map((e) => e.node_run_id ?? null);
      values.lines = committed.map((e) => JSON.stringify(e));
      values.channel = this.#channel;
      values.notification = `${newLastSeq} ${runId}`;
    }
    if (asked.length > 0) {
      values.effect_ids = asked.map((e) => e.effectId);
      values.effect_node_run_ids = asked.map((e) => e.nodeRunId);
      values.effect_kinds = asked.map((e) => e.kind ?? null);
    }
    const statement = this.#writeStatement(shape);
    const { rows } = await client.query<{
      ended: { node_run_id: string; kind: string | null; effect_id: string }[];
    }>(
      statement,
      statement.params.map((name) => values[name] ?? null),
    );
    const ended: EndedExecution[] = (rows[0]?.ended ?? []).map((row) => ({
      runId,
      nodeRunId: row.node_run_id,
      kind: (row.kind ?? undefined) as EndedExecution['kind'],
      effectId: row.effect_id,
    }));
    return { committed, ended: [...ended, ...asked] };
  }

  #writeStatement(shape: WriteShape): WriteStatement {
    const key = `${shape.run}/${shape.cascade}/${+shape.created}${+shape.updated}${+shape.events}${+shape.effects}`;
    let statement = this.#writes.get(key);
    if (!statement) {
      statement = writeStatement(this.#schema, shape);
      this.#writes.set(key, statement);
    }
    return statement;
  }

  /** Hands a NodeRun to this instance when it starts executing it; releases it when it ends. */
  #ownership(before: NodeRunRow | undefined, after: NodeRunRecord, lease: number): Ownership {
    const from = before?.doc.state;
    const to = after.nodeRun.state;
    if (from === to) return NOT_OWNED;
    if (isTerminal(to)) return RELEASED;
    if (from === 'queued' && to === 'running') {
      // An atomic execution is held by the instance waiting for its result; a composite stays with
      // its executor, under its deadline.
      return after.nodeRun.kind === 'atomic'
        ? { set: true, owner: this.#instanceId, leaseExpiresAt: lease }
        : RELEASED;
    }
    return to === 'queued' ? UNHELD : NOT_OWNED;
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    if (!storable(runId)) return undefined;
    const row = (await this.#db.pool.query<RunRow>(this.#sql.getRun, [runId])).rows[0];
    return row && runRecord(row);
  }

  async getNodeRun(nodeRunId: string): Promise<NodeRunRecord | undefined> {
    if (!storable(nodeRunId)) return undefined;
    const row = (await this.#db.pool.query<NodeRunRow>(this.#sql.getNodeRun, [nodeRunId])).rows[0];
    return row && nodeRunRecord(row);
  }

  async runJson(runId: string): Promise<string | undefined> {
    if (!storable(runId)) return undefined;
    return (await this.#db.pool.query<{ json: string }>(this.#sql.runJson, [runId])).rows[0]?.json;
  }

  async nodeRunJson(nodeRunId: string): Promise<string | undefined> {
    if (!storable(nodeRunId)) return undefined;
    return (await this.#db.pool.query<{ json: string }>(this.#sql.nodeRunJson, [nodeRunId])).rows[0]?.json;
  }

  async locate(nodeRunId: string): Promise<string | undefined> {
    if (!storable(nodeRunId)) return undefined;
    return (await this.#db.pool.query<{ run_id: string }>(this.#sql.locate, [nodeRunId])).rows[0]?.run_id;
  }

  /**
   * Counted at most once a second: the count serves a cap on live Runs, where being a second late
   * matters less than counting every unfinished Run on every start.
   */
  async countLiveRuns(options: { fresh?: boolean } = {}): Promise<number> {
    const now = Date.now();
    if (options.fresh || !this.#liveRuns || now - this.#liveRuns.at >= 1_000) {
      const counting = this.#db.pool
        .query<{ count: number }>(this.#sql.countLiveRuns)
        .then((result) => result.rows[0]?.count ?? 0);
      this.#liveRuns = { at: now, count: counting };
      counting.catch(() => {
        this.#liveRuns = undefined;
      });
    }
    return this.#liveRuns.count;
  }

  async findAssignment(tokenHash: string): Promise<Assignment | undefined> {
    const row = (
      await this.#db.pool.query<{ run_id: string; node_run_id: string }>(this.#sql.findAssignment, [
        tokenHash,
      ])
    ).rows[0];
    return row && { runId: row.run_id, nodeRunId: row.node_run_id };
  }

  async events(runId: string, afterSeq: number, limit: number): Promise<EventPage | undefined> {
    if (!storable(runId)) return undefined;
    const { rows } = await this.#db.pool.query<{
      last_seq: string;
      state: string;
      seq: string | null;
      node_run_id: string | null;
      parent_node_run_id: string | null;
      line: string | null;
    }>(this.#sql.events, [runId, afterSeq, limit]);
    const first = rows[0];
    if (!first) return undefined;
    const events: LoggedEvent[] = [];
    for (const row of rows) {
      if (row.seq === null || row.line === null) continue;
      events.push({
        seq: Number(row.seq),
        nodeRunId: row.node_run_id ?? undefined,
        parentId: row.parent_node_run_id ?? undefined,
        line: row.line,
      });
    }
    return { events, lastSeq: Number(first.last_seq), finished: isTerminal(first.state) };
  }

  async effectDone(runId: string, effectId: string): Promise<void> {
    await this.#db.pool.query(this.#sql.effectDone, [runId, effectId]);
  }

  subscribe(runId: string, listener: () => void): () => void {
    return this.#hub.subscribe(runId, listener);
  }

  async close(): Promise<void> {
    const unlisten = await this.#unlisten?.catch(() => undefined);
    await unlisten?.().catch(() => {});
    if (this.#ownsDatabase) await this.#db.close();
  }
}

/**
 * PostgreSQL text cannot hold U+0000, so an id with one (possible in a URL, never in a body) names
 * nothing: it is not sent to the database at all.
 */
const storable = (id: string) => !id.includes('\u0000');

/** The decision's view: the locked Run row and the NodeRuns loaded for its needs. */
function view(
  runId: string,
  locked: LockedRunRow | undefined,
  loaded: Map<string, NodeRunRow>,
  needs: Needs,
): RunView {
  const declared = (id: string) => {
    if (!needs.nodeRuns?.includes(id)) throw new Error(`decision read NodeRun ${id} without declaring it`);
  };
  const records = new Map<string, NodeRunRecord>();
  const own = (row: NodeRunRow) => {
    let record = records.get(row.node_run_id);
    if (!record) {
      record = nodeRunRecord(row);
      records.set(row.node_run_id, record);
    }
    return record;
  };
  return {
    runId,
    record: locked && runRecord(locked),
    nodeRun(id) {
      declared(id);
      const row = loaded.get(id);
      return row && row.run_id === runId ? own(row) : undefined;
    },
    locate(id) {
      declared(id);
      return loaded.get(id)?.run_id;
    },
    nodeRunCount: () => locked?.node_run_count ?? 0,
    liveNodeRunCount: () => locked?.live_count ?? 0,
    idempotent(parentId, key) {
      const keys = needs.idempotency;
      if (keys?.parentId !== parentId || !keys.keys.includes(key))
        throw new Error(`decision read idempotency key ${key} without declaring it`);
      for (const row of loaded.values()) {
        if (row.run_id !== runId || row.idempotency_key !== key) continue;
        if (row.doc.parent_node_run_id === parentId) return own(row);
      }
      return undefined;
    },
  };
}
