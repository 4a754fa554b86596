// The ceiling: a bare Fastify app (the project's Fastify, logger off, no hooks, no validation) that
// answers GET /v1/node-runs/:id with exactly the bytes and content-type of a real NodeRun response.
// Usage: node ceiling-server.mjs --port P --content-type T --body-base64 B
import Fastify from 'fastify';

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || process.argv[i + 1] === undefined) throw new Error(`missing --${name}`);
  return process.argv[i + 1];
}

const port = Number(arg('port'));
const contentType = arg('content-type');
const body = Buffer.from(arg('body-base64'), 'base64').toString('utf8');

const app = Fastify({ logger: false });
app.get('/v1/node-runs/:id', (_request, reply) => {
  reply.header('content-type', contentType).send(body);
});
app.get('/v1/health', (_request, reply) => {
  reply.send({ status: 'ok' });
});

const shutdown = () => app.close().then(() => process.exit(0));
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

await app.listen({ host: '127.0.0.1', port });
