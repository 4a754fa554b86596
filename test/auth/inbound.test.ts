/**
 * Inbound JWT authentication through the real app (reference-behavior.md §5.1, design §5), with real
 * tokens from the loopback issuer: required mode with keys from ARP_AUTH_JWKS_URI and from OIDC
 * discovery, every 401 with its exact body and `WWW-Authenticate` header, public and exempt paths,
 * auth before routing, optional and disabled modes, and a round trip over a real socket.
 * Every response also passes the contract check of `useApp` (401 bodies are ErrorEnvelopes).
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppDeps, buildApp } from '../../src/app.js';
import { unauthorized } from '../../src/auth/hooks.js';
import { disabledAuth } from '../../src/auth/settings.js';
import { AuthFailure } from '../../src/auth/verifier.js';
import { toWireError } from '../../src/http/envelope.js';
import { useApp } from '../helpers/app.js';
import { bearer, DEFAULT_AUDIENCE, type Issuer, startIssuer } from '../helpers/oidc.js';
import {
  authFromEnv,
  type Env,
  expectUnauthorized,
  type KeySource,
  RUN_BODY,
  requiredEnv,
  useIssuers,
} from './harness.js';

const newApp = useApp();
const issuers = useIssuers();

type Headers = Record<string, string>;

/** An app whose auth settings come from `env` (extra deps, e.g. a verifier, may be injected). */
async function appWith(env: Env, deps: AppDeps = {}) {
  const t = await newApp({ ...deps, options: { ...deps.options, auth: authFromEnv(env) } });
  return {
    t,
    startRun: (headers: Headers = {}) =>
      t.request({ method: 'POST', url: '/v1/runs', headers, payload: RUN_BODY }),
  };
}

