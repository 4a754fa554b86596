/**
 * Tests of the auth test helpers themselves: the loopback OIDC issuer (discovery, JWKS, minting,
 * rotation, attack tokens, failure switches) and the fake OAuth2 token endpoint.
 */
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  exportSPKI,
  type JWTVerifyOptions,
  jwtVerify,
} from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { type Issuer, startIssuer } from './oidc.js';
import { startTokenEndpoint, type TokenEndpoint } from './token-endpoint.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function issuer(...args: Parameters<typeof startIssuer>): Promise<Issuer> {
  const started = await startIssuer(...args);
  closers.push(() => started.close());
  return started;
}

async function tokenEndpoint(...args: Parameters<typeof startTokenEndpoint>): Promise<TokenEndpoint> {
  const started = await startTokenEndpoint(...args);
  closers.push(() => started.close());
  return started;
}

const ALGS = ['RS256', 'ES256'];

function verifyOptions(idp: Issuer): JWTVerifyOptions {
  return { algorithms: ALGS, issuer: idp.issuer, audience: 'arp-run-coordinator' };
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

function postForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('OIDC issuer helper', () => {
  it('serves discovery and a public JWKS on loopback', async () => {
    const idp = await issuer();
    expect(idp.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/realms\/test$/);
    expect(idp.issuer).toBe(idp.url);
    expect(idp.discoveryUrl).toBe(`${idp.issuer}/.well-known/openid-configuration`);

    const discovery = await getJson(idp.discoveryUrl);
    expect(discovery.status).toBe(200);
    expect(discovery.body).toMatchObject({
      issuer: idp.issuer,
      jwks_uri: idp.jwksUri,
      token_endpoint: `${idp.issuer}/protocol/openid-connect/token`,
    });

    const jwks = await getJson(idp.jwksUri);
    expect(jwks.status).toBe(200);
    const keys = (jwks.body as { keys: Record<string, unknown>[] }).keys;
    expect(keys.map((k) => [k.kid, k.alg, k.use, k.kty])).toEqual([
      ['rs-1', 'RS256', 'sig', 'RSA'],
      ['es-1', 'ES256', 'sig', 'EC'],
    ]);
    for (const k of keys)
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(k).not.toHaveProperty(secret);

    expect(idp.discoveryRequests()).toBe(1);
    expect(idp.jwksRequests()).toBe(1);
    expect((await fetch(`${idp.issuer}/nope`)).status).toBe(404);
  });

  it('mints RS256 and ES256 tokens that verify against the remote JWKS', async () => {
    const idp = await issuer();
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));

    const rs = await idp.mint();
    expect(decodeProtectedHeader(rs)).toEqual({ alg: 'RS256', kid: 'rs-1', typ: 'JWT' });
    const rsResult = await jwtVerify(rs, jwks, verifyOptions(idp));
    expect(rsResult.payload).toMatchObject({ iss: idp.issuer, aud: 'arp-run-coordinator', sub: 'user-1' });
    expect(rsResult.payload.exp! - rsResult.payload.iat!).toBe(300);

    const es = await idp.mint({ sub: 'svc', scope: 'runs' }, { alg: 'ES256' });
    expect(decodeProtectedHeader(es)).toMatchObject({ alg: 'ES256', kid: 'es-1' });
    const esResult = await jwtVerify(es, jwks, verifyOptions(idp));
    expect(esResult.payload).toMatchObject({ sub: 'svc', scope: 'runs' });

    const byKid = await idp.mint({}, { kid: 'es-1' });
    expect(decodeProtectedHeader(byKid).alg).toBe('ES256');
  });

  it('applies mint options: expiry, nbf, issuer, audience, omitted claims, header overrides', async () => {
    const idp = await issuer();
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    const verify = (token: string) => jwtVerify(token, jwks, verifyOptions(idp));

    await expect(verify(await idp.mint({}, { expiresIn: -600 }))).rejects.toBeInstanceOf(errors.JWTExpired);
    await expect(verify(await idp.mint({}, { notBefore: 600 }))).rejects.toMatchObject({
      code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
      claim: 'nbf',
    });
    await expect(verify(await idp.mint({}, { issuer: 'http://elsewhere' }))).rejects.toMatchObject({
      claim: 'iss',
    });
    await expect(verify(await idp.mint({}, { audience: 'arp-pdp' }))).rejects.toMatchObject({ claim: 'aud' });

    const noExp = await idp.mint({}, { omit: ['exp', 'iat'] });
    expect(decodeJwt(noExp)).not.toHaveProperty('exp');
    expect(decodeJwt(noExp)).not.toHaveProperty('iat');
    await expect(verify(noExp)).resolves.toBeDefined();
    await expect(
      jwtVerify(noExp, jwks, { ...verifyOptions(idp), requiredClaims: ['exp'] }),
    ).rejects.toMatchObject({ claim: 'exp', reason: 'missing' });

    const explicitExp = await idp.mint({ exp: 1 });
    expect(decodeJwt(explicitExp).exp).toBe(1);

    const typed = await idp.mint({}, { header: { typ: 'at+jwt' } });
    expect(decodeProtectedHeader(typed).typ).toBe('at+jwt');
    const noKid = await idp.mint({}, { header: { kid: undefined } });
    expect(decodeProtectedHeader(noKid)).not.toHaveProperty('kid');
  });

  it('rotates keys: added keys appear in the JWKS, removed keys disappear', async () => {
    const idp = await issuer();
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri), { cooldownDuration: 0 });
    await jwtVerify(await idp.mint(), jwks, verifyOptions(idp));
    expect(idp.jwksRequests()).toBe(1);

    await idp.addKey('RS256', 'rs-2');
    expect(idp.kids()).toEqual(['rs-1', 'es-1', 'rs-2']);
    // The unknown kid makes the remote set refetch, and the new key is there.
    await jwtVerify(await idp.mint({}, { kid: 'rs-2' }), jwks, verifyOptions(idp));
    expect(idp.jwksRequests()).toBe(2);

    const beforeRotation = await idp.mint({}, { kid: 'rs-1' });
    idp.removeKey('rs-1');
    expect(idp.kids()).toEqual(['es-1', 'rs-2']);
    const served = (await getJson(idp.jwksUri)).body as { keys: { kid: string }[] };
    expect(served.keys.map((k) => k.kid)).toEqual(['es-1', 'rs-2']);

    const fresh = createRemoteJWKSet(new URL(idp.jwksUri));
    await expect(jwtVerify(beforeRotation, fresh, verifyOptions(idp))).rejects.toBeInstanceOf(
      errors.JWKSNoMatchingKey,
    );
    // The default RS256 key is now rs-2; a removed key can still sign on request.
    expect(decodeProtectedHeader(await idp.mint()).kid).toBe('rs-2');
    expect(decodeProtectedHeader(await idp.mint({}, { kid: 'rs-1' })).kid).toBe('rs-1');
    expect(() => idp.removeKey('rs-1')).toThrow(/not published/);
  });

  it('builds attack tokens that a verifier restricted to RS256/ES256 rejects', async () => {
    const idp = await issuer();
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    const verify = (token: string) => jwtVerify(token, jwks, verifyOptions(idp));

    const foreign = await idp.mintWithForeignKey();
    expect(decodeProtectedHeader(foreign)).toMatchObject({ alg: 'RS256', kid: 'rs-1' });
    await expect(verify(foreign)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);
    const foreignEs = await idp.mintWithForeignKey({}, { alg: 'ES256' });
    expect(decodeProtectedHeader(foreignEs)).toMatchObject({ alg: 'ES256', kid: 'es-1' });
    await expect(verify(foreignEs)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);

    const unknownKid = await idp.mintUnknownKid();
    expect(decodeProtectedHeader(unknownKid).kid).toBe('unknown-kid');
    await expect(verify(unknownKid)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);

    const none = idp.mintNone();
    const [noneHeader, nonePayload, noneSignature] = none.split('.');
    expect(JSON.parse(Buffer.from(noneHeader!, 'base64url').toString())).toEqual({ alg: 'none', typ: 'JWT' });
    expect(JSON.parse(Buffer.from(nonePayload!, 'base64url').toString())).toMatchObject({ sub: 'user-1' });
    expect(noneSignature).toBe('');
    await expect(verify(none)).rejects.toBeInstanceOf(errors.JOSEAlgNotAllowed);

    const confused = await idp.mintHs256WithPublicKey();
    expect(decodeProtectedHeader(confused)).toMatchObject({ alg: 'HS256', kid: 'rs-1' });
    await expect(verify(confused)).rejects.toBeInstanceOf(errors.JOSEAlgNotAllowed);
    // It is a genuine key-confusion token: HMAC-verifying with the public PEM as secret succeeds.
    const pem = new TextEncoder().encode(await exportSPKI(idp.key('rs-1').publicKey));
    await expect(jwtVerify(confused, pem, { algorithms: ['HS256'] })).resolves.toBeDefined();

    const original = await idp.mint();
    const tampered = idp.tamper(original);
    expect(decodeJwt(tampered).sub).toBe('user-1-tampered');
    expect(tampered.split('.')[2]).toBe(original.split('.')[2]);
    await expect(verify(tampered)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);
    expect(decodeJwt(idp.tamper(original, { aud: 'other' })).aud).toBe('other');
  });

  it('failJwks and failDiscovery make the endpoints answer 500 until switched off', async () => {
    const idp = await issuer();
    const token = await idp.mint();

    idp.failJwks(true);
    expect((await fetch(idp.jwksUri)).status).toBe(500);
    await expect(
      jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), verifyOptions(idp)),
    ).rejects.toThrow(errors.JOSEError);
    idp.failJwks(false);
    await expect(
      jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), verifyOptions(idp)),
    ).resolves.toBeDefined();
    expect(idp.jwksRequests()).toBe(3);

    idp.failDiscovery(true);
    expect((await fetch(idp.discoveryUrl)).status).toBe(500);
    idp.failDiscovery(false);
    expect((await fetch(idp.discoveryUrl)).status).toBe(200);
    expect(idp.discoveryRequests()).toBe(2);
  });

  it('takes a realm path, audience, subject, key set and advertised token endpoint', async () => {
    const idp = await issuer({
      realmPath: 'realms/arp-dev',
      audience: 'arp-other',
      subject: 'svc-a',
      keys: [{ alg: 'ES256', kid: 'only-ec' }],
      tokenEndpoint: 'http://127.0.0.1:1/token',
    });
    expect(idp.issuer).toMatch(/\/realms\/arp-dev$/);
    expect((await getJson(idp.discoveryUrl)).body).toMatchObject({
      token_endpoint: 'http://127.0.0.1:1/token',
    });
    const token = await idp.mint();
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid: 'only-ec' });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), {
      algorithms: ALGS,
      issuer: idp.issuer,
      audience: 'arp-other',
    });
    expect(payload.sub).toBe('svc-a');
    await expect(idp.mintHs256WithPublicKey()).rejects.toThrow(/RS256/);
  });
});

