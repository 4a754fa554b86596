/** Recovery queries of the PostgreSQL store (see `Recovery` in ../store.ts). */
import type pg from 'pg';
import type { EndedExecution } from '../../core/model.js';
import type { NodeKind } from '../../gen/contract.js';
import type { NodeRunRef, Recovery } from '../store.js';
import type { Statements } from './sql.js';

export interface RecoveryOptions {
  readonly pool: pg.Pool;
  readonly sql: Statements;
  readonly instanceId: string;
  readonly now: () => number;
  readonly leaseTtlMs: number;
  /** First wait before an owed effect is tried again; it doubles per attempt up to `maxRetryMs`. */
  readonly retryMs: number;
  readonly maxRetryMs: number;
}

type RefRow = { run_id: string; node_run_id: string };
const ref = (row: RefRow): NodeRunRef => ({ runId: row.run_id, nodeRunId: row.node_run_id });

export class PostgresRecovery implements Recovery {
  readonly #options: RecoveryOptions;

  constructor(options: RecoveryOptions) {
    this.#options = options;
  }

  async renewLeases(): Promise<void> {
    const { pool, sql, instanceId, now, leaseTtlMs } = this.#options;
    await pool.query(sql.renewLease, [instanceId, now() + leaseTtlMs]);
  }

  async adoptQueued(limit: number): Promise<NodeRunRef[]> {
    const { pool, sql, instanceId, now } = this.#options;
    const { rows } = await pool.query<RefRow>(sql.adoptQueued, [instanceId, now(), limit]);
    return rows.map(ref);
  }

  async lostExecutions(limit: number): Promise<NodeRunRef[]> {
    const { pool, sql, now } = this.#options;
    return (await pool.query<RefRow>(sql.lostExecutions, [now(), limit])).rows.map(ref);
  }

  async nodeRunDeadlines(until: number, limit: number) {
    const { pool, sql } = this.#options;
    const { rows } = await pool.query<RefRow & { deadline_at: string }>(sql.nodeRunDeadlines, [until, limit]);
    return rows.map((row) => ({ ...ref(row), at: Number(row.deadline_at) }));
  }

  async runDeadlines(until: number, limit: number) {
    const { pool, sql } = this.#options;
    const { rows } = await pool.query<{ run_id: string; deadline_at: string }>(sql.runDeadlines, [
      until,
      limit,
    ]);
    return rows.map((row) => ({ runId: row.run_id, at: Number(row.deadline_at) }));
  }

  async dueEffects(limit: number) {
    const { pool, sql, now, retryMs, maxRetryMs } = this.#options;
    const { rows } = await pool.query<
      RefRow & { effect_id: string; executor_kind: string | null; attempts: number }
    >(sql.dueEffects, [now(), limit, retryMs, maxRetryMs]);
    return rows.map((row): EndedExecution & { attempts: number } => ({
      ...ref(row),
      kind: (row.executor_kind ?? undefined) as NodeKind | undefined,
      effectId: row.effect_id,
      attempts: row.attempts,
    }));
  }

  async releaseQueued(): Promise<void> {
    const { pool, sql, instanceId } = this.#options;
    await pool.query(sql.releaseQueued, [instanceId]);
  }

  async endLease(): Promise<void> {
    const { pool, sql, instanceId } = this.#options;
    await pool.query(sql.endLease, [instanceId]);
  }

  async sweep(before: number, limit: number): Promise<number> {
    const { pool, sql } = this.#options;
    const { rows } = await pool.query<{ run_id: string }>(sql.finishedBefore, [new Date(before), limit]);
    for (const { run_id: runId } of rows) {
      // One Run per transaction, like every other write.
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        for (const statement of sql.deleteRun) await client.query(statement, [runId]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    }
    return rows.length;
  }
}
