/**
 * The pages, addressed by the URL's hash so that the service needs no route per page:
 * `#/runs?state=running&tenant_id=t1` (the list, its filters in the query) and `#/runs/<run id>`.
 * Hashes that do not start with `#/` (the skip link's `#main`) are not routes.
 */
import type { RunState } from '../../src/gen/contract.js';

export type Route =
  | { readonly page: 'runs'; readonly filters: RunFilters }
  | { readonly page: 'run'; readonly runId: string }
  | { readonly page: 'not_found'; readonly hash: string };

export interface RunFilters {
  readonly state: readonly RunState[];
  readonly root_node_type_id?: string;
  readonly tenant_id?: string;
  readonly started_after?: string;
  readonly started_before?: string;
}

export const RUN_STATES: readonly RunState[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

const TEXT_FILTERS = ['root_node_type_id', 'tenant_id', 'started_after', 'started_before'] as const;

/** The route of a hash; undefined when the hash is not a route (an in-page anchor). */
export function parseRoute(hash: string): Route | undefined {
  if (hash === '' || hash === '#' || hash === '#/') return { page: 'runs', filters: { state: [] } };
  if (!hash.startsWith('#/')) return undefined;
  const [path = '', query = ''] = hash.slice(1).split(/\?(.*)/s);
  if (path === '/runs') return { page: 'runs', filters: parseFilters(new URLSearchParams(query)) };
  const match = /^\/runs\/([^/]+)$/.exec(path);
  if (match) {
    try {
      return { page: 'run', runId: decodeURIComponent(match[1]!) };
    } catch {
      return { page: 'not_found', hash };
    }
  }
  return { page: 'not_found', hash };
}

export function parseFilters(params: URLSearchParams): RunFilters {
  const state = (params.get('state') ?? '')
    .split(',')
    .filter((s): s is RunState => (RUN_STATES as readonly string[]).includes(s));
  const filters: { -readonly [K in keyof RunFilters]: RunFilters[K] } = { state };
  for (const name of TEXT_FILTERS) {
    const value = params.get(name)?.trim();
    if (value) filters[name] = value;
  }
  return filters;
}

/** The filters as query parameters, as both the hash and the listing API take them. */
export function filterParams(filters: RunFilters, withState = true): URLSearchParams {
  const params = new URLSearchParams();
  if (withState && filters.state.length > 0) params.set('state', filters.state.join(','));
  for (const name of TEXT_FILTERS) {
    const value = filters[name];
    if (value) params.set(name, value);
  }
  return params;
}

export function runsHash(filters: RunFilters): string {
  const query = filterParams(filters).toString();
  return query ? `#/runs?${query}` : '#/runs';
}

export const runHash = (runId: string): string => `#/runs/${encodeURIComponent(runId)}`;
