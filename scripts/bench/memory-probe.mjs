// Memory held per NodeRun. Run with --expose-gc:
//   node --expose-gc scripts/bench/memory-probe.mjs --variant minimal|realistic [--count 100000] [--batch 1000]
// Builds the app from dist/app.js with its default memory store, starts one Run (root composite.x)
// and creates `count` child NodeRuns under the root through app.inject (the real route: JSON parse,
// validation, coordinator, store), in batches. Heap and RSS are read after forced GCs before and
// after the children are created. Prints one JSON object on stdout.
import { buildApp } from '../../dist/app.js';
import { createBody, JSON_HEADERS, realisticInputs, startRunBody } from './common.mjs';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}

const variant = arg('variant', 'minimal');
const count = Number(arg('count', '100000'));
const batch = Number(arg('batch', '1000'));
const inputsOf = { minimal: () => ({}), realistic: realisticInputs }[variant];
if (!inputsOf) throw new Error(`unknown --variant ${variant}`);
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

async function settle() {
  for (let i = 0; i < 6; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const app = await buildApp({ logger: false });
await app.ready();

async function post(url, payload) {
  const res = await app.inject({ method: 'POST', url, payload, headers: JSON_HEADERS });
  if (res.statusCode !== 200) throw new Error(`POST ${url} -> ${res.statusCode}: ${res.body.slice(0, 500)}`);
  return res.json();
}

// Warm every code path on a throwaway Run first, so compiled code and lazily built caches are in
// the baseline rather than in the delta.
const warmRun = await post('/v1/runs', startRunBody());
await post('/v1/node-runs', createBody(warmRun.run_id, warmRun.root_node_run_id, batch, inputsOf, 0));

const run = await post('/v1/runs', startRunBody());
await settle();
const before = process.memoryUsage();
const t0 = performance.now();
let sampleId;
for (let done = 0; done < count; done += batch) {
  const size = Math.min(batch, count - done);
  const body = createBody(run.run_id, run.root_node_run_id, size, inputsOf, done);
  const { node_runs: created } = await post('/v1/node-runs', body);
  sampleId ??= created[0].node_run_id;
}
const createSeconds = (performance.now() - t0) / 1000;
await settle();
const after = process.memoryUsage();

const sample = await app.inject({ method: 'GET', url: `/v1/node-runs/${sampleId}` });
const held = app.coordinator.store.stats?.().nodeRuns;
await app.close();

const delta = (key) => after[key] - before[key];
process.stdout.write(
  `${JSON.stringify({
    variant,
    count,
    batch,
    nodeRunsHeldByStore: held,
    heapUsedBefore: before.heapUsed,
    heapUsedAfter: after.heapUsed,
    heapUsedDelta: delta('heapUsed'),
    heapBytesPerNodeRun: Math.round(delta('heapUsed') / count),
    rssDelta: delta('rss'),
    rssBytesPerNodeRun: Math.round(delta('rss') / count),
    externalDelta: delta('external'),
    sampleNodeRunWireBytes: Buffer.byteLength(sample.body),
    sampleNodeRun: JSON.parse(sample.body),
    inProcessCreateNodeRunsPerSecond: Math.round(count / createSeconds),
  })}\n`,
);
