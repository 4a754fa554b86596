/** One info line per request (RC_LOG_REQUESTS): off by default, it costs throughput. */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';

async function requestLog(app: FastifyInstance, { logger }: { readonly logger: Logger }) {
  app.addHook('onResponse', async (request, reply) => {
    logger.info(
      {
        reqId: request.id,
        sub: request.principal?.sub,
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: reply.elapsedTime,
      },
      'request',
    );
  });
}

export default fp(requestLog, { name: 'arp-rc-request-log' });
