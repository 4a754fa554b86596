/** The contract document at `/openapi.json`, and the API explorer at `/docs`. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Contract } from '../contract/contract.js';

async function docs(app: FastifyInstance, { contract }: { readonly contract: Contract }) {
  await app.register(swagger, { mode: 'static', specification: { document: contract.document as never } });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const documentJson = JSON.stringify(contract.document);
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('application/json; charset=utf-8').send(documentJson),
  );
}

export default fp(docs, { name: 'arp-rc-docs' });
