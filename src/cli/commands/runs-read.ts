/** `arp-rc runs list` and `arp-rc runs get ID`: finding Runs and drawing one Run's NodeRun tree. */
import type { NodeRun, Run, RunState } from '../../gen/contract.js';
import { type RcClient, segment } from '../client.js';
import { type Command, str } from '../command.js';
import { EXIT, ServiceError, UsageError } from '../errors.js';
import { nodeRunTree, type RunListItem, runDetails, runsTable } from '../render.js';

const RUN_STATES: readonly RunState[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

interface Page<T> {
  readonly items: T[];
  readonly next_cursor?: string;
}

function states(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const list = text.split(',').map((s) => s.trim());
  const unknown = list.filter((s) => !RUN_STATES.includes(s as RunState));
  if (unknown.length > 0 || list.length === 0) {
    throw new UsageError(`--state: expected some of ${RUN_STATES.join(',')}, not ${JSON.stringify(text)}`);
  }
  return list.join(',');
}

function time(flag: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (
    !/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ||
    Number.isNaN(Date.parse(text))
  ) {
    throw new UsageError(`--${flag}: expected an ISO 8601 time such as 2026-01-31T12:00:00Z, not ${text}`);
  }
  return new Date(text).toISOString();
}

function limit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 200)
    throw new UsageError(`--limit: expected 1 to 200, not ${text}`);
  return n;
}

/** An older coordinator answers the listing routes with 404 `not_found` (no such route): say so. */
const noListingApi = (error: unknown) =>
  error instanceof ServiceError && error.status === 404 && error.code === 'not_found';

async function listingCall<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (!noListingApi(error)) throw error;
    const { status, code, message, requestId } = error as ServiceError;
    throw new ServiceError(status, code, `${message}; this service has no listing API (/rc/v1)`, requestId);
  }
}

export const runsListCommand: Command = {
  words: ['runs', 'list'],
  args: [],
  summary: 'list Runs, newest first',
  options: {
    state: { type: 'string' },
    type: { type: 'string' },
    tenant: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    limit: { type: 'string' },
    cursor: { type: 'string' },
    all: { type: 'boolean' },
  },
  help: `
Options:
  --state S[,S...]   only Runs in these states (queued, running, succeeded, failed, canceled)
  --type T           only Runs whose root NodeRun has node type id T
  --tenant T         only Runs started with run_context.tenant_id T
  --since TIME       only Runs started at or after TIME (ISO 8601)
  --until TIME       only Runs started before TIME (ISO 8601)
  --limit N          Runs per page, 1-200 (the service's default is 50)
  --cursor C         continue after a previous page (its next_cursor)
  --all              fetch every page
  --json             the page as the service answered it; with --all, {"items": [...]} of every page

Prints RUN ID, STATE, ROOT TYPE, STARTED and DURATION ("-" until the Run ends). When more Runs
match, the command that fetches the next page is printed on stderr.

Examples:
  arp-rc runs list --state running,queued
  arp-rc runs list --type composite.planner --since 2026-01-01T00:00:00Z --all
  arp-rc runs list --limit 10 --json | jq -r '.items[].run.run_id'`,
  async run(ctx) {
    const { values } = ctx;
    const query = {
      state: states(str(values, 'state')),
      root_node_type_id: str(values, 'type'),
      tenant_id: str(values, 'tenant'),
      started_after: time('since', str(values, 'since')),
      started_before: time('until', str(values, 'until')),
      limit: limit(str(values, 'limit')),
      cursor: str(values, 'cursor'),
    };
    const all = values.all === true;
    const items: RunListItem[] = [];
    let page: Page<RunListItem>;
    do {
      page = await listingCall(
        ctx.client.json<Page<RunListItem>>('GET', '/rc/v1/runs', { query, signal: ctx.signal }),
      );
      items.push(...page.items);
      query.cursor = page.next_cursor;
    } while (all && page.next_cursor);
    if (ctx.json) {
      ctx.out(JSON.stringify(all ? { items } : page));
      return EXIT.ok;
    }
    ctx.out(items.length === 0 ? 'No Runs match.' : runsTable(items, ctx.style));
    if (page.next_cursor) ctx.err(`more Runs: arp-rc runs list ... --cursor ${page.next_cursor} (or --all)`);
    return EXIT.ok;
  },
};

/**
 * Every NodeRun of the Run, page after page. Without the listing API (an older coordinator answers
 * its unknown route with 404 `not_found`), only the root NodeRun.
 */
export async function allNodeRuns(
  client: RcClient,
  run: Run,
  signal: AbortSignal,
): Promise<{ nodes: NodeRun[]; complete: boolean }> {
  const nodes: NodeRun[] = [];
  let cursor: string | undefined;
  try {
    do {
      const path = `/rc/v1/runs/${segment(run.run_id)}/node-runs`;
      const page = await client.json<Page<NodeRun>>('GET', path, { query: { limit: 1000, cursor }, signal });
      nodes.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
  } catch (error) {
    if (!noListingApi(error)) throw error;
    const root = await client.json<NodeRun>('GET', `/v1/node-runs/${segment(run.root_node_run_id)}`, {
      signal,
    });
    return { nodes: [root], complete: false };
  }
  return { nodes, complete: true };
}

export const runsGetCommand: Command = {
  words: ['runs', 'get'],
  args: ['RUN_ID'],
  summary: 'show a Run and its NodeRun tree',
  options: {},
  help: `
Prints the Run (state, root type, tenant, times, error) and the tree of its NodeRuns: id, kind,
state, type@version and duration of each, and the error the coordinator recorded on it
(extensions["rc.completion_error"]). Children are drawn in the order they were created.
--json prints the Run as the service answered it (GET /v1/runs/RUN_ID).

Example:
  arp-rc runs get run_1`,
  async run(ctx) {
    const runId = ctx.args[0]!;
    const run = await ctx.client.json<Run>('GET', `/v1/runs/${segment(runId)}`, { signal: ctx.signal });
    if (ctx.json) {
      ctx.out(JSON.stringify(run));
      return EXIT.ok;
    }
    const { nodes, complete } = await allNodeRuns(ctx.client, run, ctx.signal);
    const root = nodes.find((n) => n.node_run_id === run.root_node_run_id);
    const rootType = root && `${root.node_type_ref.node_type_id}@${root.node_type_ref.version}`;
    ctx.out(`${runDetails(run, rootType, ctx.style)}\n\n${nodeRunTree(nodes, ctx.style)}`);
    if (!complete) ctx.err('the service has no listing API (/rc/v1): only the root NodeRun is shown');
    return EXIT.ok;
  },
};
