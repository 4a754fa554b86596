/**
 * The durable store: PostgreSQL through node-postgres. Each decision is taken in a transaction that
 * locks its Run's row (so decisions on one Run are serialised across every instance), loads exactly
 * what the decision declared it needs, and writes the decision's records, its cascade, its events
 * with their `seq`, and the effects it owes, before committing; decisions that arrive together share
 * one transaction and one flush (see committer.ts). A commit notifies every instance (LISTEN/NOTIFY)
 * so that their event streams of that Run wake up.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import {
  committedDecision,
  type Decision,
  isTerminal,
  type Needs,
  type NodeRunRecord,
  type RunRecord,
  type RunState,
  type RunView,
} from '../../core/model.js';
import { EventHub } from '../hub.js';
import type {
  Assignment,
  CommittedDecision,
  EventPage,
  ListedRun,
  LoggedEvent,
  RunFilter,
  RunPosition,
  Store,
  StoreHealth,
} from '../store.js';
import { Coalescer } from './coalesce.js';
import { type CommitObserver, Committer } from './committer.js';
import type { Database } from './database.js';
import { PostgresListing } from './listing.js';
import { PostgresRecovery } from './recovery.js';
import { type LockedRunRow, type NodeRunRow, nodeRunRecord, type RunRow, runRecord } from './rows.js';
import { type Statement, type Statements, statementPrefix, statements } from './sql.js';
import { type WriteShape, type WriteStatement, writeStatement } from './write.js';

export interface PostgresStoreOptions {
  readonly db: Database;
  readonly schema: string;
  /** This process's name among those sharing the database (its leases carry it, made unique per start). */
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
  /**
   * Batches of decisions committed at once (each holds a connection); default 2. Fewer, larger
   * batches cost the database less per decision, and while two are in flight the next one fills.
   */
  readonly batchConcurrency?: number;
  /**
   * Whether this process dispatches the NodeRuns it creates (default true). Those of a process that
   * does not are held by nobody, so that any dispatching process takes them.
   */
  readonly dispatching?: boolean;
}

/** Runs whose last announced seq is remembered. */
const SEEN_RUNS = 10_000;
/** How long `health()` waits for its check, and how long its answer is reused. */
const HEALTH_TIMEOUT_MS = 1_000;
const HEALTH_REUSE_MS = 1_000;

export class PostgresStore implements Store {
  readonly #db: Database;
  readonly #sql: Statements;
  readonly #listing: PostgresListing;
  readonly #channel: string;
  readonly #hub: EventHub;
  readonly #instanceId: string;
  readonly #now: () => number;
  readonly #leaseTtlMs: number;
  readonly #effectGraceMs: number;
  readonly #ownsDatabase: boolean;
  readonly #dispatching: boolean;
  readonly recovery: PostgresRecovery;
  #unlisten: Promise<() => Promise<void>> | undefined;
  /** Highest seq announced per Run, for the most recently announced Runs (insertion order). */
  readonly #seen = new Map<string, number>();
  readonly #writes = new Map<string, WriteStatement>();
  readonly #schema: string;
  readonly #committer: Committer;
  readonly #nodeRuns: Coalescer<NodeRunRow>;
  readonly #runJson: Coalescer<string>;
  readonly #nodeRunJson: Coalescer<string>;
  #liveRuns: { readonly at: number; readonly count: Promise<number> } | undefined;
  #health: { readonly at: number; readonly result: Promise<StoreHealth> } | undefined;

