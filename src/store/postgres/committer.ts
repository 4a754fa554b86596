/**
 * Commits decisions in batches (group commit). Decisions that arrive while earlier ones are being
 * committed wait together and then go out as ONE transaction: one round trip locks all their Runs
 * and reads what they need, each is decided against its own Run, their writes are sent back to back,
 * and one COMMIT (one flush of the log) makes them all durable. A batch holds at most one decision
 * per Run, and a Run is in at most one batch at a time, so decisions on one Run still commit one after
 * the other, in the order they arrived. Under no load a batch is a single decision.
 *
 * If the database refuses a batch (a first insert racing another instance's, a deadlock), nothing of
 * it is committed and every decision in it is taken again alone, with retries.
 */
import type pg from 'pg';
import type { Decision, Needs, RunView } from '../../core/model.js';
import type { CommittedDecision } from '../store.js';
import type { LockedRunRow, NodeRunRow } from './rows.js';
import { beginBatch, type Statements } from './sql.js';
import { prepareWrite, type WriterContext } from './write.js';

export interface Pending {
  readonly runId: string;
  readonly needs: Needs;
  readonly decide: (view: RunView) => Decision<unknown>;
  readonly resolve: (committed: CommittedDecision<unknown>) => void;
  readonly reject: (error: unknown) => void;
}

export interface CommitterOptions {
  readonly pool: pg.Pool;
  readonly schema: string;
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

/** Errors after which a decision is simply taken again: a concurrent first insert, a deadlock. */
const RETRYABLE = new Set(['23505', '40001', '40P01']);
const MAX_ATTEMPTS = 5;

export class Committer {
  readonly #options: CommitterOptions;
  readonly #queue: Pending[] = [];
  /** Runs in a batch being committed. */
  readonly #busy = new Set<string>();
  #inFlight = 0;

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

  #pump(): void {
    while (this.#inFlight < this.#options.concurrency) {
      const batch = this.#take();
      if (batch.length === 0) return;
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
  }

  /** The oldest waiting decision of each Run that is not already being committed, in arrival order. */
  #take(): Pending[] {
    const batch: Pending[] = [];
    const runs = new Set<string>();
    for (let i = 0; i < this.#queue.length && batch.length < this.#options.maxBatch; ) {
      const item = this.#queue[i]!;
      if (this.#busy.has(item.runId) || runs.has(item.runId)) {
        runs.add(item.runId);
        i++;
        continue;
      }
      runs.add(item.runId);
      batch.push(item);
      this.#queue.splice(i, 1);
    }
    return batch;
  }

  /**
   * One transaction for the whole batch. Decisions that throw are answered at once and write
   * nothing; the others are answered once the commit succeeded. When the database refuses any part
   * of it, nothing is committed and the decisions still unanswered are returned, to be taken again.
   */
  async #commit(batch: Pending[]): Promise<Pending[]> {
    const { pool, schema } = this.#options;
    const client = await pool.connect();
    let broken: Error | undefined;
    const decided: { item: Pending; decision: Decision<unknown>; run: LockedRunRow | undefined }[] = [];
    const thrown = new Set<Pending>();
    try {
      const reads = batch.map((item) => ({
        runId: item.runId,
        ids: item.needs.nodeRuns ?? [],
        keys: item.needs.idempotency,
      }));
      const results = (await client.query(beginBatch(schema, reads))) as unknown as pg.QueryResult[];
      const locked = new Map<string, LockedRunRow>();
      for (const row of (results[1]?.rows ?? []) as LockedRunRow[]) locked.set(row.run_id, row);
      const loaded = new Map<string, NodeRunRow>();
      for (const row of (results[2]?.rows ?? []) as NodeRunRow[]) loaded.set(row.node_run_id, row);
      const context = this.#options.context();
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
        decided.push({ item, decision, run });
      }
      // The unfinished subtrees the decisions' cascades end, read under the same locks.
      const cascades = await Promise.all(
        decided.map(({ item, decision, run }) => {
          const cascade = decision.changes?.cascade;
          if (!cascade || !run) return [];
          const statement = cascade.inclusive
            ? this.#options.sql.liveSubtreeFrom
            : this.#options.sql.liveSubtree;
          return client
            .query<NodeRunRow>(statement, [item.runId, cascade.from])
            .then((result) => result.rows);
        }),
      );
      const writes = decided.map(({ item, decision, run }, i) =>
        prepareWrite(context, item.runId, run, loaded, decision, cascades[i]),
      );
      // Sent back to back (pipelined where the connection allows it), then one COMMIT.
      const sent = writes.map((write) =>
        write.statement ? client.query(write.statement, write.values as unknown[]) : undefined,
      );
      const settled = await Promise.allSettled([...sent, client.query('COMMIT')]);
      const failure = settled.find((result) => result.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason;
      decided.forEach(({ item, decision }, i) => {
        const write = writes[i]!;
        const result = { ...decision, committed: write.committed, ended: write.ended };
        this.#options.committed(item.runId, result);
        item.resolve(result);
      });
      return [];
    } catch (error) {
      if (typeof (error as { code?: unknown }).code !== 'string') broken = error as Error;
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
    await Promise.all(
      refused.map(async (item) => {
        for (let attempt = 1; ; attempt++) {
          try {
            await this.#commit([item]);
            return;
          } catch (error) {
            const code = (error as { code?: unknown }).code;
            if (attempt >= MAX_ATTEMPTS || typeof code !== 'string' || !RETRYABLE.has(code)) {
              item.reject(error);
              return;
            }
          }
        }
      }),
    );
  }
}
