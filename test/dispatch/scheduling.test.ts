/**
 * How the dispatcher schedules work: `budgets.max_steps` caps the atomic executions of a Run, at
 * most `dispatchConcurrency` dispatches run at once (the rest wait in creation order), and a queued
 * NodeRun whose Run was canceled meanwhile is never sent.
 */
import { describe, expect, it } from 'vitest';
import { type FakeService, Gates, type Reply, replies } from '../helpers/executors.js';
import {
  AE_EXECUTE,
  aeCancelPath,
  CE_BEGIN,
  cancelRun,
  completionError,
  eventLabels,
  getNodeRun,
  getRun,
  idle,
  ManualTimers,
  runEvents,
  startRun,
  useDispatch,
} from './harness.js';

const h = useDispatch();

const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };
const plan = { node_type_id: 'composite.plan', version: '1.0.0' };
const nodeRunIdOf = (r: { body: unknown }) => (r.body as { node_run_id: string }).node_run_id;

async function echoExecutor(): Promise<FakeService> {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => replies.succeeded(nodeRunIdOf(r)));
  return ae;
}

async function heldExecutor() {
  const ae = await h.fake();
  const gates = new Gates<Reply>();
  ae.on('POST', AE_EXECUTE, (r) => gates.wait(nodeRunIdOf(r)));
  return { ae, gates };
}

describe('budgets.max_steps', () => {
  it('fails the root with budget_exceeded when max_steps is 0, without calling the executor', async () => {
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url } });
    const run = await startRun(t, { root_node_type_ref: echo, constraints: { budgets: { max_steps: 0 } } });
    await idle(t);
    const root = await getNodeRun(t, run.root_node_run_id);
    expect(root.state).toBe('failed');
    expect(completionError(root)).toMatchObject({
      code: 'budget_exceeded',
      details: { budget: 'max_steps', limit: 0, attempted: 1 },
    });
    expect(completionError(await getRun(t, run.run_id))!.code).toBe('budget_exceeded');
    expect(eventLabels(await runEvents(t, run.run_id))).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'policy_decided(node.run.execute)',
      'run_completed',
    ]);
    expect(ae.requests).toEqual([]);
  });

  it('counts atomic executions only: under a composite root, max_steps 2 runs two children and fails the third', async () => {
    const ae = await echoExecutor();
    const ce = await h.fake();
    ce.on('POST', CE_BEGIN, () => ({ json: { accepted: true } }));
    // One dispatch at a time, so that the children are claimed in creation order.
    const t = await h.app({
      services: { atomicExecutor: ae.url, compositeExecutor: ce.url },
      publicUrl: 'http://127.0.0.1:1',
      dispatchConcurrency: 1,
    });
    const run = await startRun(t, { root_node_type_ref: plan, constraints: { budgets: { max_steps: 2 } } });
    await idle(t);
    // The composite root decomposes; it is not a step.
    expect((await getNodeRun(t, run.root_node_run_id)).state).toBe('running');
    // Acting as the composite executor: a plan of exactly max_steps atomic steps, then one more.
    const create = async (n: number) => {
      const created = await t.request({
        method: 'POST',
        url: '/v1/node-runs',
        payload: {
          run_id: run.run_id,
          parent_node_run_id: run.root_node_run_id,
          node_runs: [{ node_type_ref: echo, inputs: { n } }],
        },
      });
      expect(created.statusCode, created.body).toBe(200);
      await idle(t);
      return (created.json().node_runs as { node_run_id: string }[])[0]!.node_run_id;
    };
    const first = await create(1);
    const second = await create(2);
    expect((await getNodeRun(t, first)).state).toBe('succeeded');
    expect((await getNodeRun(t, second)).state).toBe('succeeded');
    const third = await create(3);
    const over = await getNodeRun(t, third);
    expect(over.state).toBe('failed');
    expect(completionError(over)).toMatchObject({
      code: 'budget_exceeded',
      details: { budget: 'max_steps', limit: 2, attempted: 3 },
    });
    expect(ae.requests.map(nodeRunIdOf)).toEqual([first, second]);
    // A child's failure does not end the Run; its composite decides.
    expect((await getRun(t, run.run_id)).state).toBe('running');
  });

  it('never fails a composite for max_steps: a composite child under max_steps 0 is still begun', async () => {
    const ce = await h.fake();
    ce.on('POST', CE_BEGIN, () => ({ json: { accepted: true } }));
    const t = await h.app({ services: { compositeExecutor: ce.url }, publicUrl: 'http://127.0.0.1:1' });
    const run = await startRun(t, { root_node_type_ref: plan, constraints: { budgets: { max_steps: 0 } } });
    await idle(t);
    const created = await t.request({
      method: 'POST',
      url: '/v1/node-runs',
      payload: {
        run_id: run.run_id,
        parent_node_run_id: run.root_node_run_id,
        node_runs: [{ node_type_ref: plan, inputs: {} }],
      },
    });
    expect(created.statusCode, created.body).toBe(200);
    await idle(t);
    const child = (created.json().node_runs as { node_run_id: string }[])[0]!.node_run_id;
    expect((await getNodeRun(t, run.root_node_run_id)).state).toBe('running');
    expect((await getNodeRun(t, child)).state).toBe('running');
    expect(ce.requests.filter((r) => r.path === CE_BEGIN)).toHaveLength(2);
  });
});

