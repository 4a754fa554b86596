/**
 * Every error the service answers with is an ErrorEnvelope. This maps our typed errors, Fastify's
 * own errors (validation, body parsing, size, media type) and unknown failures onto it; 5xx bodies
 * never carry internal detail.
 */
import type { FastifyError } from 'fastify';
import { formatErrors } from '../contract/validators.js';
import { ArpError, type ErrorCode } from '../errors.js';
import type { ErrorEnvelope } from '../gen/contract.js';

export interface WireError {
  readonly status: number;
  readonly body: ErrorEnvelope;
  readonly headers?: Record<string, string>;
}

export function envelope(
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
  retryable?: boolean,
): ErrorEnvelope {
  const error: ErrorEnvelope['error'] = { code, message };
  if (details !== undefined) error.details = details;
  if (retryable !== undefined) error.retryable = retryable;
  return { error };
}

const FASTIFY_CODES: Record<string, [ErrorCode, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 'Content-Type must be application/json'],
  FST_ERR_CTP_BODY_TOO_LARGE: ['payload_too_large', 'Request body is too large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['invalid_request', 'Request body is empty'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['invalid_request', 'Content-Length does not match the body'],
  FST_ERR_CTP_INVALID_JSON_BODY: ['invalid_request', 'Request body is not valid JSON'],
  FST_ERR_BAD_URL: ['invalid_request', 'The URL path is not validly percent-encoded UTF-8'],
  FST_ERR_MAX_PARAM_LENGTH: ['uri_too_long', 'A URL path segment is longer than any id the service accepts'],
};

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  408: 'request_timeout',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  503: 'service_unavailable',
};

/** Turns anything thrown while handling a request into the status, envelope and headers to send. */
export function toWireError(error: unknown): WireError {
  if (error instanceof ArpError) {
    return {
      status: error.status,
      body: envelope(error.code, error.message, error.details, error.retryable),
      headers: error.headers,
    };
  }
  const fastifyError = error as Partial<FastifyError> & { validationContext?: string };
  if (fastifyError.validation) {
    const errors = formatErrors(fastifyError.validation as never, fastifyError.validationContext ?? '');
    return { status: 400, body: envelope('invalid_request', 'Request validation failed', { errors }) };
  }
  const known = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  const status = fastifyError.statusCode ?? 500;
  if (known) return { status, body: envelope(known[0], known[1]) };
  if (error instanceof SyntaxError || (status === 400 && fastifyError.code === undefined)) {
    return { status: 400, body: envelope('invalid_request', 'Request body is not valid JSON') };
  }
  if (status >= 400 && status < 500) {
    const code = CODE_BY_STATUS[status] ?? 'invalid_request';
    return { status, body: envelope(code, fastifyError.message ?? 'Bad request') };
  }
  if (status === 503) {
    return { status, body: envelope('service_unavailable', 'Service unavailable', undefined, true) };
  }
  return { status: 500, body: envelope('internal_error', 'Internal server error') };
}
