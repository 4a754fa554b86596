/**
 * `--token` and RC_TOKEN against the real app with authentication required, its keys from a
 * loopback OIDC issuer: the token is sent as a bearer token on plain calls and on event streams,
 * and a refused token is the service's 401 (exit 1) with its message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authFromEnv, requiredEnv } from '../auth/harness.js';
import { useApp } from '../helpers/app.js';
import { bearer, type Issuer, startIssuer } from '../helpers/oidc.js';
import { arpRc, expectServiceError, serve } from './harness.js';

const newApp = useApp();
let idp: Issuer;
beforeAll(async () => {
  idp = await startIssuer();
});
afterAll(async () => {
  await idp.close();
});

async function securedApp() {
  const t = await newApp({ options: { auth: authFromEnv(requiredEnv(idp, 'jwks_uri')) } });
  const url = await serve(t);
  const started = await t.request({
    method: 'POST',
    url: '/v1/runs',
    headers: bearer(await idp.mint()),
    payload: { root_node_type_ref: { node_type_id: 'composite.x', version: '1' }, input: {} },
  });
  expect(started.statusCode).toBe(200);
  return { t, url };
}

describe('authentication', () => {
  it('sends --token as a bearer token', async () => {
    const { url } = await securedApp();
    const result = await arpRc(['runs', 'get', 'run_1', '--json', '--token', await idp.mint(), '--url', url]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ run_id: 'run_1' });
  });

  it('sends RC_TOKEN on plain calls and on event streams; --token wins over it', async () => {
    const { url } = await securedApp();
    const env = { RC_URL: url, RC_TOKEN: await idp.mint() };
    const got = await arpRc(['node-runs', 'get', 'node_run_1', '--json'], { env });
    expect({ code: got.code, stderr: got.stderr }).toEqual({ code: 0, stderr: '' });
    const events = await arpRc(['events', 'run_1', '--json'], { env });
    expect({ code: events.code, stderr: events.stderr, lines: events.stdout.split('\n').length }).toEqual({
      code: 0,
      stderr: '',
      lines: 3,
    });
    const listed = await arpRc(['runs', 'list', '--json'], { env });
    expect({ code: listed.code, stderr: listed.stderr }).toEqual({ code: 0, stderr: '' });
    const overridden = await arpRc(['runs', 'get', 'run_1', '--token', 'not-a-jwt'], { env });
    expect(overridden.code).toBe(1);
    expect(overridden.stderr).toMatch(/^arp-rc: unauthorized: /);
  });

  it('without a token: the 401 with its message, exit 1', async () => {
    const { url } = await securedApp();
    expectServiceError(
      await arpRc(['runs', 'get', 'run_1', '--url', url]),
      'unauthorized: Missing Authorization header',
      401,
    );
  });

  it('an expired token: the 401 says so, on a follow stream too', async () => {
    const { url } = await securedApp();
    const expired = await idp.mint({}, { expiresIn: -600 });
    expectServiceError(
      await arpRc(['events', 'run_1', '--follow', '--token', expired, '--url', url]),
      'unauthorized: Token expired',
      401,
    );
  });
});
