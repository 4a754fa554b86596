/**
 * OpenTelemetry spans, when a tracer provider is given (src/server.ts builds one from the standard
 * `OTEL_*` variables; tests give one with an in-memory exporter). Without one nothing here runs:
 * no hooks, no context manager, no wrapped store.
 *
 * Spans: one per request (`SERVER`, named by its operationId, continuing an inbound `traceparent`),
 * one per decision commit, one per dispatch of a NodeRun (in the Run's recorded trace, so a dispatch
 * on another instance or after a restart joins the same trace), and one per outgoing call
 * (`CLIENT`, whose id is the span id of the `traceparent` the callee receives). Run and NodeRun ids
 * are attributes.
 */

import {
  type Attributes,
  type Context,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import type { FastifyInstance } from 'fastify';
import type { RunContext } from '../gen/contract.js';
import type { Store } from '../store/store.js';
import { parseTraceparent, type TraceParent } from './w3c.js';

export const ATTR = {
  runId: 'arp.run_id',
  nodeRunId: 'arp.node_run_id',
  operation: 'arp.operation',
  service: 'arp.service',
  outcome: 'arp.outcome',
  requestId: 'arp.request_id',
  status: 'http.response.status_code',
  method: 'http.request.method',
  route: 'http.route',
} as const;

let contextManagerInstalled = false;

export class Tracing {
  readonly tracer: Tracer;

  constructor(provider: TracerProvider, version: string) {
    this.tracer = provider.getTracer('arp-run-coordinator', version);
    // Parent spans follow the code through awaits (requests, dispatches, commits).
    if (!contextManagerInstalled) {
      contextManagerInstalled = context.setGlobalContextManager(
        new AsyncLocalStorageContextManager().enable(),
      );
    }
  }

  /** A request's span, child of the caller's `traceparent` when it sent one. */
  serverSpan(name: string, traceparent: string | string[] | undefined, attributes: Attributes): Span {
    const parent = parseTraceparent(traceparent);
    return this.tracer.startSpan(
      name,
      { kind: SpanKind.SERVER, attributes },
      parent ? remote(parent) : ROOT_CONTEXT,
    );
  }

  /** Runs `fn` with `span` as the parent of the spans it starts. */
  within<T>(span: Span, fn: () => T): T {
    return context.with(trace.setSpan(context.active(), span), fn);
  }

  /**
   * Runs `fn` in a span of its own, child of the active span or, when there is none (background
   * work), of the Run's recorded trace.
   */
  async inSpan<T>(
    name: string,
    attributes: Attributes,
    fn: (span: Span) => Promise<T>,
    options: { kind?: SpanKind; runContext?: RunContext | undefined } = {},
  ): Promise<T> {
    const parent = this.#parentFor(options.runContext);
    const span = this.tracer.startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes }, parent);
    try {
      return await context.with(trace.setSpan(parent, span), () => fn(span));
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
      throw error;
    } finally {
      span.end();
    }
  }

  #parentFor(runContext: RunContext | undefined): Context {
    const active = context.active();
    const activeSpan = trace.getSpanContext(active);
    const recorded = recordedParent(runContext);
    // The Run's trace wins over an unrelated active span (e.g. a request of another trace that
    // triggered this Run's dispatch); an active span in the same trace is the closer parent.
    if (recorded && activeSpan?.traceId !== recorded.traceId) return remote(recorded);
    return active;
  }
}

/** The Run's recorded trace as a parent, when it is a W3C one. */
function recordedParent(runContext: RunContext | undefined): TraceParent | undefined {
  const trace = runContext?.trace;
  if (!trace?.trace_id || !trace.span_id) return undefined;
  return parseTraceparent(`00-${trace.trace_id.toLowerCase()}-${trace.span_id.toLowerCase()}-01`);
}

function remote(parent: TraceParent): Context {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}

/** `store` with a span around every decision commit (`commit`, with the Run's id). */
export function tracedStore(store: Store, tracing: Tracing): Store {
  const mutate = ((runId, needs, decide) =>
    tracing.inSpan('commit', { [ATTR.runId]: runId }, () =>
      store.mutate(runId, needs, decide),
    )) as Store['mutate'];
  return new Proxy(store, {
    get(target, key) {
      if (key === 'mutate') return mutate;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * A `SERVER` span per request, from its first hook to its response: named by the operationId (or
 * `HTTP <method>` outside the contract), continuing the caller's `traceparent`, with the Run or
 * NodeRun id of its path.
 */
export function installServerSpans(app: FastifyInstance, tracing: Tracing): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const operation = request.routeOptions.config?.operationId;
    const params = request.params as Record<string, string | undefined> | undefined;
    const attributes: Attributes = {
      [ATTR.method]: request.method,
      [ATTR.requestId]: request.id,
      ...(request.routeOptions.url ? { [ATTR.route]: request.routeOptions.url } : {}),
      ...(params?.run_id ? { [ATTR.runId]: params.run_id } : {}),
      ...(params?.node_run_id ? { [ATTR.nodeRunId]: params.node_run_id } : {}),
    };
    request.otelSpan = tracing.serverSpan(
      operation ?? `HTTP ${request.method}`,
      request.headers.traceparent,
      attributes,
    );
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    request.otelSpan?.end();
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const span = request.otelSpan;
    if (span) {
      span.setAttribute(ATTR.status, reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
    done();
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's span, when tracing is on. */
    otelSpan?: Span;
  }
}
