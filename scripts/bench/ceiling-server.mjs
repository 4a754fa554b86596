// The ceilings: bare Fastify apps (the project's Fastify, logger off, no hooks) that answer one route
// with exactly the bytes and content-type the service answered, doing only what no implementation
// of that route can skip:
//   get     GET /v1/node-runs/:id: the answer.
//   post    POST <path>: the service's own body parser (dist/http/json-body.js) and Ajv validation
//           of the contract's request schema, with the service's Ajv options and body limit; then
//           the answer.
//   stream  GET /v1/runs/:id/events: the answer (an NDJSON snapshot) as one reply.
// Usage: node ceiling-server.mjs --port P --mode get|post|stream --content-type T --body-file F
//        [--status S] [--path /v1/node-runs --schema NodeRunsCreateRequest] (the contract's path)
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { loadContract, schemaId } from '../../dist/contract/contract.js';
import { installJsonBodyParser } from '../../dist/http/json-body.js';
import { toFastifyPath } from '../../dist/http/route-match.js';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || process.argv[i + 1] === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing --${name}`);
  }
  return process.argv[i + 1];
}

const port = Number(arg('port'));
const mode = arg('mode', 'get');
const contentType = arg('content-type', '');
const status = Number(arg('status', '200'));
const body = status === 204 ? undefined : readFileSync(arg('body-file'), 'utf8');

const app = Fastify({
  logger: false,
  // As the service configures them (src/app.ts, src/config.ts defaults).
  bodyLimit: 1024 * 1024,
  ajv: {
    customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true },
  },
});
const answer = (_request, reply) => {
  if (body === undefined) return reply.code(status).send();
  return reply.code(status).header('content-type', contentType).send(body);
};

if (mode === 'get') app.get('/v1/node-runs/:id', answer);
else if (mode === 'stream') app.get('/v1/runs/:id/events', answer);
else if (mode === 'post') {
  installJsonBodyParser(app);
  for (const schema of loadContract().schemas) app.addSchema(schema);
  app.post(toFastifyPath(arg('path')), { schema: { body: { $ref: `${schemaId(arg('schema'))}#` } } }, answer);
} else throw new Error(`unknown --mode ${mode}`);
app.get('/v1/health', (_request, reply) => {
  reply.send({ status: 'ok' });
});

const shutdown = () => app.close().then(() => process.exit(0));
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

await app.listen({ host: '127.0.0.1', port });
