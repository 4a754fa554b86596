/**
 * OAuth2 client-credentials tokens for the coordinator's own calls (executors, registry, PDP,
 * selection): one token per audience, cached until shortly before it expires, one request in
 * flight per audience at a time. A failing token endpoint is a coded error for the call that
 * needed the token; it never crashes the process.
 */

import { LRUCache } from 'lru-cache';
import { type Dispatcher, request } from 'undici';
import type { FailureCode } from '../errors.js';
import type { OutboundAuth } from './settings.js';

export class TokenRequestError extends Error {
  readonly code: FailureCode = 'token_request_failed';
  readonly details: Record<string, unknown>;
  constructor(audience: string, details: Record<string, unknown>) {
    super(`could not obtain an access token for audience '${audience}'`);
    this.name = 'TokenRequestError';
    this.details = { audience, ...details };
  }
}

export interface TokenProviderOptions {
  readonly timeoutMs: number;
  readonly dispatcher?: Dispatcher;
  readonly now?: () => number;
  /** Renew this long before expiry (default 30 s, at most half the token's lifetime). */
  readonly refreshMarginMs?: number;
  /** Told of every request to the token endpoint once it has ended (metrics). */
  readonly onTokenCall?: (call: TokenCallRecord) => void;
}

/** One request to the token endpoint, as observers see it (no audience, no credentials). */
export interface TokenCallRecord {
  /** `ok`, or the failure's cause: `error` (non-2xx), `invalid_response` or `unavailable` (transport). */
  readonly outcome: 'ok' | 'error' | 'invalid_response' | 'unavailable';
  readonly durationMs: number;
}

export class ClientCredentialsTokens {
  readonly #settings: OutboundAuth;
  readonly #options: TokenProviderOptions;
  readonly #now: () => number;
  /**
   * A token per audience until shortly before it expires; one request at a time per audience
   * (concurrent callers share it), and a failed request is not cached.
   */
  readonly #cache: LRUCache<string, string>;

  constructor(settings: OutboundAuth, options: TokenProviderOptions) {
    this.#settings = settings;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#cache = new LRUCache<string, string>({
      max: 1_000,
      perf: { now: this.#now },
      ttlResolution: 0,
      fetchMethod: async (audience, _stale, { options: entry }) => {
        const { token, renewAt } = await this.#fetch(audience);
        // Used while now < renewAt (an entry lives while its age is at most its ttl).
        entry.ttl = Math.max(1, renewAt - this.#now() - 1);
        return token;
      },
    });
  }

  /** A valid access token for `audience`, from the cache or the token endpoint. */
  token(audience: string): Promise<string> {
    const cached = this.#cache.get(audience);
    if (cached !== undefined) return Promise.resolve(cached);
    return this.#cache.fetch(audience) as Promise<string>;
  }

  async #fetch(audience: string): Promise<{ token: string; renewAt: number }> {
    const observe = this.#options.onTokenCall;
    if (!observe) return this.#request(audience);
    const started = performance.now();
    let outcome: TokenCallRecord['outcome'] = 'ok';
    try {
      return await this.#request(audience);
    } catch (error) {
      const details = error instanceof TokenRequestError ? error.details : {};
      outcome =
        details.status === undefined
          ? 'unavailable'
          : details.cause === undefined
            ? 'error'
            : 'invalid_response';
      throw error;
    } finally {
      observe({ outcome, durationMs: performance.now() - started });
    }
  }

  async #request(audience: string): Promise<{ token: string; renewAt: number }> {
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.#settings.clientId,
      client_secret: this.#settings.clientSecret,
      audience,
    });
    let status: number;
    let text: string;
    try {
      const response = await request(this.#settings.tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(this.#options.timeoutMs),
        ...(this.#options.dispatcher ? { dispatcher: this.#options.dispatcher } : {}),
      });
      status = response.statusCode;
      text = await response.body.text();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new TokenRequestError(audience, { cause: typeof code === 'string' ? code : 'transport_error' });
    }
    if (status < 200 || status >= 300) throw new TokenRequestError(audience, { status });
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text);
    } catch {
      throw new TokenRequestError(audience, { status, cause: 'invalid_json' });
    }
    if (typeof body.access_token !== 'string' || body.access_token === '') {
      throw new TokenRequestError(audience, { status, cause: 'no_access_token' });
    }
    const lifetimeMs =
      typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in * 1000 : 60_000;
    const margin = Math.min(this.#options.refreshMarginMs ?? 30_000, lifetimeMs / 2);
    return { token: body.access_token, renewAt: this.#now() + lifetimeMs - margin };
  }
}
