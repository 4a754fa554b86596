/**
 * Concurrent requests on one Run over real sockets: decisions never interleave halfway, idempotency
 * is exactly-once, terminal is decided once, and event seqs stay gap-free.
 */
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ref, type TestApp, useApp } from '../helpers/app.js';

const newApp = useApp();
let pool: Pool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

async function serve(t: TestApp) {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as { port: number };
  pool = new Pool(`http://127.0.0.1:${port}`, { connections: 50, pipelining: 1 });
  const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await pool!.request({
      method,
      path,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    return { status: res.statusCode, text, json: () => JSON.parse(text) };
  };
  return call;
}

const times = <T>(n: number, make: (i: number) => Promise<T>) =>
  Promise.all(Array.from({ length: n }, (_, i) => make(i)));

describe('concurrency', () => {
  it('50 concurrent identical idempotent creates yield exactly one NodeRun', async () => {
    const t = await newApp();
    const call = await serve(t);
    const run = (
      await call('POST', '/v1/runs', { root_node_type_ref: ref('composite.r'), input: {} })
    ).json();
    const body = {
      run_id: run.run_id,
      parent_node_run_id: run.root_node_run_id,
      node_runs: [{ node_type_ref: ref('atomic.a'), inputs: { q: 1 }, idempotency_key: 'once' }],
    };
    const results = await times(50, () => call('POST', '/v1/node-runs', body));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    const ids = new Set(results.map((r) => r.json().node_runs[0].node_run_id));
    expect(ids.size).toBe(1);
    const events = (await call('GET', `/v1/runs/${run.run_id}/events`)).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'composite_decomposed')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'node_run_assigned')).toHaveLength(2);
  });

  it('20 racing different completions: exactly one 204, the rest 409, one outcome recorded', async () => {
    const t = await newApp();
    const call = await serve(t);
    const run = (
      await call('POST', '/v1/runs', { root_node_type_ref: ref('composite.r'), input: {} })
    ).json();
    const results = await times(20, (i) =>
      call('POST', `/v1/node-runs/${run.root_node_run_id}:complete`, {
        state: 'succeeded',
        outputs: { winner: i },
      }),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 204)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    const winner = results.findIndex((r) => r.status === 204);
    const root = (await call('GET', `/v1/node-runs/${run.root_node_run_id}`)).json();
    expect(root.outputs).toEqual({ winner });
    const events = (await call('GET', `/v1/runs/${run.run_id}/events`)).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'run_completed')).toHaveLength(1);
  });

  it('concurrent starts with one run_id: identical bodies share the Run, a different body gets 409', async () => {
    const t = await newApp();
    const call = await serve(t);
    const body = { run_id: 'shared', root_node_type_ref: ref('composite.r'), input: { v: 1 } };
    const results = await times(30, (i) =>
      call('POST', '/v1/runs', i === 29 ? { ...body, input: { v: 2 } } : body),
    );
    const ok = results.filter((r) => r.status === 200);
    const conflicts = results.filter((r) => r.status === 409);
    expect(ok.length + conflicts.length).toBe(30);
    expect(new Set(ok.map((r) => r.json().root_node_run_id)).size).toBe(1);
    const events = (await call('GET', '/v1/runs/shared/events')).text.trim().split('\n');
    expect(events).toHaveLength(2);
  });

  it('mixed concurrent writers keep seq 1..n with no gaps or duplicates, and cancel wins cleanly', async () => {
    const t = await newApp();
    const call = await serve(t);
    const run = (
      await call('POST', '/v1/runs', { root_node_type_ref: ref('composite.r'), input: {} })
    ).json();
    const children = (
      await call('POST', '/v1/node-runs', {
        run_id: run.run_id,
        parent_node_run_id: run.root_node_run_id,
        node_runs: Array.from({ length: 20 }, (_, i) => ({ node_type_ref: ref('atomic.a'), inputs: { i } })),
      })
    ).json().node_runs as { node_run_id: string }[];
    const writes = [
      ...children.map((c) =>
        call('POST', `/v1/node-runs/${c.node_run_id}:evaluation`, {
          evaluation_result: { status: 'success' },
        }),
      ),
      ...children.map((c) => call('POST', `/v1/node-runs/${c.node_run_id}:complete`, { state: 'succeeded' })),
      ...Array.from({ length: 10 }, (_, i) =>
        call('POST', '/v1/node-runs', {
          run_id: run.run_id,
          parent_node_run_id: run.root_node_run_id,
          node_runs: [{ node_type_ref: ref('atomic.b'), inputs: { i } }],
        }),
      ),
      call('POST', `/v1/runs/${run.run_id}:cancel`),
    ];
    const results = await Promise.all(writes);
    for (const r of results) expect([200, 204, 409]).toContain(r.status);
    const events = (await call('GET', `/v1/runs/${run.run_id}/events`)).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === 'run_completed')).toHaveLength(1);
    // The Run is frozen once terminal: only evaluations (accepted in any state) may follow.
    const after = events.slice(events.findIndex((e) => e.type === 'run_completed') + 1);
    expect(after.every((e) => e.type === 'node_evaluated')).toBe(true);
    const finalRun = (await call('GET', `/v1/runs/${run.run_id}`)).json();
    expect(finalRun.state).toBe('canceled');
    for (const child of children) {
      const node = (await call('GET', `/v1/node-runs/${child.node_run_id}`)).json();
      expect(['succeeded', 'canceled']).toContain(node.state);
    }
  });
});
