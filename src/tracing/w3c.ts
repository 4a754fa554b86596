/**
 * W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/) as the coordinator uses
 * it: a Run started inside a trace records that trace in `run_context.trace`, and every call made
 * for the Run later (on any instance, after any restart) carries a `traceparent` in the same trace
 * and the request id, taken from that stored record.
 */
import { randomBytes } from 'node:crypto';
import type { RunContext } from '../gen/contract.js';

export interface TraceParent {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero: the caller's span. */
  readonly spanId: string;
  /** Whether the caller sampled the trace (flag 01). */
  readonly sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The caller's trace from a `traceparent` header; undefined when absent or invalid (then ignored). */
export function parseTraceparent(header: string | string[] | undefined): TraceParent | undefined {
  if (typeof header !== 'string' || header.length > 512) return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as string[];
  // Version ff is invalid; version 00 has exactly four fields; later versions may add fields.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId: traceId!, spanId: spanId!, sampled: (Number.parseInt(flags!, 16) & 1) === 1 };
}

/**
 * `run_context.trace` for a Run started inside the caller's trace: its trace id, span id and the
 * request id, unless the caller set the trace itself (which then stands as given).
 */
export function recordedTrace(
  runContext: RunContext | undefined,
  parent: TraceParent | undefined,
  requestId: string | undefined,
): RunContext | undefined {
  if (runContext?.trace !== undefined || parent === undefined) return runContext;
  const trace = {
    trace_id: parent.traceId,
    span_id: parent.spanId,
    ...(requestId ? { request_id: requestId } : {}),
  };
  return { ...runContext, trace };
}

/**
 * Headers for a call made for a Run: `traceparent` with the Run's trace id and a new span id (this
 * call), when the recorded trace id is a W3C one; `x-request-id` when a request id was recorded.
 */
export function traceHeaders(
  runContext: RunContext | undefined,
  /** The call's own span, when spans are recorded: its trace and id go in the header. */
  span?: TraceParent,
): Record<string, string> | undefined {
  const trace = runContext?.trace;
  const headers: Record<string, string> = {};
  const traceId = trace?.trace_id?.toLowerCase();
  if (span) {
    headers.traceparent = `00-${span.traceId}-${span.spanId}-${span.sampled ? '01' : '00'}`;
  } else if (traceId && TRACE_ID.test(traceId) && traceId !== ZERO_TRACE) {
    headers.traceparent = `00-${traceId}-${newSpanId()}-01`;
  }
  const requestId = trace?.request_id;
  if (requestId && /^[\x21-\x7e]{1,128}$/.test(requestId)) headers['x-request-id'] = requestId;
  return Object.keys(headers).length > 0 ? headers : undefined;
}

function newSpanId(): string {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (id !== ZERO_SPAN) return id;
  }
}