describe.each<KeySource>(['jwks_uri', 'discovery'])('required mode, keys via %s', (source) => {
  let idp: Issuer;
  beforeAll(async () => {
    idp = await startIssuer();
  });
  afterAll(async () => {
    await idp.close();
  });
  const required = (extra: Env = {}) => appWith(requiredEnv(idp, source, extra));

  it('a valid RS256 token reaches the handler', async () => {
    const { startRun, t } = await required();
    const res = await startRun(bearer(await idp.mint()));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ run_id: 'run_1', state: expect.any(String) });
    const got = await t.request({ method: 'GET', url: '/v1/runs/run_1', headers: bearer(await idp.mint()) });
    expect(got.statusCode).toBe(200);
  });

  it('a valid ES256 token reaches the handler when ES256 is allowed', async () => {
    const { startRun } = await required({ ARP_AUTH_ALGORITHMS: 'RS256,ES256' });
    const es = await idp.mint({}, { alg: 'ES256' });
    expect((await startRun(bearer(es))).statusCode).toBe(200);
    expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
  });

  it('an application error behind a valid token is that error, not a 401', async () => {
    const { t } = await required();
    const res = await t.request({
      method: 'GET',
      url: '/v1/runs/missing',
      headers: bearer(await idp.mint()),
    });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('run_not_found');
  });

  it('no Authorization header: 401 invalid_request "Missing Authorization header"', async () => {
    const { startRun } = await required();
    expectUnauthorized(await startRun(), 'invalid_request', 'Missing Authorization header');
  });

  it.each([
    ['Basic x'],
    ['Basic dXNlcjpwYXNz'],
    ['Bearer'],
    ['bearer'],
    ['Bearer a b'],
    ['Token abc'],
    ['abc'],
    ['Bearer\tx\ty'],
  ])('Authorization %j: 401 invalid_request "Invalid Authorization header"', async (header) => {
    const { startRun } = await required();
    expectUnauthorized(
      await startRun({ authorization: header }),
      'invalid_request',
      'Invalid Authorization header',
    );
  });

  it('the scheme is case-insensitive and any whitespace separates it from the token', async () => {
    const { startRun } = await required();
    const token = await idp.mint();
    for (const header of [
      `bearer ${token}`,
      `BEARER ${token}`,
      `Bearer    ${token}`,
      `  Bearer ${token}  `,
    ]) {
      expect((await startRun({ authorization: header })).statusCode, header.slice(0, 12)).toBe(200);
    }
  });

  it('an expired token (beyond the skew): 401 invalid_token "Token expired"', async () => {
    const { startRun } = await required();
    expectUnauthorized(
      await startRun(bearer(await idp.mint({}, { expiresIn: -600 }))),
      'invalid_token',
      'Token expired',
    );
  });

  it('an expired token within the clock skew is accepted; with no skew it is not', async () => {
    const lenient = await required();
    expect((await lenient.startRun(bearer(await idp.mint({}, { expiresIn: -20 })))).statusCode).toBe(200);
    const strict = await required({ ARP_AUTH_CLOCK_SKEW_SECONDS: '0' });
    expectUnauthorized(
      await strict.startRun(bearer(await idp.mint({}, { expiresIn: -20 }))),
      'invalid_token',
      'Token expired',
    );
  });

  it('a token without exp is accepted (exp is checked only when present)', async () => {
    const { startRun } = await required();
    expect((await startRun(bearer(await idp.mint({}, { omit: ['exp'] })))).statusCode).toBe(200);
  });

  it('a wrong audience: 401 invalid_token "Invalid token audience"', async () => {
    const { startRun } = await required();
    expectUnauthorized(
      await startRun(bearer(await idp.mint({}, { audience: 'arp-some-other-service' }))),
      'invalid_token',
      'Invalid token audience',
    );
  });

  it('an audience list that contains ours is accepted', async () => {
    const { startRun } = await required();
    const token = await idp.mint({}, { audience: ['account', DEFAULT_AUDIENCE] });
    expect((await startRun(bearer(token))).statusCode).toBe(200);
  });

  it('a wrong issuer: 401 invalid_token "Invalid token issuer"', async () => {
    const { startRun } = await required();
    expectUnauthorized(
      await startRun(bearer(await idp.mint({}, { issuer: 'http://127.0.0.1:1/realms/other' }))),
      'invalid_token',
      'Invalid token issuer',
    );
  });

  it('an unknown kid: 401 invalid_token "Unable to fetch JWKS"', async () => {
    const { startRun } = await required();
    expectUnauthorized(
      await startRun(bearer(await idp.mintUnknownKid())),
      'invalid_token',
      'Unable to fetch JWKS',
    );
  });

  const invalid: [string, (idp: Issuer) => string | Promise<string>][] = [
    ['alg none', (i) => i.mintNone()],
    ['alg none claiming a published kid', (i) => i.mintNone({}, { header: { kid: 'rs-1' } })],
    ['HS256 keyed with the RSA public key (PEM)', (i) => i.mintHs256WithPublicKey()],
    ['HS256 keyed with the RSA public key (DER)', (i) => i.mintHs256WithPublicKey({}, { encoding: 'der' })],
    ['a tampered payload', async (i) => i.tamper(await i.mint())],
    [
      'a tampered audience',
      async (i) => i.tamper(await i.mint({}, { audience: 'x' }), { aud: DEFAULT_AUDIENCE }),
    ],
    ['a foreign RS256 key claiming a published kid', (i) => i.mintWithForeignKey()],
    ['not yet valid (nbf beyond the skew)', (i) => i.mint({}, { notBefore: 600 })],
    ['ES256 when only RS256 is allowed', (i) => i.mint({}, { alg: 'ES256' })],
    ['not a JWT', () => 'abc'],
    ['three garbage segments', () => 'a.b.c'],
    ['a signature stripped off', async (i) => `${(await i.mint()).split('.').slice(0, 2).join('.')}.`],
  ];
  it.each(invalid)('%s: 401 invalid_token "Invalid token"', async (_name, make) => {
    const { startRun } = await required();
    expectUnauthorized(await startRun(bearer(await make(idp))), 'invalid_token', 'Invalid token');
  });

  it('a foreign ES256 key is refused even when ES256 is allowed', async () => {
    const { startRun } = await required({ ARP_AUTH_ALGORITHMS: 'RS256,ES256' });
    expectUnauthorized(
      await startRun(bearer(await idp.mintWithForeignKey({}, { alg: 'ES256' }))),
      'invalid_token',
      'Invalid token',
    );
  });

  it('a not-yet-valid token within the skew is accepted', async () => {
    const { startRun } = await required();
    expect((await startRun(bearer(await idp.mint({}, { notBefore: 20 })))).statusCode).toBe(200);
  });

  it('health and version answer 200 without a token, and ignore a bad one', async () => {
    const { t } = await required();
    for (const url of ['/v1/health', '/v1/version', '/v1/health?probe=1']) {
      expect((await t.request({ method: 'GET', url })).statusCode, url).toBe(200);
      const bad = await t.request({ method: 'GET', url, headers: { authorization: 'Bearer nope' } });
      expect(bad.statusCode, url).toBe(200);
    }
  });

  it('exempt paths match exactly: /v1/health/ and /v1/healthz need a token', async () => {
    const { t } = await required();
    for (const url of ['/v1/health/', '/v1/healthz', '/v1/version/x', '/V1/HEALTH']) {
      expectUnauthorized(
        await t.request({ method: 'GET', url }),
        'invalid_request',
        'Missing Authorization header',
      );
    }
  });

  it('auth runs before routing: unknown routes and wrong methods are 401 without a token', async () => {
    const { t } = await required();
    for (const [method, url] of [
      ['GET', '/nope'],
      ['GET', '/v1/nope'],
      ['DELETE', '/v1/runs'],
      ['GET', '/v1/runs'],
      ['PUT', '/v1/runs/run_1'],
    ] as const) {
      expectUnauthorized(await t.request({ method, url }), 'invalid_request', 'Missing Authorization header');
    }
  });

  it('auth runs before body parsing: a bad body without a token is 401, not 400 or 415', async () => {
    const { t } = await required();
    const notJson = await t.request({
      method: 'POST',
      url: '/v1/runs',
      headers: { 'content-type': 'text/plain' },
      payload: 'hello',
    });
    expectUnauthorized(notJson, 'invalid_request', 'Missing Authorization header');
    const broken = await t.request({
      method: 'POST',
      url: '/v1/runs',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    });
    expectUnauthorized(broken, 'invalid_request', 'Missing Authorization header');
  });

  it('with a valid token, unknown routes are 404 and wrong methods 405 (envelopes)', async () => {
    const { t } = await required();
    const headers = bearer(await idp.mint());
    const missing = await t.request({ method: 'GET', url: '/nope', headers });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('not_found');
    const wrong = await t.request({ method: 'DELETE', url: '/v1/runs', headers });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.json().error.code).toBe('method_not_allowed');
  });

  it('custom ARP_AUTH_EXEMPT_PATHS: exact paths skip auth, health and version stay public', async () => {
    const { t, startRun } = await required({ ARP_AUTH_EXEMPT_PATHS: '/v1/runs' });
    expect((await startRun()).statusCode).toBe(200);
    const withQuery = await t.request({ method: 'POST', url: '/v1/runs?x=1', payload: RUN_BODY });
    expect(withQuery.statusCode).toBe(200);
    for (const url of ['/v1/runs/run_1', '/v1/runs/', '/v1/runs/run_1:cancel']) {
      const method = url.endsWith(':cancel') ? 'POST' : 'GET';
      expectUnauthorized(await t.request({ method, url }), 'invalid_request', 'Missing Authorization header');
    }
    expect((await t.request({ method: 'GET', url: '/v1/health' })).statusCode).toBe(200);
    expect((await t.request({ method: 'GET', url: '/v1/version' })).statusCode).toBe(200);
  });

  it('a failed verification is not remembered: the same bad token fails every time', async () => {
    const { startRun } = await required();
    const token = await idp.mint({}, { audience: 'elsewhere' });
    for (let i = 0; i < 3; i++) {
      expectUnauthorized(await startRun(bearer(token)), 'invalid_token', 'Invalid token audience');
    }
  });
});

