/**
 * GET /metrics through the real app: the exposition is parsed and exact sample values are checked
 * before and after real traffic over HTTP (Runs, NodeRuns, dispatch to a loopback Atomic Executor,
 * token requests), with auth on and off, on a port of its own, and switched off.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import { authFromEnv, requiredEnv } from '../auth/harness.js';
import { AE_EXECUTE, idle, useDispatch } from '../dispatch/harness.js';
import { ref, startRun, useApp } from '../helpers/app.js';
import { replies } from '../helpers/executors.js';
import { bearer, type Issuer, startIssuer } from '../helpers/oidc.js';
import { startTokenEndpoint } from '../helpers/token-endpoint.js';
import { Scrape, scrape } from './exposition.js';

const newApp = useApp();
const h = useDispatch();

const memoryStore = () => new MemoryStore({ maxFinishedRuns: 100 });
const HTTP = 'arp_rc_http_request_duration_seconds';
const httpCount = (s: Scrape, operation: string, status_class = '2xx') =>
  s.value(`${HTTP}_count`, { operation, status_class });

describe('GET /metrics', () => {
  it('times event streams, which end outside the hooks of ordinary answers', async () => {
    const t = await newApp({ store: memoryStore() });
    const run = await startRun(t);
    const stream = await t.request({ method: 'GET', url: `/v1/runs/${run.run_id}/events` });
    expect(stream.statusCode).toBe(200);
    const missing = await t.request({ method: 'GET', url: '/v1/runs/nope/events' });
    expect(missing.statusCode).toBe(404);
    const s = await scrape(t);
    expect(httpCount(s, 'stream_run_events')).toBe(1);
    expect(httpCount(s, 'stream_run_events', '4xx')).toBe(1);
  });

  it('serves the text format with the default process metrics and every arp_rc_ instrument', async () => {
    const t = await newApp({ store: memoryStore() });
    const s = await scrape(t);
    for (const name of [
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
      'arp_rc_runs_started_total',
      'arp_rc_dispatch_queue_depth',
      'arp_rc_event_streams_open',
    ]) {
      expect(s.has(name), name).toBe(true);
    }
    expect(s.value('arp_rc_runs_started_total')).toBe(0);
    // No PostgreSQL pool behind the memory store.
    expect(s.has('arp_rc_db_pool_connections')).toBe(false);
    // /metrics is not part of the published contract.
    const doc = (await t.request({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).not.toContain('/metrics');
  });

  it('counts Runs started and finished, NodeRun transitions, requests per operation and commits', async () => {
    const t = await newApp({ store: memoryStore() });
    const before = await scrape(t);
    expect(httpCount(before, 'start_run')).toBe(0);

    const a = await startRun(t);
    const b = await startRun(t);
    const done = await t.request({
      method: 'POST',
      url: `/v1/node-runs/${a.root_node_run_id}:complete`,
      payload: { state: 'succeeded' },
    });
    expect(done.statusCode, done.body).toBe(204);
    const missing = await t.request({ method: 'GET', url: '/v1/runs/nope' });
    expect(missing.statusCode).toBe(404);

    const s = await scrape(t);
    expect(s.value('arp_rc_runs_started_total')).toBe(2);
    expect(s.value('arp_rc_runs_finished_total', { state: 'succeeded' })).toBe(1);
    expect(s.value('arp_rc_runs_finished_total', { state: 'failed' })).toBe(0);
    expect(s.value('arp_rc_node_run_transitions_total', { kind: 'composite', state: 'queued' })).toBe(2);
    expect(s.value('arp_rc_node_run_transitions_total', { kind: 'composite', state: 'succeeded' })).toBe(1);
    expect(httpCount(s, 'start_run')).toBe(2);
    expect(httpCount(s, 'complete_node_run')).toBe(1);
    expect(httpCount(s, 'get_run', '4xx')).toBe(1);
    // The first scrape itself is an `other` request (outside the contract); this one is not counted yet.
    expect(httpCount(s, 'other')).toBe(1);
    // Buckets are cumulative: +Inf holds every observation.
    expect(s.value(`${HTTP}_bucket`, { operation: 'start_run', status_class: '2xx', le: '+Inf' })).toBe(2);
    // Two starts and one completion, one commit each.
    expect(s.value('arp_rc_store_commit_duration_seconds_count', { store: 'memory' })).toBe(3);

    // Cancel the other Run: one more finished, canceled.
    const canceled = await t.request({ method: 'POST', url: `/v1/runs/${b.run_id}:cancel` });
    expect(canceled.statusCode).toBe(200);
    const after = await scrape(t);
    expect(after.value('arp_rc_runs_finished_total', { state: 'canceled' })).toBe(1);
    expect(after.value('arp_rc_runs_started_total')).toBe(2);
    expect(httpCount(after, 'start_run')).toBe(2);
    expect(httpCount(after, 'other')).toBe(2);
  });

  it('counts a Run whose wall-time budget ran out as failed and as a budget expiry', async () => {
    const t = await newApp({ store: memoryStore() });
    const run = await startRun(t, { constraints: { budgets: { max_wall_time_ms: 1000 } } });
    // What the Run's deadline timer does when it fires.
    await t.app.coordinator.expireRun(run.run_id);
    const s = await scrape(t);
    expect(s.value('arp_rc_runs_finished_total', { state: 'failed' })).toBe(1);
    expect(s.value('arp_rc_budget_exceeded_total', { budget: 'max_wall_time_ms' })).toBe(1);
  });

  it('shows open follow streams at scrape time', async () => {
    const t = await newApp({ store: memoryStore() });
    const run = await startRun(t);
    expect((await scrape(t)).value('arp_rc_event_streams_open')).toBe(0);
    const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
    // Headers arrive once the stream holds its place among the follow streams.
    const follow = await request(`${address}/v1/runs/${run.run_id}/events?follow=true`);
    expect(follow.statusCode).toBe(200);
    expect((await scrape(t)).value('arp_rc_event_streams_open')).toBe(1);
    // Ending the Run ends the stream.
    await t.request({ method: 'POST', url: `/v1/runs/${run.run_id}:cancel` });
    await follow.body.text();
  });

  it('is per app: another app in the same process counts only its own traffic', async () => {
    const t1 = await newApp({ store: memoryStore() });
    const t2 = await newApp({ store: memoryStore() });
    await startRun(t1);
    expect((await scrape(t1)).value('arp_rc_runs_started_total')).toBe(1);
    expect((await scrape(t2)).value('arp_rc_runs_started_total')).toBe(0);
  });

  it('is absent when metrics are off', async () => {
    const t = await newApp({ store: memoryStore(), options: { metrics: false } });
    const res = await t.request({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(404);
    expect(t.app.metrics).toBeUndefined();
  });
});

describe('dispatch and outgoing calls', () => {
  const echo = ref('atomic.echo');

  it('a dispatch through a loopback Atomic Executor: call, policy, transitions and dispatch latency', async () => {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { store: memoryStore() });
    const run = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    const s = await scrape(t);
    const call = { service: 'atomic_executor', operation: 'execute', outcome: 'ok' };
    expect(s.value('arp_rc_outgoing_call_duration_seconds_count', call)).toBe(1);
    expect(s.value('arp_rc_dispatch_latency_seconds_count')).toBe(1);
    expect(s.value('arp_rc_dispatch_queue_depth')).toBe(0);
    expect(s.value('arp_rc_policy_decisions_total', { action: 'run.start', decision: 'allow' })).toBe(1);
    expect(s.value('arp_rc_policy_decisions_total', { action: 'node.run.execute', decision: 'allow' })).toBe(
      1,
    );
    expect(s.value('arp_rc_node_run_transitions_total', { kind: 'atomic', state: 'queued' })).toBe(1);
    expect(s.value('arp_rc_node_run_transitions_total', { kind: 'atomic', state: 'running' })).toBe(1);
    expect(s.value('arp_rc_node_run_transitions_total', { kind: 'atomic', state: 'succeeded' })).toBe(1);
    expect(s.value('arp_rc_runs_finished_total', { state: 'succeeded' })).toBe(1);
    expect((await t.request({ method: 'GET', url: `/v1/runs/${run.run_id}` })).json().state).toBe(
      'succeeded',
    );
  });

  it('a policy that denies is counted by action and decision', async () => {
    const ae = await h.fake();
    const t = await h.app(
      { services: { atomicExecutor: ae.url }, policyDefault: 'deny' },
      { store: memoryStore() },
    );
    await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    const s = await scrape(t);
    expect(s.value('arp_rc_policy_decisions_total', { action: 'run.start', decision: 'deny' })).toBe(1);
    expect(s.value('arp_rc_runs_finished_total', { state: 'failed' })).toBe(1);
    expect(
      s.value('arp_rc_outgoing_call_duration_seconds_count', {
        service: 'atomic_executor',
        operation: 'execute',
        outcome: 'ok',
      }),
    ).toBe(0);
  });

  it('an executor answering 503 is an outgoing call with outcome error', async () => {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, () => replies.envelope(503, 'busy'));
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { store: memoryStore() });
    await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    const s = await scrape(t);
    const failed = s.samples.filter(
      (x) => x.name === 'arp_rc_outgoing_call_duration_seconds_count' && x.labels.outcome !== 'ok',
    );
    expect(failed.map((x) => x.labels)).toEqual([
      { service: 'atomic_executor', operation: 'execute', outcome: 'error' },
    ]);
    expect(failed[0]!.value).toBe(1);
    expect(s.value('arp_rc_node_run_transitions_total', { kind: 'atomic', state: 'failed' })).toBe(1);
  });

  it('a max_steps budget that refuses the dispatch is a budget expiry', async () => {
    const ae = await h.fake();
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { store: memoryStore() });
    await startRun(t, { root_node_type_ref: echo, constraints: { budgets: { max_steps: 0 } } });
    await idle(t);
    const s = await scrape(t);
    expect(s.value('arp_rc_budget_exceeded_total', { budget: 'max_steps' })).toBe(1);
    expect(s.value('arp_rc_node_run_transitions_total', { kind: 'atomic', state: 'failed' })).toBe(1);
    expect(s.value('arp_rc_runs_finished_total', { state: 'failed' })).toBe(1);
  });

  it('an execution past its deadline is a deadline expiry and a call with outcome timeout', async () => {
    const ae = await h.fake();
    const never = new Promise<never>(() => {});
    ae.on('POST', AE_EXECUTE, () => never);
    ae.on('POST', /^\/v1\/atomic-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
    const t = await h.app(
      { services: { atomicExecutor: ae.url }, executeTimeoutMs: 200 },
      { store: memoryStore() },
    );
    await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    const s = await scrape(t);
    expect(s.value('arp_rc_deadline_expired_total', { kind: 'atomic' })).toBe(1);
    const call = { service: 'atomic_executor', operation: 'execute', outcome: 'timeout' };
    expect(s.value('arp_rc_outgoing_call_duration_seconds_count', call)).toBe(1);
  });

  it('token endpoint requests are timed by outcome', async () => {
    const te = await startTokenEndpoint({ clients: { rc: 'secret' } });
    try {
      const ae = await h.fake();
      ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
      const t = await h.app(
        { services: { atomicExecutor: ae.url } },
        {
          store: memoryStore(),
          outboundAuth: { clientId: 'rc', clientSecret: 'secret', tokenEndpoint: te.url },
        },
      );
      await startRun(t, { root_node_type_ref: echo });
      await idle(t);
      const s = await scrape(t);
      expect(s.value('arp_rc_token_request_duration_seconds_count', { outcome: 'ok' })).toBe(1);
      await t.close();
    } finally {
      await te.close();
    }
  });
});

describe('authentication and the metrics port', () => {
  let idp: Issuer;
  beforeAll(async () => {
    idp = await startIssuer();
  });
  afterAll(async () => {
    await idp.close();
  });

  it('with inbound auth on, /metrics needs a token like every other path', async () => {
    const t = await newApp({
      store: memoryStore(),
      options: { auth: authFromEnv(requiredEnv(idp, 'jwks_uri')) },
    });
    const denied = await t.request({ method: 'GET', url: '/metrics' });
    expect(denied.statusCode).toBe(401);
    expect(denied.json().error.code).toBe('unauthorized');
    await scrape(t, bearer(await idp.mint()));
  });

  it('is public when the operator lists it in ARP_AUTH_EXEMPT_PATHS', async () => {
    const t = await newApp({
      store: memoryStore(),
      options: { auth: authFromEnv(requiredEnv(idp, 'jwks_uri', { ARP_AUTH_EXEMPT_PATHS: '/metrics' })) },
    });
    // No token needed for /metrics; every other path still needs one.
    const s = await scrape(t);
    expect(s.value('arp_rc_runs_started_total')).toBe(0);
    const runs = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: ref('composite.x'), input: {} },
    });
    expect(runs.statusCode).toBe(401);
    // Refused before its handler, but timed under its operation.
    expect(httpCount(await scrape(t), 'start_run', '4xx')).toBe(1);
  });

  it("on a port of its own: served there only, with the main app's numbers", async () => {
    const t = await newApp({ store: memoryStore(), options: { metricsPort: 0 } });
    await startRun(t);
    const onMain = await t.request({ method: 'GET', url: '/metrics' });
    expect(onMain.statusCode).toBe(404);
    const server = t.app.metrics?.server;
    expect(server).toBeDefined();
    const address = await server!.listen({ host: '127.0.0.1', port: 0 });
    const res = await request(`${address}/metrics`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = new Scrape(await res.body.text());
    expect(s.value('arp_rc_runs_started_total')).toBe(1);
    expect(httpCount(s, 'start_run')).toBe(1);
    // The main port's 404 for /metrics is counted; the metrics port's own requests are not timed.
    expect(httpCount(s, 'other', '4xx')).toBe(1);
  });

  it('on its own port, auth applies there too unless /metrics is exempt', async () => {
    const t = await newApp({
      store: memoryStore(),
      options: { metricsPort: 0, auth: authFromEnv(requiredEnv(idp, 'jwks_uri')) },
    });
    const address = await t.app.metrics!.server!.listen({ host: '127.0.0.1', port: 0 });
    const denied = await request(`${address}/metrics`);
    expect(denied.statusCode).toBe(401);
    await denied.body.dump();
    const allowed = await request(`${address}/metrics`, { headers: bearer(await idp.mint()) });
    expect(allowed.statusCode).toBe(200);
    expect(new Scrape(await allowed.body.text()).has('arp_rc_runs_started_total')).toBe(true);
  });
});
