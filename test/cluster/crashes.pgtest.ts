/**
 * A coordinator process killed with SIGKILL (no shutdown at all: its connections simply drop), and
 * another process started afterwards on the same schema: nothing acknowledged is lost, every log
 * stays gap-free, and what the dead process left unfinished — an execution in flight, a cancel it
 * owed an executor, a Run's wall-time budget — is finished by the new one. Real processes, a real
 * database; leases of 1.5 s and reconciler passes every 200 ms (processes.ts).
 */
import { describe, expect, it } from 'vitest';
import type { NodeRun, NodeRunsCreateRequest, NodeRunsCreateResponse, Run } from '../../src/gen/contract.js';
import { callJson, deferred, type RecordedRequest, replies } from '../helpers/executors.js';
import {
  AE_CANCEL,
  AE_EXECUTE,
  atomicType,
  call,
  caller,
  completionError,
  events,
  executorUrl,
  expectStatus,
  Follow,
  getNodeRun,
  getRun,
  isAtomicCancel,
  isExecute,
  startRun,
  subject,
} from './api.js';
import { pollUntil, useCluster, within } from './processes.js';

const h = useCluster();

const cancelOf = (nodeRunId: string, by: string) => (r: RecordedRequest) =>
  isAtomicCancel(r) && subject(r) === nodeRunId && caller(r) === by;

