/**
 * A follow stream on one process learns of another process's commits only through PostgreSQL's
 * LISTEN/NOTIFY. When the listening connection is lost (a database restart, a failover, an
 * administrator ending the session) and the database briefly refuses new connections, the process
 * must listen again once it can, and catch up on what it missed; otherwise its follow streams of
 * Runs written elsewhere stop for ever. Real processes on a database of the test's own (its
 * connection limit is changed), see processes.ts.
 */
import { describe, expect, it } from 'vitest';
import type { NodeRunsCreateResponse } from '../../src/gen/contract.js';
import { atomicType, complete, createNodeRuns, events, expectStatus, Follow, startRun } from './api.js';
import { useCluster, within } from './processes.js';

const h = useCluster();

// Bounds, not expectations: a test waits for processes to start (about a second each, more on a busy
// machine).
describe('follow streams across processes when the LISTEN connection is lost', { timeout: 90_000 }, () => {
  it('a stream on A keeps receiving B’s commits after A’s listening connection was cut while the database refused connections', async () => {
    const database = await h.database();
    const env = { RC_DATABASE_URL: database.url };
    const [a, b] = await Promise.all([h.start('a', env), h.start('b', env)]);
    const run = await startRun(b.url);
    const follow = await Follow.open(a.url, run.run_id);
    expect((await follow.take(2)).map((e) => e.type)).toEqual(['run_started', 'node_run_assigned']);
    const parent = { run_id: run.run_id, parent_node_run_id: run.root_node_run_id };
    expectStatus<NodeRunsCreateResponse>(
      await createNodeRuns(b.url, { ...parent, node_runs: [{ node_type_ref: atomicType, inputs: {} }] }),
      200,
    );
    expect((await follow.take(2)).map((e) => e.type)).toEqual(['composite_decomposed', 'node_run_assigned']);

    // The database ends every listening session and, for a moment, accepts no new connection.
    await h.query(`ALTER DATABASE "${database.name}" CONNECTION LIMIT 0`);
    const ended = await h.query<{ ended: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE datname = $1 AND query LIKE 'LISTEN %'`,
      [database.name],
    );
    expect(ended, 'the listening sessions of A and B').toEqual([{ ended: true }, { ended: true }]);
    // Each refused twice: every attempt made right away has failed (one attempt per error a
    // listening connection reported), so what follows shows whether the processes try again later.
    for (const p of [a, b]) {
      await within(p.logLines(/too many connections/, 2), 20_000, `${p.name} to be refused new connections`);
    }
    await h.query(`ALTER DATABASE "${database.name}" CONNECTION LIMIT -1`);

    // The database is back: B's next commits reach A's stream, which ends with the Run.
    expectStatus<NodeRunsCreateResponse>(
      await createNodeRuns(b.url, { ...parent, node_runs: [{ node_type_ref: atomicType, inputs: {} }] }),
      200,
    );
    expectStatus(await complete(b.url, run.root_node_run_id, { state: 'succeeded', outputs: {} }), 204);
    const rest = await follow.rest(10_000).catch(async (error: Error) => {
      const listening = await h.query(
        `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'`,
        [database.name],
      );
      throw new Error(
        `${error.message}; sessions listening in the database now: ${listening.length} (A's and B's: 2)`,
      );
    });
    expect(rest.at(-1)?.type).toBe('run_completed');
    expect(follow.received).toEqual(await events(b.url, run.run_id));
  });
});
