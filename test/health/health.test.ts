/**
 * `/v1/health` tells the truth: it lists the store and every configured service, and a service the
 * coordinator's real calls could not reach makes it `degraded` (still 200, still a valid `Health`)
 * until a later call reaches it. Nothing is probed: the checks follow the calls dispatch made.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import type { Health } from '../../src/gen/contract.js';
import { getNodeRun, idle, PDP_DECIDE, schemaErrors, startRun, useDispatch } from '../dispatch/harness.js';
import type { TestApp } from '../helpers/app.js';
import { useApp } from '../helpers/app.js';
import { freePort } from '../helpers/executors.js';
import { onPostgres } from '../helpers/stores.js';

const h = useDispatch();
const newApp = useApp();
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };

async function health(t: TestApp): Promise<Health> {
  const res = await t.request({ method: 'GET', url: '/v1/health' });
  expect(res.statusCode, res.body).toBe(200);
  const body = res.json() as Health;
  expect(schemaErrors('Health', body)).toEqual([]);
  return body;
}

const check = (body: Health, name: string) => body.checks?.find((c) => c.name === name);

/** An Atomic Executor on `port` that succeeds every execution; resolves once it listens. */
async function executorOn(port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (chunk) => (text += String(chunk)));
    req.on('end', () => {
      const { node_run_id } = JSON.parse(text) as { node_run_id: string };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ node_run_id, state: 'succeeded', outputs: {} }));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

describe('/v1/health', () => {
  it('lists the store, which is ok, and nothing else without services', async () => {
    const t = await newApp();
    const body = await health(t);
    expect(body.status).toBe('ok');
    expect(body.checks).toEqual([
      {
        name: 'store',
        status: 'ok',
        details: expect.objectContaining({ kind: onPostgres ? 'postgresql' : 'memory' }),
      },
    ]);
  });

  it('is public when inbound authentication is required', async () => {
    const { authFromEnv } = await import('../auth/harness.js');
    const t = await newApp({
      options: {
        auth: authFromEnv({
          ARP_AUTH_MODE: 'required',
          ARP_AUTH_JWKS_URI: 'http://127.0.0.1:9/jwks',
          ARP_AUTH_AUDIENCE: 'arp-run-coordinator',
        }),
      },
    });
    expect((await health(t)).status).toBe('ok');
  });

  it('an unreachable Atomic Executor makes it degraded; a later successful call makes it ok again', async () => {
    const port = await freePort();
    const t = await h.app({ services: { atomicExecutor: `http://127.0.0.1:${port}` } });

    const before = await health(t);
    expect(before.status).toBe('ok');
    expect(check(before, 'atomic_executor')).toMatchObject({ status: 'ok', message: 'not called yet' });

    const failed = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    expect((await getNodeRun(t, failed.root_node_run_id)).state).toBe('failed');
    const down = await health(t);
    expect(down.status).toBe('degraded');
    expect(check(down, 'store')?.status).toBe('ok');
    const atomic = check(down, 'atomic_executor');
    expect(atomic).toMatchObject({
      status: 'down',
      message: 'atomic_executor_unavailable on the last call',
      details: { last_call: { operation: 'execute', outcome: 'unavailable' } },
    });
    // Never the peer's address.
    expect(JSON.stringify(down)).not.toContain(String(port));

    const server = await executorOn(port);
    try {
      const ok = await startRun(t, { root_node_type_ref: echo });
      await idle(t);
      expect((await getNodeRun(t, ok.root_node_run_id)).state).toBe('succeeded');
      const up = await health(t);
      expect(up.status).toBe('ok');
      expect(check(up, 'atomic_executor')).toMatchObject({
        status: 'ok',
        details: { last_call: { operation: 'execute', outcome: 'ok', status: 200 } },
      });
    } finally {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    }
  });

  it('a service that answers with an error status is reachable: the check stays ok', async () => {
    const pdp = await h.fake();
    pdp.on('POST', PDP_DECIDE, () => ({ status: 500, json: { error: { code: 'boom', message: 'no' } } }));
    const ae = await h.fake();
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: pdp.url } });
    const run = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    expect(run.state).toBe('failed');
    const body = await health(t);
    expect(body.status).toBe('ok');
    expect(check(body, 'pdp')).toMatchObject({
      status: 'ok',
      details: { last_call: { operation: 'decide', outcome: 'error', status: 500 } },
    });
    expect(check(body, 'atomic_executor')?.message).toBe('not called yet');
  });
});