describe('required mode: what is checked only when configured', () => {
  it('without an audience setting any aud is accepted; without an issuer setting any iss', async () => {
    const idp = await issuers();
    const { startRun } = await appWith({ ARP_AUTH_MODE: 'required', ARP_AUTH_JWKS_URI: idp.jwksUri });
    expect((await startRun(bearer(await idp.mint({}, { audience: 'whatever' })))).statusCode).toBe(200);
    expect(
      (await startRun(bearer(await idp.mint({}, { issuer: 'https://elsewhere.example' })))).statusCode,
    ).toBe(200);
    expect((await startRun(bearer(await idp.mint({}, { omit: ['aud', 'iss'] })))).statusCode).toBe(200);
    // The signature still counts.
    expectUnauthorized(
      await startRun(bearer(idp.tamper(await idp.mint()))),
      'invalid_token',
      'Invalid token',
    );
  });

  it('a token with no aud is refused when an audience is configured', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'jwks_uri'));
    const res = await startRun(bearer(await idp.mint({}, { omit: ['aud'] })));
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(
      /^Bearer error="invalid_token", error_description="Invalid token/,
    );
  });

  it('a token with no iss is refused when an issuer is configured', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'jwks_uri'));
    const res = await startRun(bearer(await idp.mint({}, { omit: ['iss'] })));
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(
      /^Bearer error="invalid_token", error_description="Invalid token/,
    );
  });
});

