/**
 * Policy checkpoints through the real app: `run.start` at start and `node.run.execute` before each
 * dispatch go to a loopback fake PDP when one is configured (a PDP that cannot answer is a deny);
 * without one, the local default decides. Every decision is a `policy_decided` event.
 */
import { describe, expect, it } from 'vitest';
import type { PolicyDecision, PolicyDecisionRequest } from '../../src/gen/contract.js';
import { closedPortUrl, type FakeService, type Reply, replies } from '../helpers/executors.js';
import {
  AE_EXECUTE,
  completionError,
  eventLabels,
  getNodeRun,
  getRun,
  idle,
  PDP_DECIDE,
  runEvents,
  schemaErrors,
  startRun,
  useDispatch,
} from './harness.js';

const h = useDispatch();

const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };

async function echoExecutor(): Promise<FakeService> {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
  return ae;
}

/** A fake PDP answering each request with `decide(request)`. */
async function pdp(decide: (request: PolicyDecisionRequest) => PolicyDecision | Reply) {
  const fake = await h.fake();
  fake.on('POST', PDP_DECIDE, (r) => {
    const answer = decide(r.body as PolicyDecisionRequest);
    return 'decision' in answer ? { json: answer } : answer;
  });
  return fake;
}

const allow: PolicyDecision = { decision: 'allow', reason_code: 'ok' };
const deny = (reason_code: string): PolicyDecision => ({ decision: 'deny', reason_code, message: 'no' });

