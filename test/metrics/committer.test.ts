/**
 * The PostgreSQL committer's observer: a transaction the database refuses with a retryable SQLSTATE
 * is reported as a conflict, and the transaction that then commits is timed once. The pool is a
 * stand-in that refuses the first COMMIT with 40001 (serialization failure).
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { RunView } from '../../src/core/model.js';
import { Committer } from '../../src/store/postgres/committer.js';
import { statements } from '../../src/store/postgres/sql.js';

function refusingPool(codes: string[]): { pool: pg.Pool; commits: () => number } {
  let commits = 0;
  const client = {
    async query(text: string) {
      if (text === 'COMMIT') {
        const code = codes.shift();
        if (code) throw Object.assign(new Error(`refused with ${code}`), { code });
        commits += 1;
      }
      return { rows: [] };
    },
    release() {},
  };
  return { pool: { connect: async () => client } as unknown as pg.Pool, commits: () => commits };
}

function committer(pool: pg.Pool): Committer {
  return new Committer({
    pool,
    sql: statements('s'),
    concurrency: 1,
    maxBatch: 8,
    context: () => ({
      instanceId: 'i',
      now: 0,
      dispatching: false,
      effectsDue: 0,
      channel: 'c',
      statement: () => {
        throw new Error('no write expected');
      },
    }),
    view: (runId) => ({ runId }) as unknown as RunView,
    committed: () => {},
  });
}

describe('committer observer', () => {
  it('reports each retryable refusal as a conflict and times the transaction that commits', async () => {
    const { pool, commits } = refusingPool(['40001', '40P01']);
    const c = committer(pool);
    const conflicts: string[] = [];
    const durations: number[] = [];
    c.observe({
      committed: (seconds) => durations.push(seconds),
      conflicted: (code) => conflicts.push(code),
    });
    const result = await c.submit('run_1', {}, () => ({ value: 'ok' }));
    expect(result.value).toBe('ok');
    expect(conflicts).toEqual(['40001', '40P01']);
    expect(commits()).toBe(1);
    expect(durations).toHaveLength(1);
    expect(durations[0]).toBeGreaterThanOrEqual(0);
  });

  // A refused batch is taken again alone once; a second non-retryable refusal fails the decision.
  it('a refusal that is not retryable is no conflict', async () => {
    const { pool } = refusingPool(['42P01', '42P01']);
    const c = committer(pool);
    const conflicts: string[] = [];
    c.observe({ committed: () => {}, conflicted: (code) => conflicts.push(code) });
    await expect(c.submit('run_1', {}, () => ({ value: 'ok' }))).rejects.toMatchObject({ code: '42P01' });
    expect(conflicts).toEqual([]);
  });
});
