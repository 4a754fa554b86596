/**
 * OpenTelemetry spans with an in-memory exporter: a client's trace continues through the request
 * span, the decision commits, the NodeRun's dispatch and the call to the executor, whose
 * `traceparent` names the call's own span. Without a tracer provider, nothing is recorded.
 */
import { SpanKind } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '../../src/gen/contract.js';
import { AE_EXECUTE, getRun, idle, useDispatch } from '../dispatch/harness.js';
import { replies } from '../helpers/executors.js';

const h = useDispatch();
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
afterEach(() => exporter.reset());

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };

async function echoExecutor() {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
  return ae;
}

describe('spans', () => {
  it('follow a client trace through the request, the commits, the dispatch and the executor call', async () => {
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { tracerProvider: provider });
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: echo, input: {} },
      headers: { traceparent: `00-${TRACE}-${CALLER_SPAN}-01` },
    });
    expect(res.statusCode, res.body).toBe(200);
    const run = res.json() as Run;
    await idle(t);
    expect((await getRun(t, run.run_id)).state).toBe('succeeded');

    const spans = exporter.getFinishedSpans();
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const ids = (s: (typeof spans)[number]) => s.spanContext();
    // Every span of the Run's own work is in the caller's trace (the test's GET has its own).
    for (const span of spans.filter((s) => s.name !== 'get_run'))
      expect(ids(span).traceId, span.name).toBe(TRACE);

    const [server] = byName('start_run');
    expect(server!.kind).toBe(SpanKind.SERVER);
    expect(server!.parentSpanContext?.spanId).toBe(CALLER_SPAN);
    // The Run records the request's span, so its later work hangs under it.
    expect(run.run_context?.trace).toEqual({
      trace_id: TRACE,
      span_id: ids(server!).spanId,
      request_id: res.headers['x-request-id'],
    });

    const commits = byName('commit');
    expect(commits.length).toBeGreaterThanOrEqual(3); // start, claim, result
    for (const commit of commits) expect(commit.attributes['arp.run_id']).toBe(run.run_id);
    expect(commits.some((c) => c.parentSpanContext?.spanId === ids(server!).spanId)).toBe(true);

    const [dispatch] = byName('dispatch');
    expect(dispatch!.attributes).toMatchObject({
      'arp.run_id': run.run_id,
      'arp.node_run_id': run.root_node_run_id,
    });
    expect(dispatch!.parentSpanContext?.spanId).toBe(ids(server!).spanId);
    expect(commits.some((c) => c.parentSpanContext?.spanId === ids(dispatch!).spanId)).toBe(true);

    const [call] = byName('atomic_executor execute');
    expect(call!.kind).toBe(SpanKind.CLIENT);
    expect(call!.parentSpanContext?.spanId).toBe(ids(dispatch!).spanId);
    expect(call!.attributes).toMatchObject({
      'arp.service': 'atomic_executor',
      'arp.operation': 'execute',
      'arp.node_run_id': run.root_node_run_id,
      'http.response.status_code': 200,
    });
    // The executor's traceparent is the call's own span.
    expect(ae.requests[0]!.headers.traceparent).toBe(`00-${TRACE}-${ids(call!).spanId}-01`);
  });

  it('a request without a traceparent gets a trace of its own, and its Run records none', async () => {
    const t = await h.app({}, { tracerProvider: provider });
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: echo, input: {} },
    });
    expect(res.statusCode).toBe(200);
    expect((res.json() as Run).run_context).toBeUndefined();
    const [server] = exporter.getFinishedSpans().filter((s) => s.name === 'start_run');
    expect(server!.parentSpanContext).toBeUndefined();
    const get = await t.request({ method: 'GET', url: `/v1/runs/${(res.json() as Run).run_id}` });
    expect(get.statusCode).toBe(200);
    const [getSpan] = exporter.getFinishedSpans().filter((s) => s.name === 'get_run');
    expect(getSpan!.attributes['arp.run_id']).toBe((res.json() as Run).run_id);
  });

  it('records nothing without a tracer provider', async () => {
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url } });
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: echo, input: {} },
      headers: { traceparent: `00-${TRACE}-${CALLER_SPAN}-01` },
    });
    expect(res.statusCode).toBe(200);
    await idle(t);
    expect(exporter.getFinishedSpans()).toEqual([]);
    // The trace still travels: it is recorded in the Run.
    expect(String(ae.requests[0]!.headers.traceparent)).toMatch(new RegExp(`^00-${TRACE}-`));
  });
});