describe('token endpoint helper', () => {
  it('issues client-credentials tokens and records Basic and form credentials', async () => {
    const te = await tokenEndpoint();
    expect(te.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/realms\/test\/protocol\/openid-connect\/token$/);

    const viaBasic = await postForm(
      te.url,
      { grant_type: 'client_credentials', audience: 'arp-pdp' },
      { authorization: basic('arp-rc', 's3cr:t+') },
    );
    expect(viaBasic.status).toBe(200);
    expect(await viaBasic.json()).toEqual({
      access_token: 'tok-arp-pdp-1',
      token_type: 'Bearer',
      expires_in: 300,
    });

    const viaBody = await postForm(te.url, {
      grant_type: 'client_credentials',
      audience: 'arp-node-registry',
      scope: 'read',
      client_id: 'arp-rc',
      client_secret: 'pw',
    });
    expect(await viaBody.json()).toMatchObject({ access_token: 'tok-arp-node-registry-2' });

    const [first, second] = te.requests();
    expect(first).toMatchObject({
      grant_type: 'client_credentials',
      client_id: 'arp-rc',
      client_secret: 's3cr:t+',
      audience: 'arp-pdp',
      scope: undefined,
      credentials: 'basic',
      authorization: basic('arp-rc', 's3cr:t+'),
    });
    expect(second).toMatchObject({
      client_id: 'arp-rc',
      client_secret: 'pw',
      audience: 'arp-node-registry',
      scope: 'read',
      credentials: 'body',
    });
    expect(second).not.toHaveProperty('authorization');
    expect(te.issued()).toBe(2);
  });

  it('rejects bad requests the way an OAuth2 server does', async () => {
    const te = await tokenEndpoint({ clients: { 'arp-rc': 'pw' } });
    const grant = { grant_type: 'client_credentials', audience: 'a' };

    const wrongSecret = await postForm(te.url, grant, { authorization: basic('arp-rc', 'nope') });
    expect(wrongSecret.status).toBe(401);
    expect(await wrongSecret.json()).toMatchObject({ error: 'invalid_client' });
    expect((await postForm(te.url, grant)).status).toBe(401);
    const both = await postForm(
      te.url,
      { ...grant, client_id: 'arp-rc', client_secret: 'pw' },
      { authorization: basic('arp-rc', 'pw') },
    );
    expect(both.status).toBe(400);
    const password = await postForm(te.url, {
      grant_type: 'password',
      client_id: 'arp-rc',
      client_secret: 'pw',
    });
    expect(await password.json()).toMatchObject({ error: 'unsupported_grant_type' });
    const json = await fetch(te.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic('arp-rc', 'pw') },
      body: JSON.stringify(grant),
    });
    expect(json.status).toBe(400);
    expect((await fetch(te.url)).status).toBe(405);

    expect(te.requests().map((r) => r.credentials)).toEqual([
      'basic',
      'none',
      'both',
      'body',
      'basic',
      'none',
    ]);
    expect(te.issued()).toBe(0);
  });

  it('respondWith, fail and hold change the answers', async () => {
    const te = await tokenEndpoint();
    const grant = { grant_type: 'client_credentials', audience: 'aud', client_id: 'c', client_secret: 's' };

    te.respondWith((_req, token) => ({ json: { ...token, expires_in: 1 } }));
    expect(await (await postForm(te.url, grant)).json()).toEqual({
      access_token: 'tok-aud-1',
      token_type: 'Bearer',
      expires_in: 1,
    });
    te.respondWith(null);
    expect(await (await postForm(te.url, grant)).json()).toMatchObject({ expires_in: 300 });

    te.fail(503);
    const failed = await postForm(te.url, grant);
    expect(failed.status).toBe(503);
    expect(await failed.json()).toMatchObject({ error: 'server_error' });
    te.fail('close');
    await expect(postForm(te.url, grant)).rejects.toThrow();
    te.fail(false);
    expect(await (await postForm(te.url, grant)).json()).toMatchObject({ access_token: 'tok-aud-3' });

    const release = te.hold();
    let answered = false;
    const pending = postForm(te.url, grant).then(async (res) => {
      answered = true;
      return res.json();
    });
    const seen = await te.waitForRequests(6);
    expect(seen).toHaveLength(6);
    expect(answered).toBe(false);
    release();
    expect(await pending).toMatchObject({ access_token: 'tok-aud-4' });
  });

  it('with expiresIn option answers short-lived tokens', async () => {
    const te = await tokenEndpoint({ expiresIn: 1, path: '/oauth/token' });
    expect(te.url).toBe(`${te.origin}/oauth/token`);
    const res = await postForm(te.url, {
      grant_type: 'client_credentials',
      client_id: 'c',
      client_secret: 's',
    });
    expect(await res.json()).toEqual({ access_token: 'tok--1', token_type: 'Bearer', expires_in: 1 });
  });
});
