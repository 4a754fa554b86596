/**
 * Shared pieces of the inbound-auth tests: loopback issuers closed after each test, auth settings
 * built from an ARP_AUTH_* environment (as the service does), the exact 401 assertion of
 * reference-behavior.md §5.1, a verifier that counts full verifications, and a log capture.
 */
import { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { afterEach, expect } from 'vitest';
import { type AuthSettings, parseAuthSettings } from '../../src/auth/settings.js';
import { JwtVerifier, type VerifiedToken } from '../../src/auth/verifier.js';
import { DEFAULT_AUDIENCE, type Issuer, type IssuerOptions, startIssuer } from '../helpers/oidc.js';

export type Env = Record<string, string | undefined>;

/** Registers cleanup that closes every issuer started in a test. */
export function useIssuers(): (options?: IssuerOptions) => Promise<Issuer> {
  const started: Issuer[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((idp) => idp.close()));
  });
  return async (options?: IssuerOptions) => {
    const idp = await startIssuer(options);
    started.push(idp);
    return idp;
  };
}

/** Settings from an environment that must be valid. */
export function authFromEnv(env: Env): AuthSettings {
  const problems: string[] = [];
  const settings = parseAuthSettings(env, problems);
  expect(problems, 'auth settings problems').toEqual([]);
  return settings;
}

export type KeySource = 'jwks_uri' | 'discovery';

/**
 * Required mode against `idp`: either with ARP_AUTH_JWKS_URI (plus issuer and audience), or with the
 * issuer only, so that the keys are found through OIDC discovery (audience from ARP_AUTH_SERVICE_ID).
 */
export function requiredEnv(idp: Issuer, source: KeySource, extra: Env = {}): Env {
  const base: Env =
    source === 'jwks_uri'
      ? {
          ARP_AUTH_MODE: 'required',
          ARP_AUTH_JWKS_URI: idp.jwksUri,
          ARP_AUTH_ISSUER: idp.issuer,
          ARP_AUTH_AUDIENCE: DEFAULT_AUDIENCE,
        }
      : { ARP_AUTH_MODE: 'required', ARP_AUTH_ISSUER: idp.issuer, ARP_AUTH_SERVICE_ID: DEFAULT_AUDIENCE };
  return { ...base, ...extra };
}

/** The reference 401: status, ErrorEnvelope and the exact `WWW-Authenticate` header. */
export function expectUnauthorized(
  res: LightMyRequestResponse,
  error: 'invalid_request' | 'invalid_token',
  message: string,
): void {
  expect({ status: res.statusCode, body: res.body }).toEqual({
    status: 401,
    body: JSON.stringify({ error: { code: 'unauthorized', message } }),
  });
  expect(res.headers['www-authenticate']).toBe(`Bearer error="${error}", error_description="${message}"`);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
}

/** A JwtVerifier that counts full verifications (cache hits in the hook never reach `verify`). */
export class CountingVerifier extends JwtVerifier {
  verifications = 0;
  override verify(token: string): Promise<VerifiedToken> {
    this.verifications++;
    return super.verify(token);
  }
}

/** A pino logger at info level whose lines are parsed into `lines`. */
export function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

export const RUN_BODY = {
  root_node_type_ref: { node_type_id: 'composite.root', version: '1.0.0' },
  input: {},
};
