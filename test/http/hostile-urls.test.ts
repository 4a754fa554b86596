/**
 * Hostile URLs and methods: every run_id the service accepts is addressable on every route by a
 * real URL client, ids no client can address are refused when they are created, and whatever the
 * router rejects (bad percent-encoding, over-long segments, undeclared methods) is an ErrorEnvelope.
 */
import type { InjectOptions } from 'fastify';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../src/contract/json-limits.js';
import { MAX_CLIENT_ID_LENGTH } from '../../src/core/ids.js';
import { ref, type TestApp, useApp } from '../helpers/app.js';
import { nestedJson } from '../helpers/nested.js';

const newApp = useApp();

async function listening(): Promise<{ t: TestApp; base: string }> {
  const t = await newApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as { port: number };
  return { t, base: `http://127.0.0.1:${port}` };
}

/** `fetch` through a fresh connection, so the URL goes through the WHATWG parser like any client's. */
async function send(base: string, path: string, init: { method?: string; body?: unknown } = {}) {
  const response = await fetch(new URL(path, base), {
    method: init.method ?? 'GET',
    ...(init.body === undefined
      ? {}
      : { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await response.text();
  return { status: response.status, text, json: () => JSON.parse(text) };
}

const ADDRESSABLE: [string, string][] = [
  ['101 characters', 'r'.repeat(101)],
  ['the longest accepted id', 'r'.repeat(MAX_CLIENT_ID_LENGTH)],
  ['the longest id of 3-byte characters', '€'.repeat(MAX_CLIENT_ID_LENGTH)],
  ['the longest id of 4-byte characters', '😀'.repeat(MAX_CLIENT_ID_LENGTH / 2)],
  ['a query mark', 'a?b'],
  ['a fragment mark', 'a#b'],
  ['a percent sign', '100%'],
  ['an encoded slash, literally', 'a%2Fb'],
  ['an encoded colon, literally', 'a%3Acancel'],
  ['a backslash', 'a\\b'],
  ['a semicolon', 'a;b'],
  ['leading and trailing dots', '.a.'],
  ['three dots', '...'],
  ['reserved characters', "a+b&c=d@e[f]!'()*,$"],
  ['quotes and brackets', '"<{}>"|^`'],
  ['non-ASCII letters', 'réunion-東京'],
];

describe('ids in URLs', () => {
  it.each(ADDRESSABLE)('a run_id with %s is addressable on every route', async (_name, runId) => {
    const { base } = await listening();
    const path = `/v1/runs/${encodeURIComponent(runId)}`;
    const body = { run_id: runId, root_node_type_ref: ref('composite.root'), input: {} };
    const started = await send(base, '/v1/runs', { method: 'POST', body });
    expect(started.status, started.text).toBe(200);
    const rootId = started.json().root_node_run_id as string;

    const got = await send(base, path);
    expect(got.status, got.text.slice(0, 300)).toBe(200);
    expect(got.json().run_id).toBe(runId);
    const events = await send(base, `${path}/events`);
    expect(events.status, events.text.slice(0, 300)).toBe(200);
    expect(events.text.trim().split('\n')).toHaveLength(2);
    const child = await send(base, '/v1/node-runs', {
      method: 'POST',
      body: {
        run_id: runId,
        parent_node_run_id: rootId,
        node_runs: [{ node_type_ref: ref('atomic.a'), inputs: {} }],
      },
    });
    expect(child.status, child.text.slice(0, 300)).toBe(200);
    const canceled = await send(base, `${path}:cancel`, { method: 'POST' });
    expect(canceled.status, canceled.text.slice(0, 300)).toBe(200);
    expect(canceled.json()).toMatchObject({ run_id: runId, state: 'canceled' });
    expect((await send(base, path)).json().state).toBe('canceled');
  });

  it.each([
    ['a single dot', '.'],
    ['two dots', '..'],
    // Lone surrogates are refused in every string of a body (hostile-bodies.test.ts).
    ['one character too many', 'r'.repeat(MAX_CLIENT_ID_LENGTH + 1)],
  ])('a run_id that no URL can carry (%s) is a 400 at start_run', async (_name, runId) => {
    const t = await newApp();
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { run_id: runId, root_node_type_ref: ref('composite.root'), input: {} },
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error).toMatchObject({
      code: 'invalid_request',
      details: { errors: [{ path: '/run_id' }] },
    });
  });

  it.each<[InjectOptions['method'], string]>([
    ['GET', '/v1/runs/%ff'],
    ['GET', '/v1/runs/%E2%82/events'],
    ['POST', '/v1/runs/%ff:cancel'],
    ['GET', '/v1/node-runs/%zz'],
    ['POST', '/v1/node-runs/%C0%AF:complete'],
  ])('%s %s (bad percent-encoding) is a 400 ErrorEnvelope', async (method, url) => {
    const t = await newApp();
    const res = await t.request({ method, url });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error.code).toBe('invalid_request');
    expect(res.headers['x-request-id']).toEqual(expect.any(String));
  });

  it.each<[InjectOptions['method'], string]>([
    ['GET', '/v1/runs/{id}'],
    ['GET', '/v1/runs/{id}/events'],
    ['POST', '/v1/runs/{id}:cancel'],
    ['GET', '/v1/node-runs/{id}'],
    ['POST', '/v1/node-runs/{id}:complete'],
  ])('%s %s with an id longer than any id is an ErrorEnvelope', async (method, template) => {
    const t = await newApp();
    const url = template.replace('{id}', 'r'.repeat(5_000));
    const res = await t.request({
      method,
      url,
      ...(method === 'POST' ? { payload: { state: 'succeeded' } } : {}),
    });
    expect(res.statusCode, res.body.slice(0, 200)).toBeGreaterThanOrEqual(400);
    expect(res.json().error.code).toEqual(expect.any(String));
    expect(res.body).not.toContain('FST_');
  });
});

describe('methods and routes', () => {
  it.each<[string, string, number, string | undefined]>([
    ['QUERY', '/v1/health', 405, 'GET'],
    ['QUERY', '/v1/runs', 405, 'POST'],
    ['QUERY', '/v1/runs/x/events', 405, 'GET'],
    ['QUERY', '/v2/nothing', 404, undefined],
    ['PROPFIND', '/v1/version', 405, 'GET'],
  ])('%s %s is %i with an envelope', async (method, url, status, allow) => {
    const t = await newApp();
    const res = await t.request({ method: method as InjectOptions['method'], url });
    expect(res.statusCode, res.body).toBe(status);
    expect(res.json().error.code).toBe(status === 405 ? 'method_not_allowed' : 'not_found');
    expect(res.headers.allow).toBe(allow);
  });

  it.each<[string, string, number, string]>([
    ['POST', '/v2/nothing', 404, '{"broken":'],
    ['POST', '/v1/health', 405, '{"broken":'],
    ['QUERY', '/v1/health', 405, '{}'],
    ['POST', '/v1/runs/x', 405, nestedJson(MAX_JSON_DEPTH * 10)],
  ])('%s %s answers %i without reading the body', async (method, url, status, payload) => {
    const t = await newApp();
    const res = await t.request({
      method: method as InjectOptions['method'],
      url,
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expect(res.statusCode, res.body).toBe(status);
    expect(res.json().error.code).toBe(status === 405 ? 'method_not_allowed' : 'not_found');
  });
});
