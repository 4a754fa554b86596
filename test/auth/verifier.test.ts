/**
 * The JWT verifier behind inbound auth (design §5): key rotation (an unknown `kid` refetches the
 * JWKS), the refetch cooldown that keeps a flood of bad `kid`s off the issuer, and the cache of
 * verified tokens (bounded, until `exp`). Through the real app with an injected verifier
 * (`deps.verifier`), and directly.
 */
import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import type { InboundAuth } from '../../src/auth/settings.js';
import { AuthFailure, JwtVerifier } from '../../src/auth/verifier.js';
import { useApp } from '../helpers/app.js';
import { bearer, DEFAULT_SUBJECT, type Issuer } from '../helpers/oidc.js';
import {
  authFromEnv,
  CountingVerifier,
  type Env,
  expectUnauthorized,
  type KeySource,
  RUN_BODY,
  requiredEnv,
  useIssuers,
} from './harness.js';

const newApp = useApp();
const issuers = useIssuers();

/** An app in required mode against `idp`, with the given verifier (built from the same settings). */
async function appWithVerifier(
  idp: Issuer,
  makeVerifier: (inbound: InboundAuth) => JwtVerifier,
  source: KeySource = 'jwks_uri',
  extra: Env = {},
) {
  const auth = authFromEnv(requiredEnv(idp, source, extra));
  const verifier = makeVerifier(auth.inbound);
  const t = await newApp({ options: { auth }, verifier });
  expect(t.app.verifier).toBe(verifier);
  return {
    t,
    verifier,
    startRun: (headers: Record<string, string> = {}) =>
      t.request({ method: 'POST', url: '/v1/runs', headers, payload: RUN_BODY }),
  };
}

/** The rejection of `verify`, as an AuthFailure. */
async function failure(promise: Promise<unknown>): Promise<AuthFailure> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AuthFailure);
  return error as AuthFailure;
}

describe('key rotation', () => {
  it.each<KeySource>(['jwks_uri', 'discovery'])(
    'a token signed by a newly published key is accepted: the JWKS is fetched again (%s)',
    async (source) => {
      const idp = await issuers();
      // No cooldown, so the refetch is not held back by the fetch a moment ago.
      const { startRun } = await appWithVerifier(
        idp,
        (inbound) => new JwtVerifier(inbound, { jwksCooldownMs: 0 }),
        source,
        { ARP_AUTH_ALGORITHMS: 'RS256,ES256' },
      );
      expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
      expect(idp.jwksRequests()).toBe(1);

      await idp.addKey('RS256', 'rs-2');
      expect((await startRun(bearer(await idp.mint({}, { kid: 'rs-2' })))).statusCode).toBe(200);
      expect(idp.jwksRequests()).toBe(2);

      // A new ES256 key too; then the old keys are unpublished and a new-key token still works.
      await idp.addKey('ES256', 'es-2');
      expect((await startRun(bearer(await idp.mint({}, { kid: 'es-2' })))).statusCode).toBe(200);
      expect(idp.jwksRequests()).toBe(3);
      idp.removeKey('rs-1');
      idp.removeKey('es-1');
      expect((await startRun(bearer(await idp.mint({ n: 1 }, { kid: 'rs-2' })))).statusCode).toBe(200);
      expect(idp.jwksRequests()).toBe(3);
      if (source === 'discovery') expect(idp.discoveryRequests()).toBe(1);
    },
  );

  it('a kid that is still unknown after the refetch is 401 "Unable to fetch JWKS"', async () => {
    const idp = await issuers();
    const { startRun } = await appWithVerifier(
      idp,
      (inbound) => new JwtVerifier(inbound, { jwksCooldownMs: 0 }),
    );
    expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
    expectUnauthorized(
      await startRun(bearer(await idp.mintUnknownKid({}, { unknownKid: 'rs-9' }))),
      'invalid_token',
      'Unable to fetch JWKS',
    );
    expect(idp.jwksRequests()).toBe(2);
  });

  it('a flood of unknown kids makes at most one JWKS fetch per cooldown', async () => {
    const idp = await issuers();
    const { startRun } = await appWithVerifier(
      idp,
      (inbound) => new JwtVerifier(inbound, { jwksCooldownMs: 3_600_000 }),
    );
    expect((await startRun(bearer(await idp.mint()))).statusCode).toBe(200);
    expect(idp.jwksRequests()).toBe(1);

    const tokens = await Promise.all(
      Array.from({ length: 25 }, (_, i) => idp.mintUnknownKid({ n: i }, { unknownKid: `bogus-${i}` })),
    );
    const answers = await Promise.all(tokens.map((token) => startRun(bearer(token))));
    for (const res of answers) expectUnauthorized(res, 'invalid_token', 'Unable to fetch JWKS');
    for (const token of tokens.slice(0, 5)) {
      expectUnauthorized(await startRun(bearer(token)), 'invalid_token', 'Unable to fetch JWKS');
    }
    expect(idp.jwksRequests()).toBe(1);
    // Known keys keep working throughout.
    expect((await startRun(bearer(await idp.mint({ n: 'after' })))).statusCode).toBe(200);
    expect(idp.jwksRequests()).toBe(1);
  });

  it('a flood of unknown kids before any key was loaded makes exactly one JWKS fetch', async () => {
    const idp = await issuers();
    const { startRun } = await appWithVerifier(
      idp,
      (inbound) => new JwtVerifier(inbound, { jwksCooldownMs: 3_600_000 }),
      'discovery',
    );
    const tokens = await Promise.all(
      Array.from({ length: 20 }, (_, i) => idp.mintUnknownKid({ n: i }, { unknownKid: `bogus-${i}` })),
    );
    const answers = await Promise.all(tokens.map((token) => startRun(bearer(token))));
    for (const res of answers) expectUnauthorized(res, 'invalid_token', 'Unable to fetch JWKS');
    expect(idp.jwksRequests()).toBe(1);
    expect(idp.discoveryRequests()).toBe(1);
  });
});

