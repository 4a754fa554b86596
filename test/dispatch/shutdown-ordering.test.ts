/**
 * Ordering at the edges: once shutdown has begun no dispatch starts (not even one that was waiting on
 * policy), and once a Run is terminal nothing but what the design allows is appended to its log (a
 * `run.start` decision that arrives after a cancel is not recorded).
 */
import { describe, expect, it } from 'vitest';
import type { PolicyDecision, PolicyDecisionRequest } from '../../src/gen/contract.js';
import { Gates, replies } from '../helpers/executors.js';
import { until } from '../helpers/until.js';
import { AE_EXECUTE, eventLabels, PDP_DECIDE, runEvents, useDispatch } from './harness.js';

const h = useDispatch();
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };
const allow: PolicyDecision = { decision: 'allow', reason_code: 'ok' };

/** A PDP that answers `run.start` at once and holds `node.run.execute` until released (by node_run_id). */
async function setup(hold: 'run.start' | 'node.run.execute') {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
  const pdp = await h.fake();
  const gates = new Gates<PolicyDecision>();
  pdp.on('POST', PDP_DECIDE, async (r) => {
    const body = r.body as PolicyDecisionRequest;
    return { json: body.action === hold ? await gates.wait(body.node_run_id ?? '') : allow };
  });
  const t = await h.app({ services: { atomicExecutor: ae.url, pdp: pdp.url } });
  const isHeld = (r: { body: unknown }) => (r.body as PolicyDecisionRequest).action === hold;
  return { ae, pdp, gates, t, isHeld };
}

describe('shutdown', () => {
  it('a dispatch waiting on policy when shutdown begins is neither claimed nor executed', async () => {
    const { ae, pdp, gates, t, isHeld } = await setup('node.run.execute');
    const started = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: echo, input: {} },
    });
    expect(started.statusCode, started.body).toBe(200);
    const { root_node_run_id: rootId } = started.json() as { root_node_run_id: string };
    await pdp.waitFor(1, isHeld);

    const closing = t.app.close();
    await until(() => t.app.coordinator.stopping, 'shutdown began');
    gates.release(rootId, allow);
    await closing;

    expect(ae.received((r) => r.path === AE_EXECUTE)).toEqual([]);
    const root = await t.app.coordinator.store.getNodeRun(rootId);
    expect(root?.nodeRun.state).toBe('queued');
  });
});

describe('nothing is appended after a Run is terminal', () => {
  it.each([
    ['allow', allow],
    ['deny', { decision: 'deny', reason_code: 'no' } as PolicyDecision],
  ])('a run.start %s that arrives after the Run was canceled is not recorded', async (_name, decision) => {
    const { gates, pdp, t, isHeld } = await setup('run.start');
    const starting = t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { run_id: 'r1', root_node_type_ref: echo, input: {} },
    });
    const [held] = await pdp.waitFor(1, isHeld);
    const canceled = await t.request({ method: 'POST', url: '/v1/runs/r1:cancel' });
    expect(canceled.json().state).toBe('canceled');

    gates.release((held!.body as PolicyDecisionRequest).node_run_id ?? '', decision);
    const started = await starting;
    expect(started.statusCode, started.body).toBe(200);
    expect(started.json().state).toBe('canceled');
    expect(eventLabels(await runEvents(t, 'r1'))).toEqual([
      'run_started',
      'node_run_assigned',
      'run_completed',
    ]);
  });
});