describe('required mode: key source failures', () => {
  it('with ARP_AUTH_JWKS_URI the discovery document is never fetched', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'jwks_uri'));
    for (let i = 0; i < 3; i++) expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
    expect(idp.discoveryRequests()).toBe(0);
    expect(idp.jwksRequests()).toBe(1);
  });

  it('with the issuer only, discovery is fetched once and its jwks_uri used', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'discovery'));
    for (let i = 0; i < 3; i++) expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
    expect(idp.discoveryRequests()).toBe(1);
    expect(idp.jwksRequests()).toBe(1);
  });

  it.each<KeySource>(['jwks_uri', 'discovery'])(
    'JWKS endpoint answering 500 (%s): 401 invalid_token "Unable to fetch JWKS"',
    async (source) => {
      const idp = await issuers();
      const { startRun } = await appWith(requiredEnv(idp, source));
      idp.failJwks(true);
      expectUnauthorized(await startRun(bearer(await idp.mint())), 'invalid_token', 'Unable to fetch JWKS');
      expect(idp.jwksRequests()).toBe(1);
    },
  );

  it.each<KeySource>(['jwks_uri', 'discovery'])(
    'JWKS endpoint answering 500 (%s): 401, and the keys are fetched again for the next token',
    async (source) => {
      const idp = await issuers();
      const { startRun } = await appWith(requiredEnv(idp, source));
      idp.failJwks(true);
      const failed = await startRun(bearer(await idp.mint()));
      expect(failed.statusCode).toBe(401);
      expect(failed.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token", /);
      idp.failJwks(false);
      expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
      expect(idp.jwksRequests()).toBe(2);
    },
  );

  it('JWKS endpoint unreachable: 401 invalid_token "Unable to fetch JWKS"', async () => {
    const idp = await issuers();
    const gone = await startIssuer();
    const unreachable = gone.jwksUri;
    await gone.close();
    const { startRun } = await appWith({ ...requiredEnv(idp, 'jwks_uri'), ARP_AUTH_JWKS_URI: unreachable });
    expectUnauthorized(await startRun(bearer(await idp.mint())), 'invalid_token', 'Unable to fetch JWKS');
  });

  it('discovery failing: 401 "Unable to fetch JWKS"; discovery is retried on the next token', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'discovery'));
    idp.failDiscovery(true);
    expectUnauthorized(await startRun(bearer(await idp.mint())), 'invalid_token', 'Unable to fetch JWKS');
    expect(idp.discoveryRequests()).toBe(1);
    expect(idp.jwksRequests()).toBe(0);
    idp.failDiscovery(false);
    expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
    expect(idp.discoveryRequests()).toBe(2);
  });

  it('a missing header is 401 without touching the issuer', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'discovery'));
    expectUnauthorized(await startRun(), 'invalid_request', 'Missing Authorization header');
    expectUnauthorized(
      await startRun({ authorization: 'Basic x' }),
      'invalid_request',
      'Invalid Authorization header',
    );
    expect(idp.discoveryRequests()).toBe(0);
    expect(idp.jwksRequests()).toBe(0);
  });
});