describe('with a PDP', () => {
  it('asks for run.start and node.run.execute with the full request, and records both decisions', async () => {
    const ae = await echoExecutor();
    const policy = await pdp(() => allow);
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: policy.url } });
    const constraints = { budgets: { max_steps: 3 } };
    const run = await startRun(t, {
      root_node_type_ref: echo,
      run_context: { tenant_id: 't1' },
      constraints,
    });
    await idle(t);
    expect((await getRun(t, run.run_id)).state).toBe('succeeded');
    const bodies = policy.requests.map((r) => r.body);
    for (const body of bodies) expect(schemaErrors('PolicyDecisionRequest', body)).toEqual([]);
    expect(bodies).toEqual([
      {
        action: 'run.start',
        run_id: 'run_1',
        node_run_id: 'node_run_1',
        node_type_ref: echo,
        run_context: { tenant_id: 't1' },
        constraints,
      },
      {
        action: 'node.run.execute',
        run_id: 'run_1',
        node_run_id: 'node_run_1',
        node_type_ref: echo,
        run_context: { tenant_id: 't1' },
        constraints,
      },
    ]);
    const decided = (await runEvents(t, run.run_id)).filter((e) => e.type === 'policy_decided');
    expect(decided.map((e) => e.data)).toEqual([
      { action: 'run.start', decision: 'allow', reason_code: 'ok' },
      { action: 'node.run.execute', decision: 'allow', reason_code: 'ok' },
    ]);
  });

  it('fails the NodeRun with policy_denied when node.run.execute is denied, and never calls the executor', async () => {
    const ae = await echoExecutor();
    const policy = await pdp((request) => (request.action === 'node.run.execute' ? deny('no_tools') : allow));
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: policy.url } });
    const run = await startRun(t, { root_node_type_ref: echo });
    expect(run.state).toBe('running');
    await idle(t);
    const root = await getNodeRun(t, run.root_node_run_id);
    expect(root.state).toBe('failed');
    expect(completionError(root)).toMatchObject({
      code: 'policy_denied',
      details: { action: 'node.run.execute', decision: 'deny', reason_code: 'no_tools' },
    });
    expect(root.started_at).toBeUndefined();
    expect(root.executor_binding).toBeUndefined();
    expect(completionError(await getRun(t, run.run_id))!.code).toBe('policy_denied');
    const events = await runEvents(t, run.run_id);
    expect(eventLabels(events)).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'policy_decided(node.run.execute)',
      'run_completed',
    ]);
    expect(events[3]!.data).toEqual({
      action: 'node.run.execute',
      decision: 'deny',
      reason_code: 'no_tools',
      message: 'no',
    });
    expect(ae.requests).toEqual([]);
  });

  it('answers start_run with 200 and the failed Run when run.start is denied', async () => {
    const ae = await echoExecutor();
    const policy = await pdp(() => deny('tenant_blocked'));
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: policy.url } });
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: echo, input: {} },
    });
    expect(res.statusCode, res.body).toBe(200);
    const run = res.json();
    expect(run.state).toBe('failed');
    expect(completionError(run)).toMatchObject({
      code: 'policy_denied',
      details: { action: 'run.start', reason_code: 'tenant_blocked' },
    });
    await idle(t);
    const root = await getNodeRun(t, run.root_node_run_id);
    expect(root.state).toBe('failed');
    expect(completionError(root)!.code).toBe('policy_denied');
    const events = await runEvents(t, run.run_id);
    expect(eventLabels(events)).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'run_completed',
    ]);
    expect(events[2]!.data).toMatchObject({ action: 'run.start', decision: 'deny' });
    // The denied root is never dispatched: no execute decision was asked for, no executor called.
    expect(policy.requests).toHaveLength(1);
    expect(ae.requests).toEqual([]);
  });

  it('treats require_approval as a deny (there is no approval workflow)', async () => {
    const ae = await echoExecutor();
    const policy = await pdp((request) =>
      request.action === 'node.run.execute' ? { decision: 'require_approval', reason_code: 'gate' } : allow,
    );
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: policy.url } });
    const run = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    expect(completionError(await getNodeRun(t, run.root_node_run_id))).toMatchObject({
      code: 'policy_denied',
      details: { decision: 'require_approval' },
    });
    expect(ae.requests).toEqual([]);
  });

  it('denies with pdp_unavailable when the PDP cannot be reached (retried first)', async () => {
    const ae = await echoExecutor();
    const url = await closedPortUrl();
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: url } }, { retries: 2 });
    const run = await startRun(t, { root_node_type_ref: echo });
    expect(run.state).toBe('failed');
    const error = completionError(run)!;
    expect(error).toMatchObject({ code: 'policy_denied', details: { reason_code: 'pdp_unavailable' } });
    expect(JSON.stringify(error)).not.toContain(new URL(url).host);
    const events = await runEvents(t, run.run_id);
    expect(events[2]!.data).toMatchObject({
      action: 'run.start',
      decision: 'deny',
      reason_code: 'pdp_unavailable',
    });
    await idle(t);
    expect(ae.requests).toEqual([]);
  });

  it.each([
    ['answers 500', replies.envelope(500, 'opa_down')],
    ['answers an invalid decision', { json: { decision: 'maybe' } }],
  ] as [string, Reply][])('denies with pdp_unavailable when the PDP %s', async (_name, reply) => {
    const ae = await echoExecutor();
    const policy = await pdp(() => reply);
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: policy.url } });
    const run = await startRun(t, { root_node_type_ref: echo });
    expect(run.state).toBe('failed');
    expect(completionError(run)!.details).toMatchObject({ reason_code: 'pdp_unavailable' });
  });

  it('retries a PDP that answers 503 once (decisions are safe to repeat)', async () => {
    const ae = await echoExecutor();
    let calls = 0;
    const policy = await pdp(() => (++calls === 1 ? replies.envelope(503, 'warming_up') : allow));
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: policy.url } }, { retries: 1 });
    const run = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    expect((await getRun(t, run.run_id)).state).toBe('succeeded');
    expect(policy.requests.map((r) => (r.body as PolicyDecisionRequest).action)).toEqual([
      'run.start',
      'run.start',
      'node.run.execute',
    ]);
  });
});

describe('without a PDP', () => {
  it("fails the Run with policy_denied when the local default is 'deny'", async () => {
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url }, policyDefault: 'deny' });
    const run = await startRun(t, { root_node_type_ref: echo });
    expect(run.state).toBe('failed');
    expect(completionError(run)).toMatchObject({
      code: 'policy_denied',
      details: { action: 'run.start', decision: 'deny', reason_code: 'policy_unconfigured' },
    });
    await idle(t);
    expect(eventLabels(await runEvents(t, run.run_id))).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided(run.start)',
      'run_completed',
    ]);
    expect(ae.requests).toEqual([]);
  });

  it('decides nothing in pure state-authority mode (no executor configured)', async () => {
    const t = await h.app({ services: {} });
    const run = await startRun(t, { root_node_type_ref: echo });
    expect(run.state).toBe('running');
    expect((await getNodeRun(t, run.root_node_run_id)).state).toBe('queued');
    expect(eventLabels(await runEvents(t, run.run_id))).toEqual(['run_started', 'node_run_assigned']);
  });
});
