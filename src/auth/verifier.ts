/**
 * Verifies bearer JWTs against the issuer's JWKS with jose, and caches verified tokens (bounded,
 * until `exp`) because signature verification per request costs most of a fast route's
 * throughput. Keys come from ARP_AUTH_JWKS_URI or the OIDC discovery document; jose refetches the
 * JWKS for an unknown `kid`, at most once per cooldown, so rotation works and a flood of bad kids
 * cannot hammer the issuer.
 */
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import type { InboundAuth } from './settings.js';

export interface VerifiedToken {
  readonly sub: string;
  readonly claims: JWTPayload;
  /** The request principal for this token, built once and shared by every request that sends it. */
  readonly principal: { readonly kind: 'user'; readonly sub: string; readonly claims: JWTPayload };
}

/** Why a token was refused, in the terms of the 401 answer (RFC 6750). */
export class AuthFailure extends Error {
  readonly error: 'invalid_request' | 'invalid_token';
  constructor(error: 'invalid_request' | 'invalid_token', description: string) {
    super(description);
    this.name = 'AuthFailure';
    this.error = error;
  }
}

export interface VerifierOptions {
  /** Verified tokens kept (oldest dropped first). */
  readonly cacheSize?: number;
  /** Minimum time between two JWKS fetches triggered by unknown kids. */
  readonly jwksCooldownMs?: number;
  readonly fetchTimeoutMs?: number;
  readonly now?: () => number;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

export class JwtVerifier {
  readonly #settings: InboundAuth;
  /** Keyed by the end of the token (its signature), which is unique and cheaper to hash. */
  readonly #cache: LRUCache<string, { raw: string; token: VerifiedToken }>;
  readonly #cooldownMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #keys: Promise<KeySet> | undefined;

  constructor(settings: InboundAuth, options: VerifierOptions = {}) {
    this.#settings = settings;
    this.#now = options.now ?? Date.now;
    // Each entry lives until its token expires; the least recently used go first when full.
    this.#cache = new LRUCache({
      max: options.cacheSize ?? 10_000,
      perf: { now: this.#now },
      ttlResolution: 0,
    });
    this.#cooldownMs = options.jwksCooldownMs ?? 30_000;
    this.#timeoutMs = options.fetchTimeoutMs ?? 5_000;
  }

  /** A token verified before and not expired since, without any async work (the hot path). */
  cached(token: string): VerifiedToken | undefined {
    const hit = this.#cache.get(cacheKey(token));
    return hit?.raw === token ? hit.token : undefined;
  }

  async verify(token: string): Promise<VerifiedToken> {
    const hit = this.cached(token);
    if (hit) return hit;
    const keys = await this.#keySet();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: [...this.#settings.algorithms],
        clockTolerance: this.#settings.clockSkewSeconds,
        ...(this.#settings.issuer ? { issuer: this.#settings.issuer } : {}),
        ...(this.#settings.audience ? { audience: this.#settings.audience } : {}),
        currentDate: new Date(this.#now()),
      }));
    } catch (error) {
      throw describe(error);
    }
    const sub = typeof payload.sub === 'string' ? payload.sub : '';
    const verified: VerifiedToken = {
      sub,
      claims: payload,
      principal: { kind: 'user', sub, claims: payload },
    };
    this.#remember(token, verified, payload.exp);
    return verified;
  }

  /** Resolves the key source now (startup); failures are reported, and retried on the next token. */
  async warmUp(): Promise<void> {
    await this.#keySet();
  }

  #remember(token: string, verified: VerifiedToken, exp: number | undefined): void {
    // Until `exp`, and never longer than an hour for tokens without one.
    const until = Math.min(
      exp === undefined ? Number.POSITIVE_INFINITY : exp * 1000,
      this.#now() + 3_600_000,
    );
    // Valid while now < until (LRUCache keeps an entry while its age is at most its ttl).
    const ttl = until - this.#now() - 1;
    if (ttl > 0) this.#cache.set(cacheKey(token), { raw: token, token: verified }, { ttl });
  }

  #keySet(): Promise<KeySet> {
    this.#keys ??= this.#resolveKeySet().catch((error) => {
      this.#keys = undefined;
      throw error;
    });
    return this.#keys;
  }

  async #resolveKeySet(): Promise<KeySet> {
    const jwksUri = this.#settings.jwksUri ?? (await this.#discover());
    return createRemoteJWKSet(new URL(jwksUri), {
      cooldownDuration: this.#cooldownMs,
      timeoutDuration: this.#timeoutMs,
      cacheMaxAge: 10 * 60_000,
    });
  }

  async #discover(): Promise<string> {
    const url = this.#settings.discoveryUrl;
    if (!url) throw new AuthFailure('invalid_token', 'Unable to fetch JWKS');
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(this.#timeoutMs) });
      if (!response.ok) throw new Error(`discovery answered ${response.status}`);
      const document = (await response.json()) as { jwks_uri?: unknown };
      if (typeof document.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
      return document.jwks_uri;
    } catch (error) {
      throw Object.assign(new AuthFailure('invalid_token', 'Unable to fetch JWKS'), { cause: error });
    }
  }
}

const cacheKey = (token: string) => (token.length > 64 ? token.slice(-64) : token);

/** jose's verdict in the reference services' words. */
function describe(error: unknown): AuthFailure {
  if (error instanceof AuthFailure) return error;
  if (error instanceof errors.JWTExpired) return new AuthFailure('invalid_token', 'Token expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    // A missing claim is a malformed token, as in the reference; a wrong one names the claim.
    if (error.reason === 'missing') return new AuthFailure('invalid_token', 'Invalid token');
    if (error.claim === 'aud') return new AuthFailure('invalid_token', 'Invalid token audience');
    if (error.claim === 'iss') return new AuthFailure('invalid_token', 'Invalid token issuer');
    return new AuthFailure('invalid_token', 'Invalid token');
  }
  if (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    error instanceof errors.JWKSMultipleMatchingKeys ||
    // jose reports a JWKS endpoint that answers non-200 (or not JSON) with its generic error.
    (error as { code?: unknown }).code === 'ERR_JOSE_GENERIC' ||
    !(error instanceof errors.JOSEError)
  ) {
    return new AuthFailure('invalid_token', 'Unable to fetch JWKS');
  }
  return new AuthFailure('invalid_token', 'Invalid token');
}
