/**
 * Every error is an ErrorEnvelope: one handler turns what a route, a hook or the validator threw
 * into its status and envelope, logs 5xx at error (never sending their details), and keeps the
 * connection for the answer.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';
import { keepConnectionForAnswer } from '../http/connections.js';
import { toWireError } from '../http/envelope.js';

export interface ErrorsOptions {
  readonly logger: Logger | undefined;
}

async function errors(app: FastifyInstance, { logger }: ErrorsOptions) {
  app.setErrorHandler((error, request, reply) => {
    const wire = toWireError(error);
    if (wire.status >= 500) logger?.error({ reqId: request.id, err: error }, 'request failed');
    else logger?.debug({ reqId: request.id, err: error, code: wire.body.error.code }, 'request rejected');
    keepConnectionForAnswer(request, reply);
    reply
      .code(wire.status)
      .headers(wire.headers ?? {})
      .send(wire.body);
  });
}

export default fp(errors, { name: 'arp-rc-errors' });
