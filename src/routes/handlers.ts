/**
 * Thin handlers, one per operationId: read the request, call the coordinator, shape the reply.
 * `Record<OperationId, Handler>` makes the type checker prove that every operation has one.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Coordinator } from '../coordinator/coordinator.js';
import { isTerminal, type RunRecord } from '../core/model.js';
import { invalidQuery, nodeRunNotFound, runNotFound } from '../errors.js';
import type { EventStreams } from '../events/streams.js';
import type {
  Health,
  NodeRunCompleteRequest,
  NodeRunEvaluationReportRequest,
  NodeRunsCreateRequest,
  NodeRunsCreateResponse,
  operations,
  RunStartRequest,
  VersionInfo,
} from '../gen/contract.js';

import { type StreamRegistry, sendEventStream } from '../http/ndjson.js';
import { parseTraceparent } from '../tracing/w3c.js';

export type OperationId = keyof operations;

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

export interface HandlerContext {
  readonly coordinator: Coordinator;
  readonly streams: StreamRegistry;
  readonly events: EventStreams;
  readonly version: VersionInfo;
  readonly clock: () => Date;
  /** Throws the 404/405 the router would give for this URL (ids never contain `:`). */
  readonly routeMiss: (request: FastifyRequest) => never;
  /** The health report (store and services); absent = always ok. */
  readonly health?: () => Promise<Health>;
}

export type Handler = (request: FastifyRequest, reply: FastifyReply, ctx: HandlerContext) => Promise<unknown>;

type Params = Record<string, string>;

/**
 * An id with a `:` is a verb path hit with the wrong method (e.g. `GET /v1/runs/x:cancel`), and an
 * empty id segment (`GET /v1/runs/`) is no route at all: both get the router's 404/405.
 */
function idParam(request: FastifyRequest, name: string, ctx: HandlerContext): string {
  const id = (request.params as Params)[name]!;
  if (id === '' || id.includes(':')) ctx.routeMiss(request);
  return id;
}

function streamQuery(request: FastifyRequest): { follow: boolean; afterSeq: number } {
  const query = request.query as Record<string, string | string[] | undefined>;
  const single = (name: string) => {
    const value = query[name];
    if (Array.isArray(value)) throw invalidQuery(name, 'must be given once');
    return value;
  };
  const followText = single('follow');
  if (followText !== undefined && followText !== 'true' && followText !== 'false') {
    throw invalidQuery('follow', 'must be true or false');
  }
  const afterText = single('after_seq');
  if (afterText !== undefined && !/^\d{1,15}$/.test(afterText))
    throw invalidQuery('after_seq', 'must be an integer from 0 to 999999999999999 (at most 15 digits)');
  return { follow: followText === 'true', afterSeq: afterText === undefined ? 0 : Number(afterText) };
}

/**
 * Following a finished Run is reading its snapshot (terminal is final): such a request takes no
 * place among the capped follow streams. A Run the store no longer holds is finished too.
 */
function following(query: { follow: boolean }, record: RunRecord | undefined): boolean {
  return query.follow && record !== undefined && !isTerminal(record.run.state);
}

export const handlers: Record<OperationId, Handler> = {
  health: async (_request, _reply, ctx) =>
    ctx.health ? ctx.health() : { status: 'ok', time: ctx.clock().toISOString() },

  version: async (_request, _reply, ctx) => ctx.version,

  start_run: async (request, _reply, ctx) => {
    const caller = parseTraceparent(request.headers.traceparent);
    // With tracing on, the Run hangs under this request's span (a child of the caller's).
    const span = request.otelSpan?.spanContext();
    const trace = caller && span?.traceId === caller.traceId ? { ...caller, spanId: span.spanId } : caller;
    return ctx.coordinator.startRun(
      request.body as RunStartRequest,
      trace ? { trace, requestId: request.id } : undefined,
    );
  },

  get_run: async (request, reply, ctx) =>
    reply.type(JSON_CONTENT_TYPE).send(await ctx.coordinator.runJson(idParam(request, 'run_id', ctx))),

  cancel_run: async (request, _reply, ctx) => ctx.coordinator.cancelRun((request.params as Params).run_id!),

  stream_run_events: async (request, reply, ctx) => {
    const runId = idParam(request, 'run_id', ctx);
    const query = streamQuery(request);
    const record = await ctx.coordinator.store.getRun(runId);
    if (!record) throw runNotFound(runId);
    await sendEventStream(reply, ctx.events, ctx.streams, {
      runId,
      ...query,
      follow: following(query, record),
    });
    return reply;
  },

  create_node_runs: async (request, _reply, ctx) => {
    const body = request.body as NodeRunsCreateRequest;
    const response: NodeRunsCreateResponse = { node_runs: await ctx.coordinator.createNodeRuns(body) };
    if (body.extensions) response.extensions = body.extensions;
    return response;
  },

  get_node_run: async (request, reply, ctx) =>
    reply
      .type(JSON_CONTENT_TYPE)
      .send(await ctx.coordinator.nodeRunJson(idParam(request, 'node_run_id', ctx))),

  stream_node_run_events: async (request, reply, ctx) => {
    const nodeRunId = idParam(request, 'node_run_id', ctx);
    const query = streamQuery(request);
    const runId = await ctx.coordinator.store.locate(nodeRunId);
    if (runId === undefined) throw nodeRunNotFound(nodeRunId);
    const record = query.follow ? await ctx.coordinator.store.getRun(runId) : undefined;
    await sendEventStream(reply, ctx.events, ctx.streams, {
      runId,
      subtreeOf: nodeRunId,
      ...query,
      follow: following(query, record),
    });
    return reply;
  },

  report_node_run_evaluation: async (request, reply, ctx) => {
    const nodeRunId = (request.params as Params).node_run_id!;
    await ctx.coordinator.reportEvaluation(nodeRunId, request.body as NodeRunEvaluationReportRequest);
    return reply.code(204).send();
  },

  complete_node_run: async (request, reply, ctx) => {
    const nodeRunId = (request.params as Params).node_run_id!;
    await ctx.coordinator.completeNodeRun(nodeRunId, request.body as NodeRunCompleteRequest);
    return reply.code(204).send();
  },
};
