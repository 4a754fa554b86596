/**
 * The one HTTP wrapper of the CLI: base URL, bearer token, a timeout on every call, ErrorEnvelopes
 * turned into ServiceError and transport failures into UnreachableError. Event streams are read
 * line by line without a body timeout (a follow stream may be quiet for as long as the Run runs).
 */
import { Agent, type Dispatcher, request } from 'undici';
import { ServiceError, UnreachableError, UsageError } from './errors.js';

export interface ClientOptions {
  readonly url: string;
  readonly token?: string;
  /** Connect, answer-headers and (for JSON) body timeout. */
  readonly timeoutMs: number;
}

export type Query = Record<string, string | number | boolean | undefined>;

/** `/v1/runs/{id}`-style paths with every id percent-encoded. */
export const segment = (id: string): string => encodeURIComponent(id);

export class RcClient {
  /** The service's base URL, without a trailing slash. */
  readonly base: string;
  readonly #headers: Record<string, string>;
  readonly #agent: Agent;
  readonly #timeoutMs: number;

  constructor(options: ClientOptions) {
    this.base = parseBaseUrl(options.url);
    this.#headers = options.token ? { authorization: `Bearer ${options.token}` } : {};
    this.#timeoutMs = options.timeoutMs;
    this.#agent = new Agent({ connectTimeout: options.timeoutMs });
  }

  /** One JSON call; resolves to the parsed body of a 2xx answer. */
  async json<T>(
    method: string,
    path: string,
    options: { query?: Query; body?: unknown; signal?: AbortSignal } = {},
  ): Promise<T> {
    const url = this.#url(path, options.query);
    const response = await this.#send(url, {
      method: method as Dispatcher.HttpMethod,
      headers: {
        ...this.#headers,
        accept: 'application/json',
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      bodyTimeout: this.#timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const text = await readText(url, response);
    if (response.statusCode >= 300) throw serviceError(response, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ServiceError(
        response.statusCode,
        'invalid_response',
        'the answer is not JSON',
        requestId(response),
      );
    }
  }

  /**
   * The lines of an NDJSON answer as they arrive, without their newline. Ends when the service
   * ends the stream, or quietly when `signal` aborts.
   */
  async *lines(path: string, query: Query, signal: AbortSignal): AsyncGenerator<string> {
    const url = this.#url(path, query);
    const response = await this.#send(url, {
      method: 'GET',
      headers: { ...this.#headers, accept: 'application/x-ndjson' },
      bodyTimeout: 0,
      signal,
    });
    if (response.statusCode >= 300) throw serviceError(response, await readText(url, response));
    response.body.setEncoding('utf8');
    let pending = '';
    try {
      for await (const chunk of response.body) {
        pending += chunk as string;
        let newline = pending.indexOf('\n');
        while (newline >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (line !== '') yield line;
          newline = pending.indexOf('\n');
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      throw new UnreachableError(url, transportReason(error));
    }
    if (pending !== '') yield pending;
  }

  close(): Promise<void> {
    return this.#agent.destroy();
  }

  #url(path: string, query: Query = {}): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    const search = params.toString();
    return `${this.base}${path}${search ? `?${search}` : ''}`;
  }

  async #send(url: string, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path'>) {
    try {
      return await request(url, { ...options, dispatcher: this.#agent, headersTimeout: this.#timeoutMs });
    } catch (error) {
      if (options.signal && (options.signal as AbortSignal).aborted) throw error;
      throw new UnreachableError(url, transportReason(error));
    }
  }
}

/** `--url` without a trailing slash; only http and https. */
function parseBaseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url: not a URL: ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url: only http:// and https:// URLs are supported, not ${url.protocol}`);
  }
  if (url.search || url.hash) throw new UsageError(`--url: no query or fragment expected: ${text}`);
  return url.href.replace(/\/+$/, '');
}

async function readText(url: string, response: Dispatcher.ResponseData): Promise<string> {
  try {
    return await response.body.text();
  } catch (error) {
    throw new UnreachableError(url, transportReason(error));
  }
}

function requestId(response: Dispatcher.ResponseData): string | undefined {
  const value = response.headers['x-request-id'];
  return Array.isArray(value) ? value[0] : value;
}

function serviceError(response: Dispatcher.ResponseData, text: string): ServiceError {
  const id = requestId(response);
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    const { code, message, details } = body.error ?? {};
    if (typeof code === 'string' && typeof message === 'string') {
      const extra = details && typeof details === 'object' ? (details as Record<string, unknown>) : undefined;
      return new ServiceError(response.statusCode, code, message, id, extra);
    }
  } catch {
    // Not an ErrorEnvelope (a proxy's page, say): reported by status below.
  }
  const excerpt = text.trim().slice(0, 200);
  return new ServiceError(response.statusCode, `http_${response.statusCode}`, excerpt || 'no body', id);
}

/** The most specific name of a transport failure: ECONNREFUSED, ENOTFOUND, UND_ERR_HEADERS_TIMEOUT, ... */
function transportReason(error: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string') {
      if (typeof message !== 'string' || !message) return code;
      return message.includes(code) ? message : `${code}: ${message}`;
    }
    // Happy eyeballs reports every address it tried in an AggregateError.
    const inner = (current as { errors?: unknown[] }).errors?.[0];
    current = inner ?? (current as { cause?: unknown }).cause;
  }
  return error instanceof Error ? error.message : String(error);
}
