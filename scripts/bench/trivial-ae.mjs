// A trivial Atomic Executor for the lifecycle scenario, started by scripts/bench.mjs (pinned to core 1
// with the load generator). Bare node:http, no framework, no validation beyond reading node_run_id:
// every `POST /v1/atomic-node-runs:execute` is answered at once with
// `{node_run_id, state: 'succeeded', outputs: {ok: true}}`.
//
// For each execute it records its own handling time, from the `request` event (headers parsed) to
// `res.end()` (response handed to the socket), keyed by node_run_id. The load generator subtracts
// it from each NodeRun's end-to-end time. Several coordinator instances can share it, each with its
// own path prefix in RC_ATOMIC_EXECUTOR_URL (`/i1/v1/atomic-node-runs:execute`, …); executes are
// counted per prefix ('' for none). Bench-only endpoints (never called by the coordinator):
//   GET  /_bench/timings  -> {executes, executesBy: {prefix: n}, badRequests, unexpected, duplicates,
//                             timingsMs: {id: ms}}
//   POST /_bench/reset    -> clears the counters and timings (after the warm-up)
//   GET  /v1/health       -> 200, for the readiness check
// Usage: node trivial-ae.mjs --port P
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || process.argv[i + 1] === undefined) throw new Error(`missing --${name}`);
  return process.argv[i + 1];
}

const port = Number(arg('port'));
/** An execute, optionally under one path segment naming the instance that sent it. */
const EXECUTE_PATH = /^(\/[A-Za-z0-9_-]+)?\/v1\/atomic-node-runs:execute$/;

let timings = new Map();
const freshCounts = () => ({ executes: 0, executesBy: {}, badRequests: 0, unexpected: 0, duplicates: 0 });
let counts = freshCounts();

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function execute(req, res, t0, prefix) {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let id;
    try {
      id = JSON.parse(Buffer.concat(chunks).toString('utf8')).node_run_id;
    } catch {
      // not JSON: answered below
    }
    if (typeof id !== 'string') {
      counts.badRequests += 1;
      sendJson(res, 400, { error: { code: 'invalid_request', message: 'node_run_id is missing' } });
      return;
    }
    sendJson(res, 200, { node_run_id: id, state: 'succeeded', outputs: { ok: true } });
    const ms = performance.now() - t0;
    counts.executes += 1;
    counts.executesBy[prefix] = (counts.executesBy[prefix] ?? 0) + 1;
    if (timings.has(id)) counts.duplicates += 1;
    timings.set(id, ms);
  });
}

const server = createServer((req, res) => {
  const t0 = performance.now();
  const executePath = req.method === 'POST' ? EXECUTE_PATH.exec(req.url) : null;
  if (executePath) return execute(req, res, t0, executePath[1] ?? '');
  req.resume();
  if (req.method === 'GET' && req.url === '/v1/health') return sendJson(res, 200, { status: 'ok' });
  if (req.method === 'GET' && req.url === '/_bench/timings') {
    return sendJson(res, 200, { ...counts, timingsMs: Object.fromEntries(timings) });
  }
  if (req.method === 'POST' && req.url === '/_bench/reset') {
    timings = new Map();
    counts = freshCounts();
    res.writeHead(204).end();
    return;
  }
  counts.unexpected += 1;
  sendJson(res, 404, { error: { code: 'not_found', message: `${req.method} ${req.url}` } });
});
// Like Fastify's default: keep the coordinator's pooled connections open between executes.
server.keepAliveTimeout = 72_000;

const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

server.listen(port, '127.0.0.1');
