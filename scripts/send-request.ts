/**
 * Sends a sample request to a running coordinator: starts a Run from `run` in the request file,
 * creates the file's `node_runs` under its root NodeRun, and prints every NodeRun read back.
 *
 *   npm run send-request -- [--host 127.0.0.1] [--port 8081] [--request scripts/request.json]
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8081' },
    request: { type: 'string', default: new URL('./request.json', import.meta.url).pathname },
  },
});
const base = `http://${values.host}:${values.port}`;

async function call(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const file = JSON.parse(await readFile(values.request, 'utf8')) as { run: unknown; node_runs: unknown[] };
const run = (await call('POST', '/v1/runs', file.run)) as { run_id: string; root_node_run_id: string };
console.log('Run:', JSON.stringify(run, null, 2));
const created = (await call('POST', '/v1/node-runs', {
  run_id: run.run_id,
  parent_node_run_id: run.root_node_run_id,
  node_runs: file.node_runs,
})) as { node_runs: { node_run_id: string }[] };
for (const { node_run_id } of created.node_runs) {
  console.log('NodeRun:', JSON.stringify(await call('GET', `/v1/node-runs/${node_run_id}`), null, 2));
}
