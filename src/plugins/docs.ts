/**
 * The contract document at `/openapi.json`, the listing API's at `/rc/openapi.json`, and the API
 * explorer at `/docs`.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Contract } from '../contract/contract.js';

export const LISTING_DOCUMENT_PATH = '/rc/openapi.json';

export interface DocsOptions {
  readonly contract: Contract;
  readonly listing: Contract;
}

async function docs(app: FastifyInstance, { contract, listing }: DocsOptions) {
  await app.register(swagger, { mode: 'static', specification: { document: contract.document as never } });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  for (const [path, document] of [
    ['/openapi.json', contract.document],
    [LISTING_DOCUMENT_PATH, listing.document],
  ] as const) {
    const json = JSON.stringify(document);
    app.get(path, { schema: { hide: true } }, async (_request, reply) =>
      reply.type('application/json; charset=utf-8').send(json),
    );
  }
}

export default fp(docs, { name: 'arp-rc-docs' });
