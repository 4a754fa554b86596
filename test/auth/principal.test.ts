/**
 * Who the caller is, as the request log sees it (`options.logRequests`): the verified token's `sub`,
 * the anonymous subject in optional mode, the dev subject when auth is off, none on exempt paths and
 * on refused requests (which are logged with the reason instead).
 */
import { describe, expect, it } from 'vitest';
import { disabledAuth } from '../../src/auth/settings.js';
import { useApp } from '../helpers/app.js';
import { bearer } from '../helpers/oidc.js';
import { authFromEnv, captureLogs, type Env, RUN_BODY, requiredEnv, useIssuers } from './harness.js';

const newApp = useApp();
const issuers = useIssuers();

async function loggedApp(env: Env | 'off') {
  const { lines, logger } = captureLogs();
  const auth = env === 'off' ? disabledAuth : authFromEnv(env);
  const t = await newApp({ logger, options: { auth, logRequests: true } });
  const requestLines = () => lines.filter((line) => line.msg === 'request');
  return {
    t,
    lines,
    requestLines,
    startRun: (headers: Record<string, string> = {}) =>
      t.request({ method: 'POST', url: '/v1/runs', headers, payload: RUN_BODY }),
  };
}

describe('the verified subject', () => {
  it('a verified token: the request log line carries its sub', async () => {
    const idp = await issuers();
    const { startRun, requestLines } = await loggedApp(requiredEnv(idp, 'jwks_uri'));
    const token = await idp.mint({ sub: 'alice@example' });
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    // The second time from the cache: same subject.
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    const es = await idp.mint({ sub: 'bob' });
    expect((await startRun(bearer(es))).statusCode).toBe(200);
    expect(requestLines().map((line) => [line.sub, line.status, line.method, line.url])).toEqual([
      ['alice@example', 200, 'POST', '/v1/runs'],
      ['alice@example', 200, 'POST', '/v1/runs'],
      ['bob', 200, 'POST', '/v1/runs'],
    ]);
  });

  it('via discovery, with the default subject of the issuer', async () => {
    const idp = await issuers({ subject: 'service-account-jarvis' });
    const { startRun, requestLines } = await loggedApp(requiredEnv(idp, 'discovery'));
    expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
    expect(requestLines()[0]).toMatchObject({ sub: 'service-account-jarvis', status: 200 });
  });

  it('a refused request has no subject and is logged with the reason', async () => {
    const idp = await issuers();
    const { t, startRun, lines, requestLines } = await loggedApp(requiredEnv(idp, 'jwks_uri'));
    expect((await startRun()).statusCode).toBe(401);
    expect((await startRun(bearer(await idp.mint({}, { expiresIn: -600 })))).statusCode).toBe(401);
    expect((await t.request({ method: 'GET', url: '/nope' })).statusCode).toBe(401);
    const logged = requestLines();
    expect(logged.map((line) => line.status)).toEqual([401, 401, 401]);
    for (const line of logged) expect(line).not.toHaveProperty('sub');
    const reasons = lines
      .filter((line) => line.msg === 'request not authenticated')
      .map((line) => line.reason);
    expect(reasons).toEqual([
      'Missing Authorization header',
      'Token expired',
      'Missing Authorization header',
    ]);
    // The token itself is never logged.
    expect(JSON.stringify(lines)).not.toMatch(/eyJ/);
  });

  it('exempt paths run without a principal', async () => {
    const idp = await issuers();
    const { t, requestLines } = await loggedApp(requiredEnv(idp, 'jwks_uri'));
    expect(
      (await t.request({ method: 'GET', url: '/v1/health', headers: bearer(await idp.mint()) })).statusCode,
    ).toBe(200);
    expect(requestLines()[0]).toMatchObject({ url: '/v1/health', status: 200 });
    expect(requestLines()[0]).not.toHaveProperty('sub');
  });

  it('optional mode without a header: the anonymous subject (default and custom)', async () => {
    const idp = await issuers();
    const plain = await loggedApp(requiredEnv(idp, 'jwks_uri', { ARP_AUTH_MODE: 'optional' }));
    expect((await plain.startRun()).statusCode).toBe(200);
    expect((await plain.startRun(bearer(await idp.mint({ sub: 'carol' })))).statusCode).toBe(200);
    expect(plain.requestLines().map((line) => line.sub)).toEqual(['anonymous', 'carol']);

    const custom = await loggedApp(
      requiredEnv(idp, 'jwks_uri', { ARP_AUTH_MODE: 'optional', ARP_AUTH_ANONYMOUS_SUBJECT: 'guest' }),
    );
    expect((await custom.startRun()).statusCode).toBe(200);
    expect(custom.requestLines()[0]?.sub).toBe('guest');
  });

  it('disabled mode: the dev subject (default and custom), whatever the header says', async () => {
    const idp = await issuers();
    const off = await loggedApp('off');
    expect((await off.startRun()).statusCode).toBe(200);
    expect((await off.startRun(bearer(await idp.mint({ sub: 'mallory' })))).statusCode).toBe(200);
    expect(off.requestLines().map((line) => line.sub)).toEqual(['dev', 'dev']);

    const custom = await loggedApp({ ARP_AUTH_PROFILE: 'dev', ARP_AUTH_DEV_SUBJECT: 'developer' });
    expect((await custom.startRun()).statusCode).toBe(200);
    expect(custom.requestLines()[0]?.sub).toBe('developer');
  });
});