describe('verified-token cache', () => {
  it('the same valid token twice: the second request is served from the cache', async () => {
    const idp = await issuers();
    const { startRun, verifier } = await appWithVerifier(idp, (inbound) => new CountingVerifier(inbound));
    const counting = verifier as CountingVerifier;
    const token = await idp.mint();
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(1);
    expect(idp.jwksRequests()).toBe(1);

    // Even with the issuer down and the key unpublished, the cached verdict stands until exp.
    idp.failJwks(true);
    idp.removeKey('rs-1');
    for (let i = 0; i < 3; i++) expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(1);
    expect(verifier.cached(token)?.sub).toBe(DEFAULT_SUBJECT);

    // Another token is verified in full.
    idp.failJwks(false);
    const other = await idp.mint({ sub: 'someone-else' }, { kid: 'rs-1' });
    expect((await startRun(bearer(other))).statusCode).toBe(200);
    expect(counting.verifications).toBe(2);
  });

  it('a cached token is used only until its exp; after that it is verified again and refused', async () => {
    const idp = await issuers();
    let now = Date.now();
    const { startRun, verifier } = await appWithVerifier(
      idp,
      (inbound) => new CountingVerifier(inbound, { now: () => now }),
      'jwks_uri',
      { ARP_AUTH_CLOCK_SKEW_SECONDS: '0' },
    );
    const counting = verifier as CountingVerifier;
    const token = await idp.mint({}, { expiresIn: 300 });
    const exp = decodeJwt(token).exp!;

    expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(1);

    now = exp * 1000 - 1000;
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(1);

    // Cached up to the last millisecond before exp, not at exp.
    now = exp * 1000 - 1;
    expect(verifier.cached(token)).toBeDefined();
    now = exp * 1000;
    expect(verifier.cached(token)).toBeUndefined();

    now = exp * 1000 + 1;
    expect(verifier.cached(token)).toBeUndefined();
    expectUnauthorized(await startRun(bearer(token)), 'invalid_token', 'Token expired');
    expect(counting.verifications).toBe(2);
  });

  it('the cache does not outlive exp even within the clock skew (the token is verified again)', async () => {
    const idp = await issuers();
    let now = Date.now();
    const { startRun, verifier } = await appWithVerifier(
      idp,
      (inbound) => new CountingVerifier(inbound, { now: () => now }),
    );
    const counting = verifier as CountingVerifier;
    const token = await idp.mint({}, { expiresIn: 300 });
    const exp = decodeJwt(token).exp!;
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    now = exp * 1000 + 10_000; // past exp, within the default 60 s skew
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(2);
    now = exp * 1000 + 61_000; // beyond the skew
    expectUnauthorized(await startRun(bearer(token)), 'invalid_token', 'Token expired');
    expect(counting.verifications).toBe(3);
  });

  it('a token without exp is cached for at most an hour', async () => {
    const idp = await issuers();
    let now = Date.now();
    const { startRun, verifier } = await appWithVerifier(
      idp,
      (inbound) => new CountingVerifier(inbound, { now: () => now }),
    );
    const counting = verifier as CountingVerifier;
    const token = await idp.mint({}, { omit: ['exp'] });
    const start = now;
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    now = start + 3_599_000;
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(1);
    now = start + 3_600_001;
    expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(2);
  });

  it('the cache is bounded: the oldest entry is dropped first', async () => {
    const idp = await issuers();
    const { startRun, verifier } = await appWithVerifier(
      idp,
      (inbound) => new CountingVerifier(inbound, { cacheSize: 2 }),
    );
    const counting = verifier as CountingVerifier;
    const [a, b, c] = await Promise.all([idp.mint({ n: 'a' }), idp.mint({ n: 'b' }), idp.mint({ n: 'c' })]);
    for (const token of [a!, b!, c!]) expect((await startRun(bearer(token))).statusCode).toBe(200);
    expect(counting.verifications).toBe(3);
    expect(verifier.cached(a!)).toBeUndefined();
    expect(verifier.cached(b!)).toBeDefined();
    expect(verifier.cached(c!)).toBeDefined();
    expect((await startRun(bearer(c!))).statusCode).toBe(200);
    expect(counting.verifications).toBe(3);
    expect((await startRun(bearer(a!))).statusCode).toBe(200);
    expect(counting.verifications).toBe(4);
  });

  it('refused tokens are not cached', async () => {
    const idp = await issuers();
    const { startRun, verifier } = await appWithVerifier(idp, (inbound) => new CountingVerifier(inbound));
    const counting = verifier as CountingVerifier;
    const bad = idp.tamper(await idp.mint());
    expectUnauthorized(await startRun(bearer(bad)), 'invalid_token', 'Invalid token');
    expectUnauthorized(await startRun(bearer(bad)), 'invalid_token', 'Invalid token');
    expect(verifier.cached(bad)).toBeUndefined();
    expect(counting.verifications).toBe(2);
  });
});

