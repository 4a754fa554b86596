/**
 * The one outgoing-HTTP layer every ARP client shares: base-URL normalisation, a timeout on every
 * call, bounded retries with jittered backoff for calls that are safe to repeat, contract
 * validation of request and response bodies, and mapping of every failure to a coded
 * `ServiceError`. Messages never carry the peer's URL, so they can be shown to API clients.
 */
import { isUtf8 } from 'node:buffer';
import { SpanKind } from '@opentelemetry/api';
import { type Dispatcher, request } from 'undici';
import { jsonTextProblem } from '../contract/json-limits.js';
import type { ContractValidators } from '../contract/validators.js';
import type { ServiceFailureCode } from '../errors.js';
import type { RunContext } from '../gen/contract.js';
import { ATTR, type Tracing } from '../tracing/tracing.js';
import { traceHeaders } from '../tracing/w3c.js';

export type ServiceName = 'atomic_executor' | 'composite_executor' | 'node_registry' | 'pdp' | 'selection';

export const SERVICE_TITLES: Record<ServiceName, string> = {
  atomic_executor: 'Atomic Executor',
  composite_executor: 'Composite Executor',
  node_registry: 'Node Registry',
  pdp: 'PDP',
  selection: 'Selection',
};

/** What went wrong, as a stable suffix of the error code (`<service>_<kind>`). */
export type FailureKind = 'unavailable' | 'timeout' | 'error' | 'invalid_response' | 'invalid_request';

export class ServiceError extends Error {
  readonly code: ServiceFailureCode;
  readonly service: ServiceName;
  readonly kind: FailureKind;
  /** HTTP status the peer answered with, for `error`. */
  readonly status: number | undefined;
  readonly details: Record<string, unknown>;

  constructor(
    service: ServiceName,
    kind: FailureKind,
    message: string,
    details: Record<string, unknown> = {},
    status?: number,
  ) {
    super(message);
    this.name = 'ServiceError';
    this.service = service;
    this.kind = kind;
    this.code = `${service}_${kind}`;
    this.status = status;
    this.details = details;
  }
}

/** `http://host:1234/`, `http://host:1234/v1` and `http://host:1234` all name the same service. */
export function normalizeBaseUrl(raw: string): string {
  let url = raw.trim();
  while (url.endsWith('/')) url = url.slice(0, -1);
  if (url.endsWith('/v1')) url = url.slice(0, -3);
  while (url.endsWith('/')) url = url.slice(0, -1);
  return url;
}

export interface RetryPolicy {
  /** Extra attempts after the first, for calls that are safe to repeat. */
  readonly retries: number;
  /** Delay before retry `attempt` (1-based), in ms. */
  readonly backoff: (attempt: number) => number;
}

/** Capped exponential backoff with full jitter: 0..min(2s, 100ms·2^attempt). */
export const jitteredBackoff = (attempt: number) => Math.random() * Math.min(2000, 100 * 2 ** attempt);

export const defaultRetryPolicy: RetryPolicy = { retries: 2, backoff: jitteredBackoff };

export interface ServiceClientOptions {
  readonly service: ServiceName;
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly validators: ContractValidators;
  readonly dispatcher?: Dispatcher;
  readonly retry?: RetryPolicy;
  /** Largest answer accepted, in bytes (default 16 MiB). */
  readonly maxResponseBytes?: number;
  /** Headers added to every call (e.g. an Authorization header). */
  readonly headers?: () => Record<string, string> | Promise<Record<string, string>>;
  /** `user-agent` of every call (default: none set, undici's own). */
  readonly userAgent?: string;
  /** Told of every attempt once it has ended, whatever its outcome (metrics, health, logs). */
  readonly onCall?: (record: CallRecord) => void;
  /** Spans for calls, when tracing is on. */
  readonly tracing?: Tracing;
}

/** One attempt of an outgoing call, as observers see it. Never carries the peer's URL. */
export interface CallRecord {
  readonly service: ServiceName;
  /** The operation called, a fixed name per client method (`execute`, `cancel`, `decide`...). */
  readonly operation: string;
  /** `ok`, an accepted non-2xx answer included, or what went wrong. */
  readonly outcome: 'ok' | FailureKind | 'aborted';
  /** HTTP status of the answer, when there was one. */
  readonly status: number | undefined;
  readonly durationMs: number;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The failure's code (`<service>_<kind>`), for failed attempts. */
  readonly code: string | undefined;
}

export interface CallOptions {
  /** Fixed name of the operation, for observers (metrics label: never an id). */
  readonly operation: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
  /** Contract component the request body must match. */
  readonly requestSchema?: string;
  /** Contract component a 200 body must match; omit for 204-style calls. */
  readonly responseSchema?: string;
  /** Retry transport failures and 502/503/504. Only for calls with no side effect or idempotent ones. */
  readonly safeToRetry: boolean;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Statuses that are not failures but answers (e.g. 404 from a registry). */
  readonly acceptStatuses?: readonly number[];
  /** The Run this call is made for: its trace goes with the call (`traceparent`, `x-request-id`). */
  readonly runContext?: RunContext | undefined;
  /** The Run and NodeRun the call is about, for its span. */
  readonly subject?: { readonly runId?: string; readonly nodeRunId?: string };
}

