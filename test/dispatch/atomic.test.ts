/**
 * Atomic dispatch through the real app: a queued atomic NodeRun is claimed, sent to a loopback fake
 * Atomic Executor, and its result (or the failure of the call) is recorded. Every outcome is checked
 * on the NodeRun, the Run and the exact event sequence.
 */
import { describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { closedPortUrl, type FakeService, Gates, type Reply, replies } from '../helpers/executors.js';
import {
  AE_EXECUTE,
  aeCancelPath,
  cancelRun,
  completionError,
  eventLabels,
  getNodeRun,
  getRun,
  idle,
  runEvents,
  schemaErrors,
  startRun,
  useDispatch,
} from './harness.js';

const h = useDispatch();

const T0 = '2026-01-01T00:00:00.000Z';
const T5 = '2026-01-01T00:00:05.000Z';
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };

const isExecute = (r: { method: string; path: string }) => r.method === 'POST' && r.path === AE_EXECUTE;

/** A fake Atomic Executor whose execute answers are held per node_run_id until released. */
async function heldExecutor() {
  const ae = await h.fake();
  const gates = new Gates<Reply>();
  ae.on('POST', AE_EXECUTE, (r) => gates.wait((r.body as { node_run_id: string }).node_run_id));
  ae.on('POST', /^\/v1\/atomic-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
  return { ae, gates };
}

/** A fake Atomic Executor that answers every execute with `reply(node_run_id)`. */
async function answeringExecutor(reply: (nodeRunId: string) => Reply) {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => reply((r.body as { node_run_id: string }).node_run_id));
  return ae;
}

async function appWith(ae: FakeService | string, extra: Record<string, unknown> = {}): Promise<TestApp> {
  return h.app({ services: { atomicExecutor: typeof ae === 'string' ? ae : ae.url }, ...extra });
}

/** Starts an echo run, waits for the dispatch to finish, and returns the root NodeRun and the Run. */
async function runToEnd(t: TestApp, body: Record<string, unknown> = {}) {
  const run = await startRun(t, { root_node_type_ref: echo, input: { text: 'hi' }, ...body });
  await idle(t);
  return {
    run: await getRun(t, run.run_id),
    root: await getNodeRun(t, run.root_node_run_id),
    events: await runEvents(t, run.run_id),
  };
}

const FAILED_BY_COORDINATOR = [
  'run_started',
  'node_run_assigned',
  'policy_decided(run.start)',
  'policy_decided(node.run.execute)',
  'run_completed',
];

describe('atomic success', () => {
  it('sends the full AtomicExecuteRequest, answers start_run before the executor, and records the result', async () => {
    const { ae, gates } = await heldExecutor();
    const t = await appWith(ae);
    const constraints = { structural: { max_depth: 3 }, budgets: { max_steps: 10 } };
    const started = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: {
        root_node_type_ref: echo,
        input: { text: 'hello' },
        run_context: { tenant_id: 't1', trace: { trace_id: 'tr-1' } },
        constraints,
      },
    });
    // The executor has not answered yet (it cannot: its answer is held), so start_run did not wait.
    expect(started.statusCode, started.body).toBe(200);
    expect(started.json()).toMatchObject({
      run_id: 'run_1',
      state: 'running',
      root_node_run_id: 'node_run_1',
    });

    const [execute] = await ae.waitFor(1, isExecute);
    expect(execute!.headers['content-type']).toBe('application/json');
    // Executors can tell who calls them, and which version.
    expect(execute!.headers['user-agent']).toMatch(/^arp-run-coordinator\/\d+\.\d+\.\d+/);
    expect(schemaErrors('AtomicExecuteRequest', execute!.body)).toEqual([]);
    expect(execute!.body).toEqual({
      node_run_id: 'node_run_1',
      run_id: 'run_1',
      node_type_ref: echo,
      inputs: { text: 'hello' },
      run_context: { tenant_id: 't1', trace: { trace_id: 'tr-1' } },
      constraints,
    });
    // Claimed before the call: running, bound to the executor.
    const running = await getNodeRun(t, 'node_run_1');
    expect(running.state).toBe('running');
    expect((await getRun(t, 'run_1')).state).toBe('running');

    t.clock.advance(5000);
    gates.release('node_run_1', replies.succeeded('node_run_1', { text: 'hello' }));
    await idle(t);

    const run = await getRun(t, 'run_1');
    expect(run.state).toBe('succeeded');
    expect(run.ended_at).toBe(T5);
    expect(completionError(run)).toBeUndefined();
    expect(await getNodeRun(t, 'node_run_1')).toEqual({
      node_run_id: 'node_run_1',
      run_id: 'run_1',
      node_type_ref: echo,
      kind: 'atomic',
      state: 'succeeded',
      created_at: T0,
      started_at: T0,
      ended_at: T5,
      inputs: { text: 'hello' },
      outputs: { text: 'hello' },
      executor_binding: { executor_instance_id: 'atomic-executor', endpoint: ae.url },
      evaluation_result: { status: 'success', reason_code: 'atomic_completed' },
      extensions: { 'rc.constraints': constraints },
    });
    const events = await runEvents(t, 'run_1');
    expect(eventLabels(events)).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'policy_decided(node.run.execute)',
      'node_evaluated',
      'atomic_executed',
      'run_completed',
    ]);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(events.slice(2, 4).map((e) => e.data)).toEqual([
      {
        action: 'run.start',
        decision: 'allow',
        reason_code: 'policy_default_allow',
        message: 'No PDP configured; RC_POLICY_DEFAULT=allow',
      },
      {
        action: 'node.run.execute',
        decision: 'allow',
        reason_code: 'policy_default_allow',
        message: 'No PDP configured; RC_POLICY_DEFAULT=allow',
      },
    ]);
    expect(events.slice(1).every((e) => e.node_run_id === 'node_run_1')).toBe(true);
    expect(events[5]!.data).toEqual({ state: 'succeeded' });
    expect(events[6]!.data).toEqual({ state: 'succeeded' });
    expect(ae.received(isExecute)).toHaveLength(1);
  });

  it('omits run_context and constraints from the request when the Run has none', async () => {
    const ae = await answeringExecutor((id) => replies.succeeded(id));
    const t = await appWith(ae);
    const { root } = await runToEnd(t);
    expect(root.state).toBe('succeeded');
    expect(ae.requests[0]!.body).toEqual({
      node_run_id: 'node_run_1',
      run_id: 'run_1',
      node_type_ref: echo,
      inputs: { text: 'hi' },
    });
    expect(root.extensions).toBeUndefined();
  });

  it('accepts an executor URL given with a trailing /v1/ and binds the normalised base URL', async () => {
    const ae = await answeringExecutor((id) => replies.succeeded(id));
    const t = await appWith(`${ae.url}/v1/`);
    const { root } = await runToEnd(t);
    expect(root.state).toBe('succeeded');
    expect(ae.requests.map((r) => r.path)).toEqual([AE_EXECUTE]);
    expect(root.executor_binding).toEqual({ executor_instance_id: 'atomic-executor', endpoint: ae.url });
  });
});

