/**
 * A trace followed from a client through a Run to the executors: start_run inside a W3C trace
 * records it in `run_context.trace`, and every call made for the Run (policy, execute, begin,
 * cancel) carries a `traceparent` in that trace and the request id.
 */
import { describe, expect, it } from 'vitest';
import type { Run } from '../../src/gen/contract.js';
import {
  AE_EXECUTE,
  aeCancelPath,
  CE_BEGIN,
  getRun,
  idle,
  PDP_DECIDE,
  useDispatch,
} from '../dispatch/harness.js';
import { Gates, type Reply, replies } from '../helpers/executors.js';

const h = useDispatch();

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE}-${CALLER_SPAN}-01`;
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };
const inTrace = new RegExp(`^00-${TRACE}-([0-9a-f]{16})-01$`);

async function start(t: Awaited<ReturnType<typeof h.app>>, body: Record<string, unknown>, headers = {}) {
  const res = await t.request({ method: 'POST', url: '/v1/runs', payload: body, headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Run;
}

describe('trace context', () => {
  it('records the caller trace in run_context and sends it with the policy check and the execute', async () => {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
    const pdp = await h.fake();
    pdp.on('POST', PDP_DECIDE, () => ({ json: { decision: 'allow' } }));
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: pdp.url } });

    const run = await start(
      t,
      { root_node_type_ref: echo, input: {}, run_context: { tenant_id: 't1' } },
      { traceparent: TRACEPARENT, 'x-request-id': 'client-req-7' },
    );
    expect(run.run_context).toEqual({
      tenant_id: 't1',
      trace: { trace_id: TRACE, span_id: CALLER_SPAN, request_id: 'client-req-7' },
    });
    await idle(t);
    expect((await getRun(t, run.run_id)).state).toBe('succeeded');

    const calls = [...pdp.requests, ...ae.requests];
    expect(calls.map((r) => r.path)).toEqual([PDP_DECIDE, PDP_DECIDE, AE_EXECUTE]);
    const spans = new Set<string>();
    for (const call of calls) {
      const match = inTrace.exec(String(call.headers.traceparent));
      expect(match, `${call.path}: ${call.headers.traceparent}`).not.toBeNull();
      spans.add(match![1]!);
      expect(call.headers['x-request-id']).toBe('client-req-7');
    }
    // Each call is its own span in the trace, none of them the caller's.
    expect(spans.size).toBe(3);
    expect(spans.has(CALLER_SPAN)).toBe(false);
    // The executor sees the trace in the work order too.
    expect((ae.requests[0]!.body as { run_context?: unknown }).run_context).toEqual(run.run_context);
  });

  it('keeps a trace the client put in run_context, and continues it when it is a W3C trace id', async () => {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
    const t = await h.app({ services: { atomicExecutor: ae.url } });
    const own = { trace_id: 'aaaabbbbccccddddeeeeffff00001111', request_id: 'own-req' };
    const run = await start(
      t,
      { root_node_type_ref: echo, input: {}, run_context: { trace: own } },
      { traceparent: TRACEPARENT },
    );
    expect(run.run_context).toEqual({ trace: own });
    await idle(t);
    expect(String(ae.requests[0]!.headers.traceparent)).toMatch(/^00-aaaabbbbccccddddeeeeffff00001111-/);
    expect(ae.requests[0]!.headers['x-request-id']).toBe('own-req');
  });

  it('records nothing without a valid traceparent, and sends none', async () => {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
    const t = await h.app({ services: { atomicExecutor: ae.url } });
    const run = await start(t, { root_node_type_ref: echo, input: {} }, { traceparent: 'not-a-trace' });
    expect(run.run_context).toBeUndefined();
    await idle(t);
    expect(ae.requests[0]!.headers.traceparent).toBeUndefined();
  });

  it('an identical start retried in another trace is the same start, with the first trace', async () => {
    const t = await h.app({});
    const body = { run_id: 'run-traced', root_node_type_ref: echo, input: {} };
    const first = await start(t, body, { traceparent: TRACEPARENT });
    const other = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
    const again = await start(t, body, { traceparent: other });
    expect(again.run_context).toEqual(first.run_context);
    expect(again.run_context?.trace?.trace_id).toBe(TRACE);
  });

  it('cancels sent to the executors carry the trace, also when the cancel is owed after the dispatch', async () => {
    const ae = await h.fake();
    const gates = new Gates<Reply>();
    ae.on('POST', AE_EXECUTE, (r) => gates.wait((r.body as { node_run_id: string }).node_run_id));
    ae.on('POST', /^\/v1\/atomic-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
    const t = await h.app({ services: { atomicExecutor: ae.url } });
    const run = await start(t, { root_node_type_ref: echo, input: {} }, { traceparent: TRACEPARENT });
    await ae.waitFor(1, (r) => r.path === AE_EXECUTE);
    const cancelled = await t.request({ method: 'POST', url: `/v1/runs/${run.run_id}:cancel` });
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    const [cancel] = await ae.waitFor(1, (r) => r.path === aeCancelPath(run.root_node_run_id));
    expect(String(cancel!.headers.traceparent)).toMatch(inTrace);
    gates.release(run.root_node_run_id, replies.succeeded(run.root_node_run_id));
    await idle(t);
  });

  it('a composite executor gets the trace with begin', async () => {
    const ce = await h.fake();
    ce.on('POST', CE_BEGIN, () => ({ json: { accepted: true } }));
    ce.on('POST', /^\/v1\/composite-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
    // The executor never calls back here; the endpoint it is given only has to be an URL.
    const t = await h.app({ services: { compositeExecutor: ce.url }, publicUrl: 'http://127.0.0.1:9' });
    const run = await start(
      t,
      { root_node_type_ref: { node_type_id: 'composite.plan', version: '1.0.0' }, input: {} },
      { traceparent: TRACEPARENT },
    );
    const [begin] = await ce.waitFor(1, (r) => r.path === CE_BEGIN);
    expect(String(begin!.headers.traceparent)).toMatch(inTrace);
    expect(begin!.headers['x-request-id']).toBe(run.run_context?.trace?.request_id);
    await t.request({ method: 'POST', url: `/v1/runs/${run.run_id}:cancel` });
    const [cancel] = await ce.waitFor(1, (r) => r.path.endsWith(':cancel'));
    expect(String(cancel!.headers.traceparent)).toMatch(inTrace);
  });
});