export interface CallResult<T> {
  readonly status: number;
  readonly body: T | undefined;
}

const RETRY_STATUSES = new Set([502, 503, 504]);

export class ServiceClient {
  readonly service: ServiceName;
  readonly baseUrl: string;
  readonly #options: ServiceClientOptions;
  readonly #retry: RetryPolicy;

  constructor(options: ServiceClientOptions) {
    this.#options = options;
    this.service = options.service;
    this.baseUrl = normalizeBaseUrl(options.baseUrl);
    this.#retry = options.retry ?? defaultRetryPolicy;
  }

  async call<T>(options: CallOptions): Promise<CallResult<T>> {
    const tracing = this.#options.tracing;
    if (!tracing) return this.#call<T>(options, traceHeaders(options.runContext));
    const attributes = {
      [ATTR.service]: this.service,
      [ATTR.operation]: options.operation,
      ...(options.subject?.runId ? { [ATTR.runId]: options.subject.runId } : {}),
      ...(options.subject?.nodeRunId ? { [ATTR.nodeRunId]: options.subject.nodeRunId } : {}),
    };
    return tracing.inSpan(
      `${this.service} ${options.operation}`,
      attributes,
      async (span) => {
        const { traceId, spanId, traceFlags } = span.spanContext();
        const headers = traceHeaders(options.runContext, {
          traceId,
          spanId,
          sampled: (traceFlags & 1) === 1,
        });
        const result = await this.#call<T>(options, headers);
        span.setAttribute(ATTR.status, result.status);
        return result;
      },
      { kind: SpanKind.CLIENT, runContext: options.runContext },
    );
  }

