import { describe, expect, it } from 'vitest';
import { parseTraceparent, recordedTrace, traceHeaders } from '../../src/tracing/w3c.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('reads version 00 with its sampled flag', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      sampled: true,
    });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      sampled: false,
    });
  });

  it('accepts a later version with more fields, and ignores everything invalid', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-extra`)?.traceId).toBe(TRACE);
    for (const bad of [
      undefined,
      ['a', 'b'],
      '',
      `00-${TRACE}-${SPAN}-01-extra`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE.slice(1)}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}`,
      `00-${TRACE}-${SPAN}-01${'x'.repeat(600)}`,
    ]) {
      expect(parseTraceparent(bad as never), String(bad)).toBeUndefined();
    }
  });
});

describe('recordedTrace', () => {
  const parent = { traceId: TRACE, spanId: SPAN, sampled: true };

  it("adds the caller's trace, span and request id to the context", () => {
    expect(recordedTrace({ tenant_id: 't' }, parent, 'req-1')).toEqual({
      tenant_id: 't',
      trace: { trace_id: TRACE, span_id: SPAN, request_id: 'req-1' },
    });
    expect(recordedTrace(undefined, parent, undefined)).toEqual({
      trace: { trace_id: TRACE, span_id: SPAN },
    });
  });

  it('leaves a trace the client set, and a context without a caller trace, as they are', () => {
    const own = { trace: { trace_id: 'mine' } };
    expect(recordedTrace(own, parent, 'req-1')).toBe(own);
    const plain = { tenant_id: 't' };
    expect(recordedTrace(plain, undefined, 'req-1')).toBe(plain);
    expect(recordedTrace(undefined, undefined, 'req-1')).toBeUndefined();
  });
});

describe('traceHeaders', () => {
  it('continues a W3C trace id with a new span per call, and carries the request id', () => {
    const context = { trace: { trace_id: TRACE, span_id: SPAN, request_id: 'req-1' } };
    const a = traceHeaders(context)!;
    const b = traceHeaders(context)!;
    expect(a.traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    expect(a.traceparent).not.toBe(b.traceparent);
    expect(a['x-request-id']).toBe('req-1');
  });

  it('sends no traceparent for a trace id that is not a W3C one, and nothing without a trace', () => {
    expect(traceHeaders({ trace: { trace_id: 'tr-1', request_id: 'r' } })).toEqual({ 'x-request-id': 'r' });
    expect(traceHeaders({ trace: { trace_id: 'tr-1' } })).toBeUndefined();
    expect(traceHeaders({ trace: { trace_id: TRACE, request_id: 'bad id\n' } })).toEqual({
      traceparent: expect.stringMatching(new RegExp(`^00-${TRACE}-`)),
    });
    expect(traceHeaders({ tenant_id: 't' })).toBeUndefined();
    expect(traceHeaders(undefined)).toBeUndefined();
  });
});
