/**
 * What one connection may hold: a bounded time to receive a request, a bounded idle time between
 * kept-alive requests, a cap on concurrent connections; and the answers written straight to the
 * socket when a request never becomes a request (malformed, too slow), as ErrorEnvelopes.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import type { ErrorCode } from '../errors.js';
import { envelope } from './envelope.js';

export interface ConnectionLimits {
  /** Time to receive a whole request (headers and body); slower requests get 408. */
  readonly requestTimeoutMs: number;
  /** Idle time after which a kept-alive connection is closed. */
  readonly keepAliveTimeoutMs: number;
  /** Concurrent connections; further ones are closed as soon as they are accepted. */
  readonly maxConnections: number;
}

/**
 * Fastify options that enforce the limits. Node checks for requests past their deadline on an
 * interval (30 s unless told otherwise); checking every tenth of the timeout cuts a slow request at
 * most 10% late. The request timeout ends once a request has arrived, so long-lived responses
 * (follow streams) are not affected by it.
 */
export function connectionOptions(limits: ConnectionLimits): Partial<FastifyServerOptions> & {
  http: { requestTimeout: number; headersTimeout: number; connectionsCheckingInterval: number };
} {
  const requestTimeout = limits.requestTimeoutMs;
  return {
    requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      requestTimeout,
      headersTimeout: requestTimeout,
      connectionsCheckingInterval: Math.min(30_000, Math.max(5, Math.ceil(requestTimeout / 10))),
    },
  };
}

/** Sockets whose current request was answered before its body arrived; Node drains that body. */
const answeredEarly = new WeakSet<Socket>();

/**
 * Called for every error answer. Fastify closes the connection after a body it could not take
 * (e.g. over the size limit), and closing with unread bytes makes the kernel send a reset, which
 * destroys our answer at a client still uploading. Kept open, Node reads and discards the rest of
 * the body (no longer than the request timeout allows) and the client reads the answer.
 */
export function keepConnectionForAnswer(request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw;
  if (raw.complete || raw.destroyed) return;
  reply.removeHeader('connection');
  const socket = raw.socket;
  const server = request.server.server;
  answeredEarly.add(socket);
  raw.once('end', () => {
    answeredEarly.delete(socket);
    // A server that stopped listening meanwhile waits for this connection, now idle: end it.
    if (!server.listening) socket.end();
  });
}

/** A request that never reached the router (malformed, or not received in time) still gets an envelope. */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  // Nothing more can be written after a reset, after the answer to this request, or in the middle
  // of a response already under way (an event stream).
  if (error.code === 'ECONNRESET' || !socket.writable || answeredEarly.has(socket) || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, code, message] = describe(error);
  const body = JSON.stringify(envelope(code, message));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}

function describe(error: NodeJS.ErrnoException): [number, ErrorCode, string] {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'request_timeout', 'The request was not received in time'];
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'invalid_request', 'Request headers are too large'];
    default:
      return [400, 'invalid_request', 'Malformed HTTP request'];
  }
}