describe('budgets.max_wall_time_ms', () => {
  it('fails the Run with budget_exceeded when the deadline passes during an execution, and cancels it', async () => {
    const timers = new ManualTimers();
    const { ae, gates } = await heldExecutor();
    ae.on('POST', /^\/v1\/atomic-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { timers });
    const run = await startRun(t, {
      root_node_type_ref: echo,
      constraints: { budgets: { max_wall_time_ms: 30_000 } },
    });
    const [execute] = await ae.waitFor(1, (r) => r.path === AE_EXECUTE);
    expect([...timers.pending.values()].map((timer) => timer.ms)).toEqual([30_000]);

    timers.fireAll();
    await ae.waitFor(1, (r) => r.path === aeCancelPath(run.root_node_run_id));
    const after = await getRun(t, run.run_id);
    expect(after.state).toBe('failed');
    expect(completionError(after)).toMatchObject({
      code: 'budget_exceeded',
      details: { budget: 'max_wall_time_ms', limit: 30_000 },
    });
    const root = await getNodeRun(t, run.root_node_run_id);
    expect(root.state).toBe('canceled');
    expect(completionError(root)!.code).toBe('budget_exceeded');

    gates.release(run.root_node_run_id, replies.succeeded(run.root_node_run_id));
    await execute!.settled;
    await idle(t);
    expect((await getNodeRun(t, run.root_node_run_id)).state).toBe('canceled');
    const events = await runEvents(t, run.run_id);
    expect(eventLabels(events)).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'policy_decided(node.run.execute)',
      'run_completed',
    ]);
    expect(events.at(-1)!.data).toMatchObject({ state: 'failed', reason: 'budget_exceeded' });
  });
});

describe('bounded concurrency', () => {
  it('keeps at most dispatchConcurrency executions in flight and dispatches the rest in creation order', async () => {
    const { ae, gates } = await heldExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url }, dispatchConcurrency: 2 });
    const runs = [];
    for (let i = 0; i < 5; i++) runs.push(await startRun(t, { root_node_type_ref: echo, input: { i } }));
    const roots = runs.map((run) => run.root_node_run_id);
    expect(roots).toEqual(['node_run_1', 'node_run_2', 'node_run_3', 'node_run_4', 'node_run_5']);

    await ae.waitFor(2);
    expect(ae.requests.map(nodeRunIdOf).sort()).toEqual(['node_run_1', 'node_run_2']);
    // The others are not even claimed while both slots are taken.
    const states = async () => Promise.all(roots.map(async (id) => (await getNodeRun(t, id)).state));
    expect(await states()).toEqual(['running', 'running', 'queued', 'queued', 'queued']);
    expect(ae.inFlight).toBe(2);

    // Each released slot is taken by the oldest waiting NodeRun.
    for (let i = 0; i < 3; i++) {
      gates.release(roots[i]!, replies.succeeded(roots[i]!));
      const arrived = await ae.waitFor(3 + i);
      expect(nodeRunIdOf(arrived[2 + i]!)).toBe(roots[2 + i]);
      expect(ae.inFlight).toBe(2);
    }
    expect(await states()).toEqual(['succeeded', 'succeeded', 'succeeded', 'running', 'running']);
    gates.release(roots[3]!, replies.succeeded(roots[3]!));
    gates.release(roots[4]!, replies.succeeded(roots[4]!));
    await idle(t);
    expect(await states()).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(ae.requests).toHaveLength(5);
    expect(ae.maxInFlight).toBe(2);
  });

  it('never dispatches a queued NodeRun whose Run was canceled while it waited', async () => {
    const { ae, gates } = await heldExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url }, dispatchConcurrency: 1 });
    const busy = await startRun(t, { root_node_type_ref: echo });
    await ae.waitFor(1);
    const waiting = await startRun(t, { root_node_type_ref: echo });
    expect((await getNodeRun(t, waiting.root_node_run_id)).state).toBe('queued');

    const canceled = await cancelRun(t, waiting.run_id);
    expect(canceled.state).toBe('canceled');
    expect((await getNodeRun(t, waiting.root_node_run_id)).state).toBe('canceled');

    gates.release(busy.root_node_run_id, replies.succeeded(busy.root_node_run_id));
    await idle(t);
    expect(ae.requests.map(nodeRunIdOf)).toEqual([busy.root_node_run_id]);
    expect((await getRun(t, busy.run_id)).state).toBe('succeeded');
    expect((await getNodeRun(t, waiting.root_node_run_id)).state).toBe('canceled');
    expect(eventLabels(await runEvents(t, waiting.run_id))).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'run_completed',
    ]);
  });
});
