/**
 * Commits decisions in batches (group commit). Decisions that arrive while earlier ones are being
 * committed wait together and then go out as ONE transaction: BEGIN, the lock of all their Runs and
 * the reads they need are sent back to back; each is decided in arrival order; their writes follow
 * one another on the connection (pipelined); and one COMMIT (one flush of the log) makes them all
 * durable. Several decisions on one Run may share a batch: each is decided against the Run as the
 * ones before it in the batch left it, so decisions on a Run still take effect one after the other,
 * in the order they arrived, and a busy Run is no longer limited to one commit per flush. A Run is in
 * at most one batch at a time. Under no load a batch is a single decision.
 *
 * If the database refuses a batch (a first insert racing another instance's, a deadlock), nothing of
 * it is committed and every decision in it is taken again alone, with retries.
 */
import type pg from 'pg';
import {
  committedDecision,
  type Decision,
  type Needs,
  type RunRecord,
  type RunView,
} from '../../core/model.js';
import type { CommittedDecision } from '../store.js';
import { type LockedRunRow, type NodeRunRow, nodeRunRow } from './rows.js';
import type { Statements } from './sql.js';
import { type PreparedWrite, prepareWrite, type WriterContext } from './write.js';

export interface Pending {
  readonly runId: string;
  readonly needs: Needs;
  readonly decide: (view: RunView) => Decision<unknown>;
  readonly resolve: (committed: CommittedDecision<unknown>) => void;
  readonly reject: (error: unknown) => void;
}

export interface CommitterOptions {
  readonly pool: pg.Pool;
  readonly sql: Statements;
  /** Batches in flight at once (each holds one connection until it commits). */
  readonly concurrency: number;
  /** Decisions per batch at most. */
  readonly maxBatch: number;
  readonly context: () => WriterContext;
  readonly view: (
    runId: string,
    locked: LockedRunRow | undefined,
    loaded: Map<string, NodeRunRow>,
    needs: Needs,
  ) => RunView;
  /** Called for each decision once it is durable (before its caller hears of it). */
  readonly committed: (runId: string, result: CommittedDecision<unknown>) => void;
}

/** Told of each transaction the committer ran (metrics). */
export interface CommitObserver {
  /** A transaction committed, after this many seconds from taking a connection to COMMIT's answer. */
  committed(seconds: number): void;
  /** The database refused a transaction with a retryable SQLSTATE (23505, 40001, 40P01): it is taken again. */
  conflicted(code: string): void;
}

/** Errors after which a decision is simply taken again: a concurrent first insert, a deadlock. */
const RETRYABLE = new Set(['23505', '40001', '40P01']);
const MAX_ATTEMPTS = 5;

export class Committer {
  readonly #options: CommitterOptions;
  readonly #queue: Pending[] = [];
  /** Runs in a batch being committed. */
  readonly #busy = new Set<string>();
  #inFlight = 0;
  #drained: (() => void)[] = [];
  readonly #observers: CommitObserver[] = [];

  constructor(options: CommitterOptions) {
    this.#options = options;
  }

