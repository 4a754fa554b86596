/**
 * SIGTERM of one of two coordinator processes while an executor holds one of its executions and
 * more of its NodeRuns wait in its dispatch queue: the process exits once its shutdown timeout has
 * passed, the execution it could not finish is failed by the other process when the lease ends
 * (never left running, never executed twice), and the queued NodeRuns it held are dispatched by the
 * other process. Real processes on a real database (processes.ts).
 */
import { describe, expect, it } from 'vitest';
import { replies } from '../helpers/executors.js';
import {
  AE_CANCEL,
  AE_EXECUTE,
  atomicType,
  caller,
  completionError,
  events,
  executorUrl,
  Follow,
  getNodeRun,
  isAtomicCancel,
  isExecute,
  startRun,
  subject,
} from './api.js';
import { useCluster, within } from './processes.js';

const h = useCluster();

// Bounds, not expectations: a test waits for processes to start (about a second each, more on a busy
// machine) and for leases to end.
describe('a coordinator process stopped with SIGTERM', { timeout: 90_000 }, () => {
  it('with an execution in flight: exits after its shutdown timeout; the other process fails the execution after the lease and runs the queued NodeRuns it held', async () => {
    const ae = await h.fake();
    let held: string | undefined;
    ae.on('POST', AE_EXECUTE, (r) => {
      // The first execution is held for ever; every later one succeeds at once.
      held ??= subject(r);
      return held === subject(r) ? { hang: true } : replies.succeeded(subject(r));
    });
    ae.on('POST', AE_CANCEL, () => ({ status: 200, json: {} }));
    const [a, b] = await Promise.all([
      // One dispatch at a time: while the execution is held, A's other NodeRuns wait in its queue.
      h.start('a', {
        RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'a'),
        RC_DISPATCH_CONCURRENCY: '1',
        RC_SHUTDOWN_TIMEOUT_MS: '1000',
      }),
      h.start('b', { RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'b') }),
    ]);

    const inFlight = await startRun(a.url, { root_node_type_ref: atomicType });
    const [execute] = await within(ae.waitFor(1, isExecute), 20_000, 'A to execute the first root');
    expect([caller(execute!), subject(execute!)]).toEqual(['a', inFlight.root_node_run_id]);
    const waiting = await Promise.all(
      [0, 1, 2].map(() => startRun(a.url, { root_node_type_ref: atomicType })),
    );
    const waitingRoots = waiting.map((run) => run.root_node_run_id);
    const holders = await h.query<{ owner: string | null; state: string }>(
      `SELECT owner, state FROM "${h.schema}".node_runs WHERE node_run_id = ANY($1)`,
      [waitingRoots],
    );
    expect(
      holders.map((row) => [row.state, row.owner?.startsWith(a.instanceId)]),
      'queued in A, held by A',
    ).toEqual(waitingRoots.map(() => ['queued', true]));

    const exit = await within(a.kill('SIGTERM'), 30_000, 'A to exit after SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    // It was the shutdown timeout that let A go, with the execution still unanswered.
    await a.logLine(/"msg":"shutdown timed out; exiting"/);
    expect(await execute!.settled).toBe('closed');

    // The queued NodeRuns A held: dispatched by B, each once, and their Runs succeed.
    for (const run of waiting) {
      const ending = await (await Follow.open(b.url, run.run_id)).rest();
      expect(ending.at(-1)).toMatchObject({ type: 'run_completed', data: { state: 'succeeded' } });
    }
    const executes = ae.received(isExecute);
    for (const root of waitingRoots) {
      expect(executes.filter((r) => subject(r) === root).map(caller), `executions of ${root}`).toEqual(['b']);
    }

    // The execution in flight: failed by B once A's lease ended, cancelled at the executor, not re-run.
    const follow = await Follow.open(b.url, inFlight.run_id);
    expect((await follow.rest()).at(-1)).toMatchObject({ type: 'run_completed', data: { state: 'failed' } });
    const lost = await getNodeRun(b.url, inFlight.root_node_run_id);
    expect(lost.state).toBe('failed');
    expect(completionError(lost)?.code).toBe('execution_owner_lost');
    await within(
      ae.waitFor(
        1,
        (r) => isAtomicCancel(r) && subject(r) === inFlight.root_node_run_id && caller(r) === 'b',
      ),
      20_000,
      'B to tell the executor to cancel the lost execution',
    );
    expect(executes.filter((r) => subject(r) === inFlight.root_node_run_id)).toHaveLength(1);
    expect(follow.received).toEqual(await events(b.url, inFlight.run_id));
  });
});