  async #call<T>(options: CallOptions, headers: Record<string, string> | undefined): Promise<CallResult<T>> {
    if (options.requestSchema && options.body !== undefined) {
      const errors = this.#options.validators.validate(options.requestSchema, options.body);
      if (errors.length > 0) {
        throw this.#fail('invalid_request', `the request to the ${this.#title} does not match the contract`, {
          errors,
        });
      }
    }
    const attempts = options.safeToRetry ? this.#retry.retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#observed<T>(options, attempt, headers);
      } catch (error) {
        const retryable =
          error instanceof ServiceError &&
          (error.kind === 'unavailable' || (error.kind === 'error' && RETRY_STATUSES.has(error.status ?? 0)));
        if (!retryable || attempt >= attempts || options.signal?.aborted) throw error;
        await sleep(this.#retry.backoff(attempt), options.signal);
      }
    }
  }

  get #title(): string {
    return SERVICE_TITLES[this.service];
  }

  #fail(kind: FailureKind, message: string, details: Record<string, unknown> = {}, status?: number) {
    return new ServiceError(this.service, kind, message, details, status);
  }

  /** One attempt, reported to `onCall` when it ends. */
  async #observed<T>(
    options: CallOptions,
    attempt: number,
    headers: Record<string, string> | undefined,
  ): Promise<CallResult<T>> {
    const onCall = this.#options.onCall;
    if (!onCall) return this.#once<T>(options, headers);
    const started = performance.now();
    const report = (outcome: CallRecord['outcome'], status: number | undefined, code: string | undefined) => {
      try {
        onCall({
          service: this.service,
          operation: options.operation,
          outcome,
          status,
          durationMs: performance.now() - started,
          attempt,
          code,
        });
      } catch {
        // An observer's failure never changes the call's outcome.
      }
    };
    try {
      const result = await this.#once<T>(options, headers);
      report('ok', result.status, undefined);
      return result;
    } catch (error) {
      if (error instanceof ServiceError) report(error.kind, error.status, error.code);
      else report('aborted', undefined, undefined);
      throw error;
    }
  }

  async #once<T>(
    options: CallOptions,
    callHeaders: Record<string, string> | undefined,
  ): Promise<CallResult<T>> {
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    const deadline = new CallDeadline(timeoutMs, options.signal);
    try {
      return await this.#attempt<T>(options, callHeaders, deadline, timeoutMs);
    } finally {
      deadline.done();
    }
  }

  async #attempt<T>(
    options: CallOptions,
    callHeaders: Record<string, string> | undefined,
    deadline: CallDeadline,
    timeoutMs: number,
  ): Promise<CallResult<T>> {
    const { signal } = deadline;
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...(this.#options.userAgent ? { 'user-agent': this.#options.userAgent } : {}),
      ...callHeaders,
      ...(await this.#options.headers?.()),
    };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let response: Dispatcher.ResponseData;
    try {
      response = await request(`${this.baseUrl}${options.path}`, {
        method: options.method,
        headers,
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal,
        ...(this.#options.dispatcher ? { dispatcher: this.#options.dispatcher } : {}),
      });
    } catch (error) {
      if (deadline.timedOut && !options.signal?.aborted) {
        throw this.#fail('timeout', `the ${this.#title} did not answer within ${timeoutMs} ms`, {
          timeout_ms: timeoutMs,
        });
      }
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      throw this.#fail('unavailable', `the ${this.#title} could not be reached`, {
        cause: transportCause(error),
      });
    }
    let bytes: Buffer;
    try {
      bytes = await readLimited(response.body, this.#options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES);
    } catch (error) {
      if (error instanceof ResponseTooLarge) {
        throw this.#fail(
          'invalid_response',
          `the ${this.#title} answered with more than ${error.limit} bytes`,
          {
            limit_bytes: error.limit,
          },
        );
      }
      if (deadline.timedOut) {
        throw this.#fail('timeout', `the ${this.#title} did not answer within ${timeoutMs} ms`, {
          timeout_ms: timeoutMs,
        });
      }
      throw this.#fail('unavailable', `the ${this.#title} broke off its answer`, {
        cause: transportCause(error),
      });
    }
    const status = response.statusCode;
    if (status >= 200 && status < 300) return { status, body: this.#parse<T>(bytes, options.responseSchema) };
    if (options.acceptStatuses?.includes(status)) return { status, body: undefined };
    const details = downstreamError(bytes.toString('utf8'), status);
    throw this.#fail('error', `the ${this.#title} answered ${status}`, details, status);
  }

  #parse<T>(bytes: Buffer, schema: string | undefined): T | undefined {
    if (schema === undefined) return undefined;
    const text = this.#jsonText(bytes);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw this.#fail('invalid_response', `the ${this.#title} answered with a body that is not JSON`);
    }
    // Be strict in what we send and tolerant in what we accept: the reference services send
    // `null` for absent fields and un-namespaced extension keys, which carry no meaning here.
    body = this.#options.validators.tolerate(schema, body);
    const errors = this.#options.validators.validate(schema, body);
    if (errors.length > 0) {
      throw this.#fail('invalid_response', `the ${this.#title} answered with an invalid ${schema}`, {
        errors: errors.slice(0, 10),
      });
    }
    return body as T;
  }

  /**
   * The answer as text, held to the rules inbound bodies follow (contract/json-limits.ts): what is
   * stored from a peer must be served back unchanged, so an answer that is not UTF-8, nests too
   * deep or overflows a number is invalid rather than repaired.
   */
  #jsonText(bytes: Buffer): string {
    if (!isUtf8(bytes)) {
      throw this.#fail('invalid_response', `the ${this.#title} answered with a body that is not UTF-8`);
    }
    const text = bytes.toString('utf8');
    const problem = jsonTextProblem(text);
    if (problem?.kind === 'too_deep') {
      throw this.#fail(
        'invalid_response',
        `the ${this.#title} answered with JSON nested deeper than ${problem.maxDepth} levels`,
        { max_depth: problem.maxDepth },
      );
    }
    if (problem?.kind === 'unpaired_surrogate') {
      throw this.#fail(
        'invalid_response',
        `the ${this.#title} answered with a string that is not Unicode text`,
        {
          character: 'unpaired surrogate',
        },
      );
    }
    if (problem?.kind === 'nul_character') {
      throw this.#fail('invalid_response', `the ${this.#title} answered with a string containing U+0000`, {
        character: 'U+0000',
      });
    }
    if (problem?.kind === 'out_of_range') {
      throw this.#fail('invalid_response', `the ${this.#title} answered with a number out of range`, {
        number: problem.number,
      });
    }
    return text;
  }
}

const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

class ResponseTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`response larger than ${limit} bytes`);
  }
}

/** Reads a body, refusing to buffer more than `limit` bytes of it. */
async function readLimited(body: Dispatcher.ResponseData['body'], limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new ResponseTooLarge(limit);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The peer's ErrorEnvelope code and message when it sent one (never its URL). */
function downstreamError(text: string, status: number): Record<string, unknown> {
  const details: Record<string, unknown> = { status };
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === 'string') details.downstream_code = parsed.error.code;
    if (typeof parsed.error?.message === 'string')
      details.downstream_message = parsed.error.message.slice(0, 500);
  } catch {}
  return details;
}

/** A transport error's code (ECONNREFUSED, UND_ERR_SOCKET, ...) without addresses. */
function transportCause(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'transport_error';
}

/**
 * One call's abort signal: aborted when its time is up or when the caller's signal is. One
 * controller and one timer, both released when the call ends (`AbortSignal.timeout` and
 * `AbortSignal.any` cost a signal, a timer and a finalizer each, on every call).
 */
class CallDeadline {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  readonly #outer: AbortSignal | undefined;
  readonly #onOuterAbort = () => this.#controller.abort(this.#outer?.reason);
  #timedOut = false;

  constructor(timeoutMs: number, outer: AbortSignal | undefined) {
    this.#outer = outer;
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#controller.abort();
    }, timeoutMs);
    this.#timer.unref();
    if (outer?.aborted) this.#onOuterAbort();
    else outer?.addEventListener('abort', this.#onOuterAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True when the call was aborted because its time was up. */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  done(): void {
    clearTimeout(this.#timer);
    this.#outer?.removeEventListener('abort', this.#onOuterAbort);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
