/**
 * `/readyz` and `/livez`: outside the ARP paths, public, 405 for other methods; `/readyz` turns 503
 * as soon as shutdown begins while the server still answers, and `/livez` stays 200.
 */
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { authFromEnv } from '../auth/harness.js';
import { useApp } from '../helpers/app.js';
import { deferred } from '../helpers/executors.js';
import { until } from '../helpers/until.js';

const newApp = useApp();
const agents: Agent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.destroy()));
});

describe('/readyz and /livez', () => {
  it('answer 200 once the app is ready', async () => {
    const t = await newApp();
    const ready = await t.request({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });
    const live = await t.request({ method: 'GET', url: '/livez?verbose=1' });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'alive' });
  });

  it('other methods are 405 with Allow: GET, and neighbours are 404', async () => {
    const t = await newApp();
    for (const url of ['/readyz', '/livez']) {
      const res = await t.request({ method: 'POST', url, payload: {} });
      expect(res.statusCode, url).toBe(405);
      expect(res.headers.allow).toBe('GET');
      expect(res.json().error.code).toBe('method_not_allowed');
    }
    expect((await t.request({ method: 'GET', url: '/readyz/x' })).statusCode).toBe(404);
  });

  it('are exempt from inbound authentication, unlike the API', async () => {
    const t = await newApp({
      options: {
        auth: authFromEnv({
          ARP_AUTH_MODE: 'required',
          ARP_AUTH_JWKS_URI: 'http://127.0.0.1:9/jwks',
          ARP_AUTH_AUDIENCE: 'arp-run-coordinator',
        }),
      },
    });
    expect((await t.request({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    expect((await t.request({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
    expect((await t.request({ method: 'GET', url: '/v1/runs/x' })).statusCode).toBe(401);
  });

  it('once shutdown has begun, /readyz is 503 and /livez 200 while the server still answers', async () => {
    const t = await newApp();
    // Holds close() in preClose, after the app's own hook marked it closing (hooks run in order):
    // what an event stream still draining does, deterministically.
    const held = deferred();
    t.app.addHook('preClose', () => held.promise);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    const agent = new Agent();
    agents.push(agent);
    const get = async (path: string) => {
      const res = await request(`${base}${path}`, { dispatcher: agent });
      return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
    };
    expect(await get('/readyz')).toEqual({ status: 200, body: { status: 'ready' } });

    const closing = t.app.close();
    await until(() => t.app.coordinator.stopping, 'shutdown began');
    expect(await get('/readyz')).toEqual({
      status: 503,
      body: {
        error: {
          code: 'service_unavailable',
          message: 'The service is shutting down',
          details: { state: 'shutting_down' },
          retryable: true,
        },
      },
    });
    expect(await get('/livez')).toEqual({ status: 200, body: { status: 'alive' } });
    // The API itself refuses new work as before.
    const health = await get('/v1/health');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ error: { code: 'service_unavailable', retryable: true } });

    held.resolve();
    await closing;
  });
});