  constructor(options: PostgresStoreOptions) {
    this.#db = options.db;
    this.#sql = statements(options.schema);
    this.#listing = new PostgresListing(this.#db.pool, options.schema, statementPrefix(options.schema));
    this.#schema = options.schema;
    // One channel per schema, as a plain identifier (PGlite's LISTEN does not quote).
    this.#channel = `${options.schema.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_events`.slice(0, 63);
    this.#hub = new EventHub(options.onListenerError);
    // Leases belong to this process, not to its name: a process restarted under the same
    // RC_INSTANCE_ID must not renew (and so keep alive) what its previous life was waiting for.
    this.#instanceId = `${options.instanceId}#${randomBytes(4).toString('hex')}`;
    this.#now = options.now ?? Date.now;
    this.#leaseTtlMs = options.leaseTtlMs ?? 30_000;
    this.#effectGraceMs = options.effectGraceMs ?? 10_000;
    this.#ownsDatabase = options.ownsDatabase ?? false;
    this.#dispatching = options.dispatching ?? true;
    this.#committer = new Committer({
      pool: this.#db.pool,
      sql: this.#sql,
      concurrency: options.batchConcurrency ?? 2,
      maxBatch: 64,
      context: () => {
        const now = this.#now();
        return {
          instanceId: this.#instanceId,
          now,
          dispatching: this.#dispatching,
          effectsDue: now + this.#effectGraceMs,
          channel: this.#channel,
          statement: (shape) => this.#writeStatement(shape),
        };
      },
      view,
      committed: (runId, result) => this.#committed(runId, result),
    });
    type Json = { id: string; json: string };
    this.#nodeRuns = this.#reads<NodeRunRow, NodeRunRow>(
      this.#sql.getNodeRun,
      (row) => row.node_run_id,
      (row) => row,
    );
    this.#runJson = this.#reads<Json, string>(
      this.#sql.runJson,
      (row) => row.id,
      (row) => row.json,
    );
    this.#nodeRunJson = this.#reads<Json, string>(
      this.#sql.nodeRunJson,
      (row) => row.id,
      (row) => row.json,
    );
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

  /** Takes this process's lease and starts listening for other instances' commits. */
  async start(): Promise<void> {
    await this.recovery.renewLeases();
    this.#unlisten ??= this.#db.listen(
      this.#channel,
      (payload) => this.#notified(payload),
      // Commits while the session was gone were not announced: every stream looks for itself.
      () => this.#hub.publishAll(),
    );
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

  /**
   * Records that streams of `runId` were woken for events up to `seq`; false if they already were
   * (or nobody listens). Remembered for the most recent Runs whether or not anyone listens, so that
   * a notification arriving late for a commit already announced wakes nobody again.
   */
  #woken(runId: string, seq: number): boolean {
    const known = this.#seen.get(runId) ?? 0;
    if (known >= seq) return false;
    this.#seen.delete(runId);
    this.#seen.set(runId, seq);
    if (this.#seen.size > SEEN_RUNS) this.#seen.delete(this.#seen.keys().next().value as string);
    return this.#hub.has(runId);
  }

  get pool(): pg.Pool {
    return this.#db.pool;
  }

  /** Registers an observer of every commit transaction's duration and conflicts (metrics). */
  observeCommits(observer: CommitObserver): void {
    this.#committer.observe(observer);
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
      return committedDecision(decision, [], []);
    }
    const declared: Needs = needs.nodeRuns ? { ...needs, nodeRuns: needs.nodeRuns.filter(storable) } : needs;
    return this.#committer.submit(runId, declared, (v) => decide(v)) as Promise<CommittedDecision<T>>;
  }

  /** After a commit, and before its caller hears of it: this instance's streams of the Run wake up. */
  #committed(runId: string, result: CommittedDecision<unknown>): void {
    // The count of live Runs follows this process's own starts and ends between refreshes.
    for (const event of result.committed) {
      if (event.type === 'run_started') this.#adjustLiveRuns(1);
      else if (event.type === 'run_completed') this.#adjustLiveRuns(-1);
    }
    const last = result.committed.at(-1);
    if (last && this.#woken(runId, last.seq)) this.#hub.publish(runId);
  }

  #writeStatement(shape: WriteShape): WriteStatement {
    const key = `${shape.run}/${+shape.created}${+shape.updated}${+shape.events}${+shape.effects}`;
    let statement = this.#writes.get(key);
    if (!statement) {
      statement = writeStatement(this.#schema, shape);
      this.#writes.set(key, statement);
    }
    return statement;
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    if (!storable(runId)) return undefined;
    const row = (await this.#db.pool.query<RunRow>(this.#sql.getRun, [runId])).rows[0];
    return row && runRecord(row);
  }

  async getNodeRun(nodeRunId: string): Promise<NodeRunRecord | undefined> {
    if (!storable(nodeRunId)) return undefined;
    const row = await this.#nodeRuns.get(nodeRunId);
    return row && nodeRunRecord(row);
  }

  async runJson(runId: string): Promise<string | undefined> {
    if (!storable(runId)) return undefined;
    return this.#runJson.get(runId);
  }

  async nodeRunJson(nodeRunId: string): Promise<string | undefined> {
    if (!storable(nodeRunId)) return undefined;
    return this.#nodeRunJson.get(nodeRunId);
  }

  /** Point reads of one kind, coalesced (see coalesce.ts). */
  #reads<R extends pg.QueryResultRow, V>(
    statement: Statement,
    key: (row: R) => string,
    value: (row: R) => V,
  ) {
    return new Coalescer<V>(
      async (ids) => {
        const { rows } = await this.#db.pool.query<R>(statement, [ids]);
        return new Map(rows.map((row) => [key(row), value(row)]));
      },
      { maxInFlight: 4, maxBatch: 500 },
    );
  }

  async locate(nodeRunId: string): Promise<string | undefined> {
    if (!storable(nodeRunId)) return undefined;
    return (await this.#db.pool.query<{ run_id: string }>(this.#sql.locate, [nodeRunId])).rows[0]?.run_id;
  }

  #adjustLiveRuns(delta: number): void {
    const counted = this.#liveRuns;
    if (counted) this.#liveRuns = { at: counted.at, count: counted.count.then((count) => count + delta) };
  }

  /**
   * Counted at most once a second (and followed between counts by this process's own starts and ends): the count serves a cap on live Runs, where being a second late
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

  listRuns(filter: RunFilter, after: RunPosition | undefined, limit: number): Promise<ListedRun[]> {
    return this.#listing.listRuns(filter, after, limit);
  }

  countRuns(filter: RunFilter): Promise<Record<RunState, number>> {
    return this.#listing.countRuns(filter);
  }

  async listNodeRuns(
    runId: string,
    options: { readonly after?: string; readonly limit: number; readonly under?: string },
  ): Promise<string[] | undefined> {
    if (!storable(runId)) return undefined;
    return this.#listing.listNodeRuns(runId, options);
  }

  async effectDone(runId: string, effectId: string): Promise<void> {
    await this.#db.pool.query(this.#sql.effectDone, [runId, effectId]);
  }

  subscribe(runId: string, listener: () => void): () => void {
    return this.#hub.subscribe(runId, listener);
  }

  /**
   * Down while the LISTEN session is lost (known without a query); otherwise the answer of one
   * `SELECT 1` through the pool, bounded by HEALTH_TIMEOUT_MS and shared by every caller for
   * HEALTH_REUSE_MS, so that health requests cost the database at most one query a second.
   */
  async health(): Promise<StoreHealth> {
    if (this.#db.listenState?.() === 'lost') {
      return {
        ok: false,
        message: 'The LISTEN session to PostgreSQL was lost; it is being opened again',
        details: { kind: 'postgresql', listen: 'lost' },
      };
    }
    const now = Date.now();
    if (!this.#health || now - this.#health.at >= HEALTH_REUSE_MS) {
      this.#health = { at: now, result: this.#check() };
    }
    return this.#health.result;
  }

  #check(): Promise<StoreHealth> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<StoreHealth>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            ok: false,
            message: `PostgreSQL did not answer within ${HEALTH_TIMEOUT_MS} ms`,
            details: { kind: 'postgresql', timeout_ms: HEALTH_TIMEOUT_MS },
          }),
        HEALTH_TIMEOUT_MS,
      );
      timer.unref();
    });
    const answered = this.#db.pool.query('SELECT 1').then(
      (): StoreHealth => ({
        ok: true,
        details: { kind: 'postgresql', latency_ms: Math.round(performance.now() - started) },
      }),
      (error: unknown): StoreHealth => {
        // The code only (ECONNREFUSED, 57P01, ...): messages may name the server's address.
        const code = (error as { code?: unknown }).code;
        return {
          ok: false,
          message: 'PostgreSQL could not be queried',
          details: { kind: 'postgresql', cause: typeof code === 'string' ? code : 'query_failed' },
        };
      },
    );
    return Promise.race([answered, late]).finally(() => clearTimeout(timer));
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
