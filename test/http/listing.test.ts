/**
 * The listing API (openapi/run-listing.yaml) over HTTP: Runs newest first, filtered and paged with
 * cursors that later Runs never disturb, counts by state, the NodeRuns of a Run, and every way of
 * asking badly answered with a 400 envelope naming the parameter. Every response is checked against
 * the listing document by the test app.
 */
import { describe, expect, it } from 'vitest';
import type { ErrorEnvelope, NodeRun, Run } from '../../src/gen/contract.js';
import { createChildren, ref, startRun, type TestApp, useApp } from '../helpers/app.js';

const app = useApp();

interface RunList {
  items: { run: Run; root_node_type_id: string }[];
  next_cursor?: string;
}

async function get<T>(t: TestApp, url: string): Promise<T> {
  const res = await t.request({ method: 'GET', url });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
  return res.json() as T;
}

/** Starts Runs a minute apart (in the app's clock), oldest first. */
async function startRuns(t: TestApp, bodies: Record<string, unknown>[]): Promise<string[]> {
  const ids: string[] = [];
  for (const body of bodies) {
    ids.push((await startRun(t, body)).run_id);
    t.clock.advance(60_000);
  }
  return ids;
}

const runIds = (list: RunList) => list.items.map((item) => item.run.run_id);

describe('GET /rc/v1/runs', () => {
  it('lists Runs newest first with their root node type, and an empty list when there are none', async () => {
    const t = await app();
    expect(await get<RunList>(t, '/rc/v1/runs')).toEqual({ items: [] });
    const [a, b] = await startRuns(t, [{ root_node_type_ref: ref('composite.a') }, {}]);
    const list = await get<RunList>(t, '/rc/v1/runs');
    expect(runIds(list)).toEqual([b, a]);
    expect(list.items[1]).toEqual({
      run: await get<Run>(t, `/v1/runs/${a}`),
      root_node_type_id: 'composite.a',
    });
    expect(list.next_cursor).toBeUndefined();
  });

  it('pages with next_cursor, and Runs started between pages never shift the later pages', async () => {
    const t = await app();
    const ids = await startRuns(t, [{}, {}, {}, {}, {}]);
    const newestFirst = [...ids].reverse();
    const first = await get<RunList>(t, '/rc/v1/runs?limit=2');
    expect(runIds(first)).toEqual(newestFirst.slice(0, 2));
    expect(typeof first.next_cursor).toBe('string');
    await startRuns(t, [{}, {}]);
    const second = await get<RunList>(t, `/rc/v1/runs?limit=2&cursor=${first.next_cursor}`);
    expect(runIds(second)).toEqual(newestFirst.slice(2, 4));
    const third = await get<RunList>(t, `/rc/v1/runs?limit=2&cursor=${second.next_cursor}`);
    expect(runIds(third)).toEqual(newestFirst.slice(4));
    expect(third.next_cursor).toBeUndefined();
  });

  it('filters by state, root node type, tenant and start time', async () => {
    const t = await app();
    const start = t.clock.now().getTime();
    const [a, b, c] = await startRuns(t, [
      { root_node_type_ref: ref('composite.a'), run_context: { tenant_id: 'acme' } },
      { root_node_type_ref: ref('composite.b'), run_context: { tenant_id: 'acme' } },
      { root_node_type_ref: ref('composite.a'), run_context: { tenant_id: 'globex' } },
    ]);
    const cancel = await t.request({ method: 'POST', url: `/v1/runs/${b}:cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    const ids = async (query: string) => runIds(await get<RunList>(t, `/rc/v1/runs?${query}`));
    expect(await ids('state=canceled')).toEqual([b]);
    expect(await ids('state=running,canceled')).toEqual([c, b, a]);
    expect(await ids('root_node_type_id=composite.a')).toEqual([c, a]);
    expect(await ids('tenant_id=acme')).toEqual([b, a]);
    expect(await ids('tenant_id=acme&state=running')).toEqual([a]);
    const minute = (n: number) => encodeURIComponent(new Date(start + n * 60_000).toISOString());
    expect(await ids(`started_after=${minute(1)}`)).toEqual([c, b]);
    expect(await ids(`started_before=${minute(1)}`)).toEqual([a]);
    expect(await ids(`started_after=${minute(1)}&started_before=${minute(2)}`)).toEqual([b]);
    // Another offset names the same instant.
    const offset = encodeURIComponent(new Date(start + 60_000).toISOString().replace('Z', '+00:00'));
    expect(await ids(`started_after=${offset}`)).toEqual([c, b]);
  });

  it('answers 400 naming the parameter to every malformed query, and lists nothing', async () => {
    const t = await app();
    await startRuns(t, [{}]);
    const cases: [string, string][] = [
      ['state=done', 'state'],
      ['state=running,', 'state'],
      ['state=running&state=failed', 'state'],
      ['limit=0', 'limit'],
      ['limit=201', 'limit'],
      ['limit=ten', 'limit'],
      ['limit=1.5', 'limit'],
      ['started_after=yesterday', 'started_after'],
      ['started_after=2026-01-01', 'started_after'],
      ['started_before=2026-13-01T00:00:00Z', 'started_before'],
      ['cursor=nonsense', 'cursor'],
      [`cursor=${Buffer.from('{"a":1}').toString('base64url')}`, 'cursor'],
      [`cursor=${Buffer.from('[1.5,"run_1"]').toString('base64url')}`, 'cursor'],
      ['tenant_id=', 'tenant_id'],
      ['root_node_type_id=', 'root_node_type_id'],
      ['status=running', 'status'],
    ];
    for (const [query, parameter] of cases) {
      const res = await t.request({ method: 'GET', url: `/rc/v1/runs?${query}` });
      expect(res.statusCode, query).toBe(400);
      const envelope = res.json() as ErrorEnvelope;
      expect(envelope.error.code, query).toBe('invalid_request');
      expect(envelope.error.message, query).toContain(parameter);
      expect(envelope.error.details, query).toEqual({
        errors: [{ path: `querystring/${parameter}`, message: expect.any(String) }],
      });
    }
  });

  it('refuses other methods with 405 and the allowed one', async () => {
    const t = await app();
    const res = await t.request({ method: 'POST', url: '/rc/v1/runs', payload: {} });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('GET');
  });
});

describe('GET /rc/v1/run-counts', () => {
  it('counts Runs by state under the filters', async () => {
    const t = await app();
    const none = { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
    expect(await get(t, '/rc/v1/run-counts')).toEqual({ counts: none, total: 0 });
    const [a] = await startRuns(t, [
      { run_context: { tenant_id: 'acme' } },
      { run_context: { tenant_id: 'acme' } },
      { run_context: { tenant_id: 'globex' } },
    ]);
    expect((await t.request({ method: 'POST', url: `/v1/runs/${a}:cancel` })).statusCode).toBe(200);
    expect(await get(t, '/rc/v1/run-counts')).toEqual({
      counts: { ...none, running: 2, canceled: 1 },
      total: 3,
    });
    expect(await get(t, '/rc/v1/run-counts?tenant_id=acme')).toEqual({
      counts: { ...none, running: 1, canceled: 1 },
      total: 2,
    });
    const res = await t.request({ method: 'GET', url: '/rc/v1/run-counts?state=running' });
    expect(res.statusCode).toBe(400);
    expect((res.json() as ErrorEnvelope).error.message).toContain('state');
  });
});

describe('GET /rc/v1/runs/{run_id}/node-runs', () => {
  it('lists every NodeRun of the Run, in pages by id, each as GET /v1/node-runs serves it', async () => {
    const t = await app();
    const run = await startRun(t);
    const created = await createChildren(t, run.run_id, run.root_node_run_id, [
      { node_type_ref: ref('composite.a'), inputs: {} },
      { node_type_ref: ref('composite.b'), inputs: {} },
      { node_type_ref: ref('composite.c'), inputs: {} },
    ]);
    expect(created.statusCode, created.body).toBe(200);
    const all = await get<{ items: NodeRun[]; next_cursor?: string }>(
      t,
      `/rc/v1/runs/${run.run_id}/node-runs`,
    );
    const ids = all.items.map((nodeRun) => nodeRun.node_run_id);
    expect(ids).toHaveLength(4);
    expect(ids).toEqual([...ids].sort());
    expect(ids).toContain(run.root_node_run_id);
    expect(all.next_cursor).toBeUndefined();
    for (const nodeRun of all.items) {
      expect(nodeRun).toEqual(await get<NodeRun>(t, `/v1/node-runs/${nodeRun.node_run_id}`));
    }

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await get<{ items: NodeRun[]; next_cursor?: string }>(
        t,
        `/rc/v1/runs/${run.run_id}/node-runs?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((nodeRun) => nodeRun.node_run_id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual(ids);
  });

  it('answers 404 run_not_found for an unknown Run and 400 for a bad page', async () => {
    const t = await app();
    const missing = await t.request({ method: 'GET', url: '/rc/v1/runs/run_nope/node-runs' });
    expect(missing.statusCode).toBe(404);
    expect((missing.json() as ErrorEnvelope).error.code).toBe('run_not_found');
    const run = await startRun(t);
    for (const query of ['limit=1001', 'cursor=', 'cursor=%%%', 'state=running']) {
      const res = await t.request({ method: 'GET', url: `/rc/v1/runs/${run.run_id}/node-runs?${query}` });
      expect(res.statusCode, query).toBe(400);
    }
  });
});

describe('the listing document', () => {
  it('is served at /rc/openapi.json with the contract components it names', async () => {
    const t = await app();
    const document = await get<{
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    }>(t, '/rc/openapi.json');
    expect(Object.keys(document.paths)).toEqual([
      '/rc/v1/runs',
      '/rc/v1/run-counts',
      '/rc/v1/runs/{run_id}/node-runs',
    ]);
    for (const name of ['Run', 'NodeRun', 'ErrorEnvelope', 'RunList', 'RunCounts', 'NodeRunList'])
      expect(document.components.schemas[name], name).toBeDefined();
  });
});
