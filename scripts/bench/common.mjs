// Shared by scripts/bench.mjs and its helpers: request fixtures, a small latency histogram and a
// tiny HTTP helper for setup traffic. Nothing here is measured.
import { Pool } from 'undici';

export const ROOT_TYPE = { node_type_id: 'composite.x', version: '1' };
export const CHILD_TYPE = { node_type_id: 'atomic.x', version: '1' };

/** The "realistic" NodeRun inputs: a few fields, strings unique per NodeRun like real traffic. */
export function realisticInputs(i) {
  return {
    task: `Summarise section ${i} of the quarterly report for the finance team`,
    document: { uri: `artifact://reports/2026-q3/section-${i}.md`, media_type: 'text/markdown' },
    max_tokens: 512,
    temperature: 0.2,
    tags: ['finance', 'summary'],
  };
}

export function startRunBody(input = {}) {
  return JSON.stringify({ root_node_type_ref: ROOT_TYPE, input });
}

/** A create_node_runs body with `count` specs; `inputs(i)` gives each spec's inputs. */
export function createBody(runId, parentId, count, inputs = realisticInputs, offset = 0) {
  const node_runs = [];
  for (let i = 0; i < count; i++) node_runs.push({ node_type_ref: CHILD_TYPE, inputs: inputs(offset + i) });
  return JSON.stringify({ run_id: runId, parent_node_run_id: parentId, node_runs });
}

export const COMPLETE_BODY = JSON.stringify({
  state: 'succeeded',
  outputs: { summary: 'Revenue grew 4% quarter on quarter; costs were flat.', tokens_used: 187 },
});
export const COMPLETE_ROOT_BODY = JSON.stringify({ state: 'succeeded', outputs: { done: true } });

export const JSON_HEADERS = { 'content-type': 'application/json' };

/** Setup-traffic client: JSON in, JSON out, throws on an unexpected status. */
export class SetupClient {
  constructor(origin, connections = 4) {
    this.pool = new Pool(origin, { connections, pipelining: 1 });
  }

  async call(method, path, body, expect = 200) {
    const res = await this.pool.request({
      method,
      path,
      headers: body === undefined ? {} : JSON_HEADERS,
      body,
    });
    const text = await res.body.text();
    if (res.statusCode !== expect) {
      throw new Error(`${method} ${path} -> ${res.statusCode} (expected ${expect}): ${text.slice(0, 500)}`);
    }
    return text === '' ? undefined : JSON.parse(text);
  }

  startRun(input) {
    return this.call('POST', '/v1/runs', startRunBody(input));
  }

  async createNodeRuns(run, count, inputs, offset) {
    const body = createBody(run.run_id, run.root_node_run_id, count, inputs, offset);
    return (await this.call('POST', '/v1/node-runs', body)).node_runs;
  }

  close() {
    return this.pool.close();
  }
}

/** Runs `task(i)` for i in [0, count) with at most `limit` in flight. */
export async function parallel(count, limit, task) {
  const results = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
  return results;
}

/** Latency histogram with 10 µs buckets up to 10 s (anything slower lands in the last bucket). */
export class Histogram {
  static RESOLUTION_MS = 0.01;
  static BUCKETS = 1_000_000;

  constructor() {
    this.counts = new Uint32Array(Histogram.BUCKETS);
    this.count = 0;
    this.sum = 0;
    this.max = 0;
  }

  record(ms) {
    const bucket = Math.min(Histogram.BUCKETS - 1, Math.floor(ms / Histogram.RESOLUTION_MS));
    this.counts[bucket] += 1;
    this.count += 1;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  percentile(p) {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return (i + 1) * Histogram.RESOLUTION_MS; // upper edge of the bucket
    }
    return this.max;
  }

  summary() {
    const round = (ms) => Math.round(ms * 100) / 100;
    return {
      samples: this.count,
      mean: round(this.sum / Math.max(1, this.count)),
      p50: round(this.percentile(50)),
      p90: round(this.percentile(90)),
      p99: round(this.percentile(99)),
      p999: round(this.percentile(99.9)),
      max: round(this.max),
    };
  }
}