describe('atomic failures', () => {
  it('records a failed result: the NodeRun and the Run fail with the executor error', async () => {
    const ae = await answeringExecutor((id) => replies.failed(id, 'boom', 'exploded'));
    const t = await appWith(ae);
    const { run, root, events } = await runToEnd(t);
    expect(root.state).toBe('failed');
    expect(completionError(root)).toEqual({ code: 'boom', message: 'exploded' });
    expect(root.evaluation_result).toEqual({ status: 'fail', reason_code: 'atomic_completed' });
    expect(run.state).toBe('failed');
    expect(completionError(run)).toEqual({ code: 'boom', message: 'exploded' });
    expect(eventLabels(events)).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'policy_decided(node.run.execute)',
      'node_evaluated',
      'atomic_executed',
      'run_completed',
    ]);
    expect(events.at(-2)!.data).toEqual({ state: 'failed' });
  });

  it.each([500, 503])(
    'fails with atomic_executor_error on a %i ErrorEnvelope and never retries execute',
    async (status) => {
      const ae = await answeringExecutor(() => replies.envelope(status, 'kaput', 'the model is down'));
      const t = await h.app({ services: { atomicExecutor: ae.url } }, { retries: 3 });
      const { run, root, events } = await runToEnd(t);
      expect(root.state).toBe('failed');
      const error = completionError(root)!;
      expect(error.code).toBe('atomic_executor_error');
      expect(error.details).toMatchObject({
        status,
        downstream_code: 'kaput',
        downstream_message: 'the model is down',
      });
      expect(run.state).toBe('failed');
      expect(completionError(run)!.code).toBe('atomic_executor_error');
      expect(ae.received(isExecute)).toHaveLength(1);
      // The executor never ran the node as far as the coordinator knows: no atomic_executed.
      expect(eventLabels(events)).toEqual(FAILED_BY_COORDINATOR);
    },
  );

  it('fails with atomic_executor_unavailable when the executor refuses connections, without its address', async () => {
    const url = await closedPortUrl();
    const t = await h.app({ services: { atomicExecutor: url } }, { retries: 2 });
    const { run, root, events } = await runToEnd(t);
    expect(root.state).toBe('failed');
    const error = completionError(root)!;
    expect(error.code).toBe('atomic_executor_unavailable');
    expect(error.details).toEqual({ cause: 'ECONNREFUSED' });
    const hostPort = new URL(url).host;
    expect(JSON.stringify(error)).not.toContain(hostPort);
    expect(JSON.stringify(error)).not.toContain(new URL(url).port);
    expect(JSON.stringify(completionError(run))).not.toContain(hostPort);
    expect(JSON.stringify(events)).not.toContain(hostPort);
    expect(eventLabels(events)).toEqual(FAILED_BY_COORDINATOR);
  });

  it('fails with atomic_executor_unavailable when the executor drops the connection, without retrying', async () => {
    const ae = await answeringExecutor(() => ({ destroy: true }));
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { retries: 3 });
    const { root } = await runToEnd(t);
    expect(completionError(root)!.code).toBe('atomic_executor_unavailable');
    expect(ae.received(isExecute)).toHaveLength(1);
  });

  it('fails with atomic_executor_timeout when the executor does not answer in time, and leaves nothing running', async () => {
    const ae = await answeringExecutor(() => ({ hang: true }));
    // Long enough for the request to reach the executor on a loaded machine (the executor never
    // answers, so the value only bounds how long the test takes).
    const t = await appWith(ae, { executeTimeoutMs: 500 });
    const { run, root, events } = await runToEnd(t);
    expect(root.state).toBe('failed');
    expect(completionError(root)).toMatchObject({
      code: 'atomic_executor_timeout',
      details: { timeout_ms: 500 },
    });
    expect(root.ended_at).toBeDefined();
    expect(run.state).toBe('failed');
    expect(eventLabels(events)).toEqual(FAILED_BY_COORDINATOR);
    // The coordinator gave up on the call: its connection to the executor is gone.
    const [execute] = await ae.waitFor(1, isExecute);
    expect(await execute!.settled).toBe('closed');
    // The executor may still be working on it, so it is told to stop.
    const cancels = await ae.waitFor(
      1,
      (r) => r.method === 'POST' && r.path === aeCancelPath(root.node_run_id),
    );
    expect(cancels).toHaveLength(1);
  });

  it('fails with invalid_executor_result when the executor answers for another NodeRun', async () => {
    const ae = await answeringExecutor(() => ({ json: { node_run_id: 'someone-else', state: 'succeeded' } }));
    const t = await appWith(ae);
    const { run, root, events } = await runToEnd(t);
    expect(root.state).toBe('failed');
    expect(completionError(root)).toMatchObject({
      code: 'invalid_executor_result',
      details: { node_run_id: 'someone-else' },
    });
    expect(root).not.toHaveProperty('outputs');
    expect(run.state).toBe('failed');
    expect(eventLabels(events)).toEqual(FAILED_BY_COORDINATOR);
  });

  it.each([
    ['a body that is not an AtomicExecuteResult', { json: { nope: 1 } }],
    ['a body that is not JSON', { text: 'all good!' }],
    ['an empty body', { status: 200 }],
  ] as [string, Reply][])('fails with atomic_executor_invalid_response on %s', async (_name, reply) => {
    const ae = await answeringExecutor(() => reply);
    const t = await appWith(ae);
    const { run, root, events } = await runToEnd(t);
    expect(root.state).toBe('failed');
    expect(completionError(root)!.code).toBe('atomic_executor_invalid_response');
    expect(run.state).toBe('failed');
    expect(eventLabels(events)).toEqual(FAILED_BY_COORDINATOR);
  });

  it.each(['running', 'queued', 'assigned'])(
    'fails with invalid_executor_result when the result state is the non-terminal %s',
    async (state) => {
      const ae = await answeringExecutor((id) => ({ json: { node_run_id: id, state } }));
      const t = await appWith(ae);
      const { run, root, events } = await runToEnd(t);
      expect(root.state).toBe('failed');
      expect(completionError(root)).toMatchObject({ code: 'invalid_executor_result', details: { state } });
      expect(run.state).toBe('failed');
      expect(eventLabels(events)).toEqual(FAILED_BY_COORDINATOR);
    },
  );
});