describe('JwtVerifier directly', () => {
  const inboundFor = (idp: Issuer, source: KeySource = 'jwks_uri', extra: Env = {}) =>
    authFromEnv(requiredEnv(idp, source, extra)).inbound;

  it('returns the subject and the claims', async () => {
    const idp = await issuers();
    const verifier = new JwtVerifier(inboundFor(idp));
    const verified = await verifier.verify(await idp.mint({ sub: 'alice', scope: 'runs:write' }));
    expect(verified.sub).toBe('alice');
    expect(verified.claims).toMatchObject({ sub: 'alice', scope: 'runs:write', iss: idp.issuer });
  });

  it.each([
    ['expired', (i: Issuer) => i.mint({}, { expiresIn: -600 }), 'Token expired'],
    ['wrong audience', (i: Issuer) => i.mint({}, { audience: 'x' }), 'Invalid token audience'],
    ['wrong issuer', (i: Issuer) => i.mint({}, { issuer: 'https://x.example' }), 'Invalid token issuer'],
    ['unknown kid', (i: Issuer) => i.mintUnknownKid(), 'Unable to fetch JWKS'],
    ['alg none', async (i: Issuer) => i.mintNone(), 'Invalid token'],
    ['HS256 with the public key', (i: Issuer) => i.mintHs256WithPublicKey(), 'Invalid token'],
    ['foreign key', (i: Issuer) => i.mintWithForeignKey(), 'Invalid token'],
    ['nbf in the future', (i: Issuer) => i.mint({}, { notBefore: 600 }), 'Invalid token'],
    // A missing claim is a malformed token (PyJWT's "any other error"), not a wrong one.
    ['no aud claim', (i: Issuer) => i.mint({}, { omit: ['aud'] }), 'Invalid token'],
    ['no iss claim', (i: Issuer) => i.mint({}, { omit: ['iss'] }), 'Invalid token'],
  ] as const)('%s: invalid_token %j', async (_name, make, message) => {
    const idp = await issuers();
    const verifier = new JwtVerifier(inboundFor(idp));
    const refused = await failure(verifier.verify(await make(idp)));
    expect({ error: refused.error, message: refused.message }).toEqual({ error: 'invalid_token', message });
  });

  it('warmUp resolves the key source through discovery; a failure is reported and retried', async () => {
    const idp = await issuers();
    const verifier = new JwtVerifier(inboundFor(idp, 'discovery'));
    idp.failDiscovery(true);
    const refused = await failure(verifier.warmUp());
    expect(refused.message).toBe('Unable to fetch JWKS');
    idp.failDiscovery(false);
    await verifier.warmUp();
    await verifier.warmUp();
    expect(idp.discoveryRequests()).toBe(2);
    expect((await verifier.verify(await idp.mint())).sub).toBe(DEFAULT_SUBJECT);
  });

  it('the JWKS answering 500 is "Unable to fetch JWKS"', async () => {
    const idp = await issuers();
    const verifier = new JwtVerifier(inboundFor(idp));
    idp.failJwks(true);
    const refused = await failure(verifier.verify(await idp.mint()));
    expect({ error: refused.error, message: refused.message }).toEqual({
      error: 'invalid_token',
      message: 'Unable to fetch JWKS',
    });
  });
});
