/**
 * The coordinator's API as the cluster suites call it, over real sockets to a process: every answer
 * is checked against the contract (the body of a success against its schema, an error against
 * ErrorEnvelope), and event logs are read as NDJSON and checked to be RunEvents with gap-free `seq`.
 * Executor fakes are shared by every process of a test; each process is given the fake's URL plus
 * `/<its name>` (`executorUrl`), so that the fake sees which process called it (`caller`).
 */
import { expect } from 'vitest';
import type { RunEvent } from '../../src/core/model.js';
import type { NodeRun, NodeRunsCreateRequest, Run, RunStartRequest } from '../../src/gen/contract.js';
import { callJson, type FakeService, type JsonResult, type RecordedRequest } from '../helpers/executors.js';
import { contractValidators, type LineReader, openStream, parseEvents } from '../helpers/ndjson.js';
import { within } from './processes.js';

export const AE_EXECUTE = /^\/\w+\/v1\/atomic-node-runs:execute$/;
export const AE_CANCEL = /^\/\w+\/v1\/atomic-node-runs\/[^/]+:cancel$/;
export const CE_BEGIN = /^\/\w+\/v1\/composite-node-runs:begin$/;
export const CE_CANCEL = /^\/\w+\/v1\/composite-node-runs\/[^/]+:cancel$/;

/** The fake's URL as the process named `name` is given it. */
export const executorUrl = (fake: FakeService, name: string) => `${fake.url}/${name}`;
/** The name of the process that sent a request to an executor fake. */
export const caller = (r: RecordedRequest) => r.path.split('/')[1];
/** The NodeRun a request to an executor is about (body or path). */
export const subject = (r: RecordedRequest): string =>
  (r.body as { node_run_id?: string } | undefined)?.node_run_id ??
  decodeURIComponent(/\/([^/]+):cancel$/.exec(r.path)?.[1] ?? '');

export const isExecute = (r: RecordedRequest) => r.method === 'POST' && AE_EXECUTE.test(r.path);
export const isAtomicCancel = (r: RecordedRequest) => r.method === 'POST' && AE_CANCEL.test(r.path);
export const isBegin = (r: RecordedRequest) => r.method === 'POST' && CE_BEGIN.test(r.path);

export const atomicType = { node_type_id: 'atomic.echo', version: '1.0.0' };
export const compositeType = { node_type_id: 'composite.plan', version: '1.0.0' };

/** `rc.completion_error` of a NodeRun or Run. */
export const completionError = (o: { extensions?: Record<string, unknown> | null }) =>
  o.extensions?.['rc.completion_error'] as { code: string; message: string } | undefined;

/** Fails unless the body of an answer matches its contract schema (ErrorEnvelope for errors). */
function checkContract(res: JsonResult, schema: string | undefined): void {
  if (res.status >= 400) {
    expect(contractValidators().validate('ErrorEnvelope', res.body), res.text).toEqual([]);
  } else if (schema) {
    expect(contractValidators().validate(schema, res.body), res.text).toEqual([]);
  }
}

export interface CallOptions {
  readonly body?: unknown;
  readonly token?: string;
  /** Schema of a successful answer's body. */
  readonly schema?: string;
}

/** One call over a fresh connection; the answer is checked against the contract. */
export async function call(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  options: CallOptions = {},
): Promise<JsonResult> {
  const res = await callJson(base, path, {
    method,
    ...(options.body === undefined ? {} : { body: options.body }),
    ...(options.token === undefined ? {} : { token: options.token }),
  });
  checkContract(res, options.schema);
  return res;
}

/** The answer's body when its status is `status`; fails naming the answer otherwise. */
export function expectStatus<T>(res: JsonResult, status: number): T {
  expect(res.status, res.text).toBe(status);
  return res.body as T;
}

export const startRun = async (base: string, request: Partial<RunStartRequest> = {}, token?: string) =>
  expectStatus<Run>(
    await call(base, 'POST', '/v1/runs', {
      body: { root_node_type_ref: compositeType, input: {}, ...request },
      schema: 'Run',
      ...(token ? { token } : {}),
    }),
    200,
  );

export const createNodeRuns = (base: string, request: NodeRunsCreateRequest, token?: string) =>
  call(base, 'POST', '/v1/node-runs', {
    body: request,
    schema: 'NodeRunsCreateResponse',
    ...(token ? { token } : {}),
  });

export const complete = (base: string, nodeRunId: string, body: unknown, token?: string) =>
  call(base, 'POST', `/v1/node-runs/${nodeRunId}:complete`, { body, ...(token ? { token } : {}) });

export const getRun = async (base: string, runId: string) =>
  expectStatus<Run>(await call(base, 'GET', `/v1/runs/${runId}`, { schema: 'Run' }), 200);

export const getNodeRun = async (base: string, nodeRunId: string) =>
  expectStatus<NodeRun>(await call(base, 'GET', `/v1/node-runs/${nodeRunId}`, { schema: 'NodeRun' }), 200);

/** A Run's event log as it is now, checked: RunEvents of that Run, `seq` 1..n without a gap. */
export async function events(base: string, runId: string): Promise<RunEvent[]> {
  const res = await callJson(base, `/v1/runs/${runId}/events`);
  expect(res.status, res.text).toBe(200);
  const lines = res.text === '' ? [] : res.text.replace(/\n$/, '').split('\n');
  const log = parseEvents(lines);
  expectGapFree(log, runId);
  return log;
}

export function expectGapFree(log: readonly RunEvent[], runId: string): void {
  expect(
    log.map((e) => e.seq),
    `seq of ${runId}`,
  ).toEqual(log.map((_, i) => i + 1));
  expect(new Set(log.map((e) => e.run_id))).toEqual(new Set(log.length > 0 ? [runId] : []));
}

/** A `follow=true` stream of a Run, read event by event. */
export class Follow {
  readonly #lines: LineReader;
  readonly received: RunEvent[] = [];

  private constructor(lines: LineReader) {
    this.#lines = lines;
  }

  static async open(base: string, runId: string, afterSeq?: number): Promise<Follow> {
    const query = afterSeq === undefined ? '' : `&after_seq=${afterSeq}`;
    const stream = await openStream(base, `/v1/runs/${runId}/events?follow=true${query}`);
    expect(stream.status).toBe(200);
    return new Follow(stream.lines);
  }

  /** The next `count` events, within `ms`; fails if the stream ends first. */
  async take(count: number, ms = 20_000): Promise<RunEvent[]> {
    const lines = await within(this.#lines.take(count), ms, `${count} more events on a follow stream`);
    const taken = parseEvents(lines);
    this.received.push(...taken);
    return taken;
  }

  /** Events until the stream ends (the Run has finished and its last event was written). */
  async rest(ms = 30_000): Promise<RunEvent[]> {
    const lines = await within(this.#lines.rest(), ms, 'the end of a follow stream');
    const taken = parseEvents(lines);
    this.received.push(...taken);
    return taken;
  }
}
