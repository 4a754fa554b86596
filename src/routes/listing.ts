/**
 * The listing API's handlers (openapi/run-listing.yaml): read-only, beside the ARP operations.
 * Query parameters are checked here, each with its own message; an unknown one is an error rather
 * than a filter silently not applied. Cursors are opaque to clients: a position in the listing
 * order, base64url-encoded.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RUN_STATES, type RunState } from '../core/model.js';
import { invalidQuery, runNotFound } from '../errors.js';
import type { RunFilter, RunPosition, Store } from '../store/store.js';
import { type Handler, JSON_CONTENT_TYPE } from './handlers.js';

export type ListingOperationId = 'list_runs' | 'count_runs' | 'list_node_runs';

const RUN_PAGE = { fallback: 50, max: 200 };
const NODE_RUN_PAGE = { fallback: 500, max: 1_000 };
const FILTERS = ['root_node_type_id', 'tenant_id', 'started_after', 'started_before'];
// RFC 3339 date-time, as the document's `format: date-time` says.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

type Query = Record<string, string | string[] | undefined>;

/** The query's parameters, each given at most once, none beyond `allowed`. */
function readQuery(request: FastifyRequest, allowed: readonly string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const [name, value] of Object.entries(request.query as Query)) {
    if (!allowed.includes(name)) throw invalidQuery(name, `is not known here (known: ${allowed.join(', ')})`);
    if (Array.isArray(value)) throw invalidQuery(name, 'must be given once');
    if (value !== undefined) values.set(name, value);
  }
  return values;
}

function filterOf(query: Map<string, string>): RunFilter {
  const time = (name: string) => {
    const text = query.get(name);
    if (text === undefined) return undefined;
    const ms = Date.parse(text);
    if (!DATE_TIME.test(text) || Number.isNaN(ms)) throw invalidQuery(name, 'must be an RFC 3339 date-time');
    return ms;
  };
  const text = (name: string) => {
    const value = query.get(name);
    if (value === '') throw invalidQuery(name, 'must not be empty');
    // No Run holds U+0000 (request bodies with it are refused), and PostgreSQL text cannot.
    if (value?.includes('\u0000')) throw invalidQuery(name, 'must not contain U+0000 (NUL)');
    return value;
  };
  const stateText = query.get('state');
  let states: RunState[] | undefined;
  if (stateText !== undefined) {
    states = stateText.split(',').map((state) => {
      if (!RUN_STATES.includes(state as RunState))
        throw invalidQuery('state', `must be a comma-separated list of ${RUN_STATES.join(', ')}`);
      return state as RunState;
    });
  }
  return {
    states,
    rootNodeTypeId: text('root_node_type_id'),
    tenantId: text('tenant_id'),
    startedFrom: time('started_after'),
    startedBefore: time('started_before'),
  };
}

function limitOf(query: Map<string, string>, page: { fallback: number; max: number }): number {
  const text = query.get('limit');
  if (text === undefined) return page.fallback;
  if (!/^\d{1,4}$/.test(text) || Number(text) < 1 || Number(text) > page.max)
    throw invalidQuery('limit', `must be an integer from 1 to ${page.max}`);
  return Number(text);
}

const encodeCursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function decodeCursor<T>(query: Map<string, string>, valid: (value: unknown) => value is T): T | undefined {
  const text = query.get('cursor');
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!valid(value))
    throw invalidQuery('cursor', 'is not a cursor this service gave out (pass next_cursor unchanged)');
  return value;
}

/** Start times a cursor may hold: years 0000 to 9999, as RFC 3339 writes them. */
const EARLIEST = Date.parse('0000-01-01T00:00:00Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');
const isId = (value: unknown): value is string =>
  typeof value === 'string' && value !== '' && !value.includes('\u0000');
const isRunCursor = (value: unknown): value is [number, string] =>
  Array.isArray(value) &&
  value.length === 2 &&
  Number.isSafeInteger(value[0]) &&
  value[0] >= EARLIEST &&
  value[0] <= LATEST &&
  isId(value[1]);

/** `{"items":[...],"next_cursor":...}` from items already serialised. */
function page(items: readonly string[], nextCursor: string | undefined): string {
  const next = nextCursor === undefined ? '' : `,"next_cursor":${JSON.stringify(nextCursor)}`;
  return `{"items":[${items.join(',')}]${next}}`;
}

export interface ListingContext {
  readonly store: Pick<Store, 'listRuns' | 'countRuns' | 'listNodeRuns'>;
}

export type ListingHandler = (
  request: FastifyRequest,
  reply: FastifyReply,
  ctx: ListingContext,
) => ReturnType<Handler>;

export const listingHandlers: Record<ListingOperationId, ListingHandler> = {
  list_runs: async (request, reply, { store }) => {
    const query = readQuery(request, ['state', ...FILTERS, 'limit', 'cursor']);
    const filter = filterOf(query);
    const limit = limitOf(query, RUN_PAGE);
    const cursor = decodeCursor(query, isRunCursor);
    const after: RunPosition | undefined = cursor && { startedAt: cursor[0], runId: cursor[1] };
    // One more than asked tells whether another page follows.
    const found = await store.listRuns(filter, after, limit + 1);
    const shown = found.slice(0, limit);
    const last = shown.at(-1);
    const next =
      found.length > limit && last ? encodeCursor([last.position.startedAt, last.position.runId]) : undefined;
    const items = shown.map(
      (run) => `{"run":${run.json},"root_node_type_id":${JSON.stringify(run.rootNodeTypeId)}}`,
    );
    return reply.type(JSON_CONTENT_TYPE).send(page(items, next));
  },

  count_runs: async (request, _reply, { store }) => {
    const counts = await store.countRuns(filterOf(readQuery(request, FILTERS)));
    return { counts, total: Object.values(counts).reduce((sum, count) => sum + count, 0) };
  },

  list_node_runs: async (request, reply, { store }) => {
    const runId = (request.params as Record<string, string>).run_id!;
    const query = readQuery(request, ['limit', 'cursor']);
    const limit = limitOf(query, NODE_RUN_PAGE);
    const after = decodeCursor(query, isId);
    const principal = request.principal;
    const found = await store.listNodeRuns(runId, {
      limit: limit + 1,
      ...(after !== undefined ? { after } : {}),
      ...(principal?.kind === 'assignment' ? { under: principal.assignment.nodeRunId } : {}),
    });
    if (found === undefined) throw runNotFound(runId);
    const shown = found.slice(0, limit);
    const next =
      found.length > limit
        ? encodeCursor((JSON.parse(shown.at(-1)!) as { node_run_id: string }).node_run_id)
        : undefined;
    return reply.type(JSON_CONTENT_TYPE).send(page(shown, next));
  },
};