describe('cancel while the executor works', () => {
  it('cancels at once, tells the executor, and ignores its late answer', async () => {
    const { ae, gates } = await heldExecutor();
    const cancelGate = new Gates<Reply>();
    // The executor is slow to acknowledge the cancel too: cancel_run must not wait for it.
    ae.on('POST', aeCancelPath('node_run_1'), () => cancelGate.wait('cancel'));
    const t = await appWith(ae);
    const run = await startRun(t, { root_node_type_ref: echo, input: {} });
    const [execute] = await ae.waitFor(1, isExecute);

    t.clock.advance(1000);
    const canceled = await cancelRun(t, run.run_id);
    expect(canceled.state).toBe('canceled');
    const root = await getNodeRun(t, run.root_node_run_id);
    expect(root.state).toBe('canceled');
    expect(completionError(root)!.code).toBe('run_canceled');

    const [cancel] = await ae.waitFor(1, (r) => r.path === aeCancelPath('node_run_1'));
    expect(cancel!.method).toBe('POST');
    expect(cancel!.text).toBe('');
    cancelGate.release('cancel', { status: 200, json: {} });

    // The executor finishes anyway and says it succeeded: nothing changes.
    gates.release('node_run_1', replies.succeeded('node_run_1', { late: true }));
    await execute!.settled;
    await idle(t);
    expect((await getRun(t, run.run_id)).state).toBe('canceled');
    const after = await getNodeRun(t, run.root_node_run_id);
    expect(after.state).toBe('canceled');
    expect(after.outputs).toBeUndefined();
    const events = await runEvents(t, run.run_id);
    expect(eventLabels(events)).toEqual(FAILED_BY_COORDINATOR);
    expect(events.at(-1)!.data).toMatchObject({ state: 'canceled', reason: 'run_canceled' });
    expect(events.some((e) => e.type === 'atomic_executed')).toBe(false);
    expect(ae.received(isExecute)).toHaveLength(1);
  });
});