// Bounds, not expectations: a test waits for processes to start (about a second each, more on a busy
// machine) and for leases to end.
describe('a coordinator process killed with SIGKILL', { timeout: 90_000 }, () => {
  it('under a create load: every acknowledged create survives, each batch is all or nothing, every log is gap-free', async () => {
    const a = await h.start('a');
    const runs = await Promise.all([0, 1, 2].map(() => startRun(a.url)));
    const acked: { request: NodeRunsCreateRequest; nodeRuns: NodeRun[] }[] = [];
    const unacked: NodeRunsCreateRequest[] = [];
    const refused: string[] = [];
    const enough = deferred<void>();
    const ACKS_BEFORE_KILL = 150;

    /** Creates batches of three through A until A stops answering. */
    const client = async (c: number) => {
      for (let i = 0; ; i++) {
        const run = runs[(c + i) % runs.length]!;
        const request: NodeRunsCreateRequest = {
          run_id: run.run_id,
          parent_node_run_id: run.root_node_run_id,
          node_runs: [0, 1, 2].map((j) => ({
            node_type_ref: atomicType,
            inputs: { c, i, j },
            idempotency_key: `${c}-${i}-${j}`,
          })),
        };
        let res: Awaited<ReturnType<typeof callJson>>;
        try {
          res = await callJson(a.url, '/v1/node-runs', { method: 'POST', body: request });
        } catch {
          unacked.push(request);
          return;
        }
        if (res.status !== 200) refused.push(res.text);
        else acked.push({ request, nodeRuns: (res.body as NodeRunsCreateResponse).node_runs });
        if (acked.length >= ACKS_BEFORE_KILL) enough.resolve();
      }
    };
    const clients = Array.from({ length: 8 }, (_, c) => client(c));
    await within(enough.promise, 60_000, `${ACKS_BEFORE_KILL} acknowledged creates`);
    await a.kill('SIGKILL');
    await within(Promise.all(clients), 30_000, 'the clients to see A gone');
    expect(refused, 'creates A refused while alive').toEqual([]);
    // Each client stops at its first unanswered create: those were in flight when A died.
    expect(unacked).toHaveLength(8);

    const b = await h.start('b');
    for (const { nodeRuns } of acked) {
      for (const nodeRun of nodeRuns) expect(await getNodeRun(b.url, nodeRun.node_run_id)).toEqual(nodeRun);
    }
    const keyOf = (n: NodeRun) => n.extensions?.['rc.idempotency_key'] as string;
    const committed = new Map<string, string[]>();
    for (const run of runs) {
      const log = await events(b.url, run.run_id);
      const children = log.filter(
        (e) => e.type === 'node_run_assigned' && e.node_run_id !== run.root_node_run_id,
      );
      expect(log.filter((e) => e.type === 'composite_decomposed')).toHaveLength(children.length / 3);
      for (const e of children) {
        const nodeRun = await getNodeRun(b.url, e.node_run_id!);
        const batch = keyOf(nodeRun).replace(/-\d+$/, '');
        committed.set(batch, [...(committed.get(batch) ?? []), nodeRun.node_run_id]);
      }
    }
    for (const [batch, ids] of committed) expect(ids, `NodeRuns of batch ${batch}`).toHaveLength(3);
    for (const { request, nodeRuns } of acked) {
      const batch = request.node_runs[0]!.idempotency_key!.replace(/-\d+$/, '');
      expect(committed.get(batch)).toEqual(nodeRuns.map((n) => n.node_run_id));
    }

    // A client retrying what went unanswered gets each batch exactly once, whether or not A had
    // committed it before dying.
    for (const request of unacked) {
      const batch = request.node_runs[0]!.idempotency_key!.replace(/-\d+$/, '');
      const retried = expectStatus<NodeRunsCreateResponse>(
        await call(b.url, 'POST', '/v1/node-runs', { body: request, schema: 'NodeRunsCreateResponse' }),
        200,
      ).node_runs.map((n) => n.node_run_id);
      if (committed.has(batch)) expect(retried).toEqual(committed.get(batch));
      committed.set(batch, retried);
    }
    let children = 0;
    for (const run of runs) {
      const log = await events(b.url, run.run_id);
      children += log.filter(
        (e) => e.type === 'node_run_assigned' && e.node_run_id !== run.root_node_run_id,
      ).length;
    }
    expect(children).toBe(committed.size * 3);
    expect(committed.size).toBe(acked.length + unacked.length);
  });

  it('with an atomic execution in flight: another process fails it with execution_owner_lost after the lease, cancels it at the executor, and never executes it again', async () => {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, () => ({ hang: true }));
    ae.on('POST', AE_CANCEL, () => ({ status: 200, json: {} }));
    const a = await h.start('a', { RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'a') });
    const run = await startRun(a.url, { root_node_type_ref: atomicType });
    const root = run.root_node_run_id;
    const [execute] = await within(ae.waitFor(1, isExecute), 20_000, 'A to execute the root');
    expect([caller(execute!), subject(execute!)]).toEqual(['a', root]);

    await a.kill('SIGKILL');
    const b = await h.start('b', { RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'b') });
    const follow = await Follow.open(b.url, run.run_id);
    const ending = await follow.rest();
    expect(ending.at(-1)).toMatchObject({ type: 'run_completed', data: { state: 'failed' } });

    const failed = await getNodeRun(b.url, root);
    expect(failed.state).toBe('failed');
    expect(completionError(failed)?.code).toBe('execution_owner_lost');
    expect((await getRun(b.url, run.run_id)).state).toBe('failed');
    await within(ae.waitFor(1, cancelOf(root, 'b')), 20_000, 'B to tell the executor to cancel');
    expect(ae.received(isExecute).map(subject)).toEqual([root]);
    expect(follow.received).toEqual(await events(b.url, run.run_id));
  });

  it('restarted under the same RC_INSTANCE_ID: the restarted process fails the execution its predecessor left in flight and dispatches the NodeRuns it left queued', async () => {
    // A stable instance id (a StatefulSet's pod name, a systemd unit) survives restarts, so the new
    // process owns the leases its predecessor took; it must still finish what the predecessor left.
    const ae = await h.fake();
    let held: string | undefined;
    ae.on('POST', AE_EXECUTE, (r) => {
      held ??= subject(r);
      return held === subject(r) ? { hang: true } : replies.succeeded(subject(r));
    });
    ae.on('POST', AE_CANCEL, () => ({ status: 200, json: {} }));
    const stable = { RC_INSTANCE_ID: `coordinator-0-${h.schema}` };
    const a = await h.start('a', {
      ...stable,
      RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'a'),
      RC_DISPATCH_CONCURRENCY: '1',
    });
    const inFlight = await startRun(a.url, { root_node_type_ref: atomicType });
    await within(ae.waitFor(1, isExecute), 20_000, 'A to execute the first root');
    const queued = await startRun(a.url, { root_node_type_ref: atomicType });
    expect((await getNodeRun(a.url, queued.root_node_run_id)).state).toBe('queued');
    await a.kill('SIGKILL');

    const again = await h.start('a2', { ...stable, RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'a2') });
    const roots = [inFlight.root_node_run_id, queued.root_node_run_id];
    const now = async () =>
      h
        .query<{ state: string; owner: string | null; lease_ms_left: string | null }>(
          `SELECT n.state, n.owner, i.lease_expires_at - (extract(epoch from clock_timestamp()) * 1000)::bigint
                AS lease_ms_left
             FROM "${h.schema}".node_runs n LEFT JOIN "${h.schema}".instances i ON i.instance_id = n.owner
            WHERE n.node_run_id = $1`,
          [roots[0]],
        )
        .then(async ([lost]) => ({ lost, queued: (await getNodeRun(again.url, roots[1]!)).state }));
    // Bounded at six leases: a process that took over would have finished both long before.
    await pollUntil(
      async () => {
        const seen = await now();
        return seen.lost?.state === 'failed' && seen.queued === 'succeeded';
      },
      'the restarted process to fail the lost execution and run the queued NodeRun',
      10_000,
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}; after it: ${JSON.stringify(await now())}`);
    });
    expect(completionError(await getNodeRun(again.url, roots[0]!))?.code).toBe('execution_owner_lost');
    expect(ae.received(isExecute).filter((r) => subject(r) === roots[0])).toHaveLength(1);
  });

  it('owing a cancel its executor failed: another process, started after the executor recovered, delivers it', async () => {
    const ae = await h.fake();
    let reachable = false;
    ae.on('POST', AE_EXECUTE, () => ({ hang: true }));
    ae.on('POST', AE_CANCEL, () =>
      reachable ? { status: 200, json: {} } : replies.envelope(503, 'unavailable', 'down for maintenance'),
    );
    const a = await h.start('a', { RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'a') });
    const run = await startRun(a.url, { root_node_type_ref: atomicType });
    const root = run.root_node_run_id;
    await within(ae.waitFor(1, isExecute), 20_000, 'A to execute the root');

    const canceled = expectStatus<Run>(
      await call(a.url, 'POST', `/v1/runs/${run.run_id}:cancel`, { schema: 'Run' }),
      200,
    );
    expect(canceled.state).toBe('canceled');
    const [refusedCancel] = await within(ae.waitFor(1, cancelOf(root, 'a')), 20_000, 'A to try the cancel');
    expect(await refusedCancel!.settled).toBe('answered');
    const owed = await h.query(`SELECT node_run_id FROM "${h.schema}".outbox`);
    expect(owed, 'the cancel is owed').toEqual([{ node_run_id: root }]);

    await a.kill('SIGKILL');
    reachable = true;
    const b = await h.start('b', { RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, 'b') });
    const [delivered] = await within(ae.waitFor(1, cancelOf(root, 'b')), 45_000, 'B to deliver the cancel');
    expect(await delivered!.settled).toBe('answered');
    await pollUntil(
      async () => (await h.query(`SELECT 1 FROM "${h.schema}".outbox`)).length === 0,
      'the delivered cancel to be no longer owed',
    );
    expect((await getNodeRun(b.url, root)).state).toBe('canceled');
    expect(ae.received(isExecute).map(subject)).toEqual([root]);
  });

  it('with a wall-time budget armed: a process started after it ends the Run with budget_exceeded once the deadline passed, not before', async () => {
    const budget = 8_000;
    const a = await h.start('a');
    const run = await startRun(a.url, { constraints: { budgets: { max_wall_time_ms: budget } } });
    await a.kill('SIGKILL');

    const b = await h.start('b');
    // Still running once B is up: the deadline is B's to enforce, from what the database holds.
    expect((await getRun(b.url, run.run_id)).state).toBe('running');
    const follow = await Follow.open(b.url, run.run_id);
    const ending = await follow.rest(budget + 30_000);
    expect(ending.at(-1)).toMatchObject({
      type: 'run_completed',
      data: { state: 'failed', reason: 'budget_exceeded' },
    });
    const ended = await getRun(b.url, run.run_id);
    expect(ended.state).toBe('failed');
    expect(completionError(ended)?.code).toBe('budget_exceeded');
    expect(Date.parse(ended.ended_at!)).toBeGreaterThanOrEqual(Date.parse(run.started_at!) + budget);
    expect(follow.received).toEqual(await events(b.url, run.run_id));
  });
});