  submit<T>(
    runId: string,
    needs: Needs,
    decide: (view: RunView) => Decision<T>,
  ): Promise<CommittedDecision<T>> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ runId, needs, decide, resolve: resolve as Pending['resolve'], reject });
      this.#pump();
    });
  }

  /** Registers an observer of every transaction's duration and of its conflicts. */
  observe(observer: CommitObserver): void {
    this.#observers.push(observer);
  }

  /** Resolves once nothing is waiting or being committed. */
  idle(): Promise<void> {
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  #pump(): void {
    while (this.#inFlight < this.#options.concurrency) {
      const batch = this.#take();
      if (batch.length === 0) break;
      this.#inFlight++;
      for (const item of batch) this.#busy.add(item.runId);
      this.#commit(batch)
        // A batch of one that the database refused is taken again alone, like the others.
        .catch(() => batch)
        .then((refused) => this.#alone(refused))
        .finally(() => {
          for (const item of batch) this.#busy.delete(item.runId);
          this.#inFlight--;
          this.#pump();
        });
    }
    if (this.#inFlight === 0 && this.#queue.length === 0)
      for (const resolve of this.#drained.splice(0)) resolve();
  }

  /** Waiting decisions in arrival order, but none of a Run that another batch is committing. */
  #take(): Pending[] {
    const batch: Pending[] = [];
    const waiting: Pending[] = [];
    for (const item of this.#queue) {
      if (batch.length < this.#options.maxBatch && !this.#busy.has(item.runId)) batch.push(item);
      else waiting.push(item);
    }
    this.#queue.splice(0, this.#queue.length, ...waiting);
    return batch;
  }

  /**
   * One transaction for the whole batch. Decisions that throw are answered at once and write
   * nothing; the others are answered once the commit succeeded. When the database refuses any part
   * of it, nothing is committed and the decisions still unanswered are returned, to be taken again.
   */
  async #commit(batch: Pending[]): Promise<Pending[]> {
    const { pool, sql } = this.#options;
    const started = this.#observers.length > 0 ? performance.now() : undefined;
    const client = await pool.connect();
    let broken: Error | undefined;
    const thrown = new Set<Pending>();
    try {
      const keys = batch.flatMap(({ runId, needs }) =>
        (needs.idempotency?.keys ?? []).map((key) => [runId, needs.idempotency!.parentId, key] as const),
      );
      const [, lockedRows, loadedRows] = await Promise.all([
        client.query('BEGIN'),
        client.query<LockedRunRow>(sql.lockRuns, [[...new Set(batch.map((item) => item.runId))]]),
        client.query<NodeRunRow>(sql.loadNodeRuns, [
          batch.flatMap((item) => item.needs.nodeRuns ?? []),
          keys.map((key) => key[0]),
          keys.map((key) => key[1]),
          keys.map((key) => key[2]),
        ]),
      ]);
      const locked = new Map(lockedRows.rows.map((row) => [row.run_id, row]));
      const loaded = new Map(loadedRows.rows.map((row) => [row.node_run_id, row]));
      const context = this.#options.context();
      const decided: { item: Pending; decision: Decision<unknown>; write: PreparedWrite }[] = [];
      const sent: Promise<unknown>[] = [];
      for (const item of batch) {
        const run = locked.get(item.runId);
        let decision: Decision<unknown>;
        try {
          decision = item.decide(this.#options.view(item.runId, run, loaded, item.needs));
        } catch (error) {
          thrown.add(item);
          item.reject(error);
          continue;
        }
        // The unfinished subtree a cascade ends, read after the writes before it in the batch.
        const cascade = decision.changes?.cascade;
        const cascaded =
          cascade && run
            ? (
                await client.query<NodeRunRow>(cascade.inclusive ? sql.liveSubtreeFrom : sql.liveSubtree, [
                  item.runId,
                  cascade.from,
                ])
              ).rows
            : [];
        const write = prepareWrite(context, item.runId, run, loaded, decision, cascaded);
        if (write.statement) sent.push(client.query(write.statement, write.values as unknown[]));
        decided.push({ item, decision, write });
        advance(locked, loaded, item.runId, decision, write);
      }
      const settled = await Promise.allSettled([...sent, client.query('COMMIT')]);
      const failure = settled.find((result) => result.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason;
      if (started !== undefined) {
        const seconds = (performance.now() - started) / 1000;
        for (const observer of this.#observers) observer.committed(seconds);
      }
      for (const { item, decision, write } of decided) {
        const result = committedDecision(decision, write.committed, write.ended);
        this.#options.committed(item.runId, result);
        item.resolve(result);
      }
      return [];
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && RETRYABLE.has(code))
        for (const observer of this.#observers) observer.conflicted(code);
      if (typeof code !== 'string') broken = error as Error;
      else await client.query('ROLLBACK').catch((rollback: Error) => (broken = rollback));
      if (batch.length === 1) throw error;
      // Everyone not answered yet (only the decisions that threw were) is taken again.
      return batch.filter((item) => !thrown.has(item));
    } finally {
      client.release(broken);
    }
  }

  /** The decisions of a refused batch, each in its own transaction, retried on a race. */
  async #alone(refused: Pending[]): Promise<void> {
    for (const item of refused) {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.#commit([item]);
          break;
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (attempt >= MAX_ATTEMPTS || typeof code !== 'string' || !RETRYABLE.has(code)) {
            item.reject(error);
            break;
          }
        }
      }
    }
  }
}

/**
 * The Run and NodeRuns as a decision of the batch leaves them, for the decisions after it: what the
 * database will hold once its write (sent before theirs) has run.
 */
function advance(
  locked: Map<string, LockedRunRow>,
  loaded: Map<string, NodeRunRow>,
  runId: string,
  decision: Decision<unknown>,
  write: PreparedWrite,
): void {
  if (!write.statement) return;
  const changes = decision.changes;
  const before = locked.get(runId);
  const run: RunRecord | undefined = changes?.run;
  if (!before && !run) return;
  const counters = write.counters;
  locked.set(runId, {
    run_id: runId,
    doc: run?.run ?? before!.doc,
    constraints: run ? (run.constraints ?? null) : before!.constraints,
    start_fingerprint: run?.startFingerprint ?? before!.start_fingerprint,
    deadline_at: run ? (run.deadlineAt ?? null) : before!.deadline_at,
    steps: run?.steps ?? before!.steps,
    node_run_count: counters.nodeRunCount,
    live_count: counters.live,
    last_seq: counters.lastSeq,
  });
  for (const record of write.records) loaded.set(record.nodeRun.node_run_id, nodeRunRow(runId, record));
}