describe('optional mode', () => {
  it('no header: the request passes anonymously', async () => {
    const idp = await issuers();
    const { startRun, t } = await appWith(requiredEnv(idp, 'jwks_uri', { ARP_AUTH_MODE: 'optional' }));
    expect((await startRun()).statusCode).toBe(200);
    const res = await t.request({ method: 'GET', url: '/v1/runs/run_1' });
    expect(res.statusCode).toBe(200);
    // Anonymous requests are routed: unknown routes are 404, not 401.
    expect((await t.request({ method: 'GET', url: '/nope' })).statusCode).toBe(404);
  });

  it('a valid token passes', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'discovery', { ARP_AUTH_MODE: 'optional' }));
    expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
  });

  it('an invalid token is still 401, and so is a malformed header', async () => {
    const idp = await issuers();
    const { startRun } = await appWith(requiredEnv(idp, 'jwks_uri', { ARP_AUTH_MODE: 'optional' }));
    expectUnauthorized(
      await startRun(bearer(await idp.mint({}, { expiresIn: -600 }))),
      'invalid_token',
      'Token expired',
    );
    expectUnauthorized(await startRun(bearer(idp.mintNone())), 'invalid_token', 'Invalid token');
    expectUnauthorized(
      await startRun(bearer(await idp.mint({}, { audience: 'x' }))),
      'invalid_token',
      'Invalid token audience',
    );
    expectUnauthorized(
      await startRun({ authorization: 'Basic x' }),
      'invalid_request',
      'Invalid Authorization header',
    );
    expectUnauthorized(
      await startRun({ authorization: 'Bearer' }),
      'invalid_request',
      'Invalid Authorization header',
    );
  });
});

describe('disabled mode', () => {
  it('by default (no ARP_AUTH_*): requests pass and the Authorization header is ignored', async () => {
    const t = await newApp({ options: { auth: disabledAuth } });
    expect(t.app.verifier).toBeUndefined();
    for (const headers of [
      {},
      { authorization: 'Bearer not-a-jwt' },
      { authorization: 'Basic x' },
      { authorization: 'x y z' },
    ]) {
      const res = await t.request({ method: 'POST', url: '/v1/runs', headers, payload: RUN_BODY });
      expect(res.statusCode, JSON.stringify(headers)).toBe(200);
    }
    expect((await t.request({ method: 'GET', url: '/nope' })).statusCode).toBe(404);
  });

  it.each([{ ARP_AUTH_PROFILE: 'dev' }, { ARP_AUTH_PROFILE: 'dev-insecure' }, { ARP_AUTH_MODE: 'disabled' }])(
    '%j: requests pass, even with an expired token',
    async (env) => {
      const idp = await issuers();
      const { startRun, t } = await appWith({ ...env, ARP_AUTH_ISSUER: idp.issuer });
      expect(t.app.verifier).toBeUndefined();
      expect((await startRun()).statusCode).toBe(200);
      expect((await startRun(bearer(await idp.mint({}, { expiresIn: -600 })))).statusCode).toBe(200);
      expect(idp.discoveryRequests() + idp.jwksRequests()).toBe(0);
    },
  );
});

describe('over a real socket', () => {
  let app: FastifyInstance | undefined;
  afterAll(async () => {
    await app?.close();
  });

  it('the 401 header and envelope arrive on the wire; a valid token gets through', async () => {
    const idp = await issuers();
    const violations: unknown[] = [];
    app = await buildApp({
      options: { auth: authFromEnv(requiredEnv(idp, 'discovery')) },
      onContractViolation: (violation) => violations.push(violation),
    });
    const origin = await app.listen({ port: 0, host: '127.0.0.1' });
    const post = (headers: Headers) =>
      fetch(`${origin}/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(RUN_BODY),
      });

    const missing = await post({});
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_request", error_description="Missing Authorization header"',
    );
    expect(await missing.json()).toEqual({
      error: { code: 'unauthorized', message: 'Missing Authorization header' },
    });

    const expired = await post(bearer(await idp.mint({}, { expiresIn: -600 })));
    expect(expired.status).toBe(401);
    expect(expired.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="Token expired"',
    );
    await expired.body?.cancel();

    const ok = await post(bearer(await idp.mint()));
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { run_id: string }).run_id).toMatch(/./);

    const unknown = await fetch(`${origin}/nope`);
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toEqual({
      error: { code: 'unauthorized', message: 'Missing Authorization header' },
    });
    expect(violations).toEqual([]);
    await app.close();
    app = undefined;
  });
});

describe('the 401 answer', () => {
  it('escapes " in the description of WWW-Authenticate, and keeps the message as is in the body', () => {
    const wire = toWireError(unauthorized(new AuthFailure('invalid_token', 'Bad "kid" here')));
    expect(wire.status).toBe(401);
    expect(wire.body).toEqual({ error: { code: 'unauthorized', message: 'Bad "kid" here' } });
    expect(wire.headers).toEqual({
      'www-authenticate': 'Bearer error="invalid_token", error_description="Bad \\"kid\\" here"',
    });
  });
});
