/** The Run/NodeRun lifecycle through the real app over HTTP (inject), every response contract-checked. */
import { describe, expect, it } from 'vitest';
import { createChildren, ref, startRun, type TestApp, useApp } from '../helpers/app.js';

const newApp = useApp();

async function events(t: TestApp, runId: string) {
  const res = await t.request({ method: 'GET', url: `/v1/runs/${runId}/events` });
  expect(res.statusCode).toBe(200);
  return res.body
    .split('\n')
    .filter(Boolean)
    .map(
      (line) =>
        JSON.parse(line) as {
          seq: number;
          type: string;
          node_run_id?: string;
          data?: Record<string, unknown>;
        },
    );
}

const get = async (t: TestApp, url: string) => {
  const res = await t.request({ method: 'GET', url });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
};

const post = (t: TestApp, url: string, payload?: unknown) =>
  t.request({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }) });

describe('health and version', () => {
  it('report status and the v1 API', async () => {
    const t = await newApp();
    expect(await get(t, '/v1/health')).toEqual({
      status: 'ok',
      time: '2026-01-01T00:00:00.000Z',
      checks: [{ name: 'store', status: 'ok', details: expect.any(Object) }],
    });
    const version = await get(t, '/v1/version');
    expect(version.service_name).toBe('arp-run-coordinator');
    expect(version.supported_api_versions).toEqual(['v1']);
  });
});

describe('start_run', () => {
  it('creates a running Run with a queued root NodeRun and omits absent fields', async () => {
    const t = await newApp();
    const res = await post(t, '/v1/runs', {
      root_node_type_ref: ref('composite.plan'),
      input: { goal: 'write a poem' },
      run_context: { tenant_id: 't1' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      run_id: 'run_1',
      state: 'running',
      root_node_run_id: 'node_run_1',
      run_context: { tenant_id: 't1' },
      started_at: '2026-01-01T00:00:00.000Z',
    });
    expect(res.body).not.toContain('null');
    expect(await get(t, '/v1/node-runs/node_run_1')).toEqual({
      node_run_id: 'node_run_1',
      run_id: 'run_1',
      node_type_ref: ref('composite.plan'),
      kind: 'composite',
      state: 'queued',
      created_at: '2026-01-01T00:00:00.000Z',
      inputs: { goal: 'write a poem' },
    });
    expect((await events(t, 'run_1')).map((e) => e.type)).toEqual(['run_started', 'node_run_assigned']);
  });

  it('is idempotent for an identical retry with the same run_id and 409 for a different body', async () => {
    const t = await newApp();
    const body = { run_id: 'my-run', root_node_type_ref: ref('composite.plan'), input: { a: 1 } };
    const first = await post(t, '/v1/runs', body);
    const again = await post(t, '/v1/runs', { ...body, input: { a: 1 } });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());
    const different = await post(t, '/v1/runs', { ...body, input: { a: 2 } });
    expect(different.statusCode).toBe(409);
    expect(different.json().error.code).toBe('run_already_exists');
    expect(await events(t, 'my-run')).toHaveLength(2);
  });

  it('starts a new Run for each repeat of a start without run_id; naming the generated id is a conflict', async () => {
    const t = await newApp();
    const body = { root_node_type_ref: ref('composite.plan'), input: { a: 1 } };
    const first = (await post(t, '/v1/runs', body)).json();
    const second = (await post(t, '/v1/runs', body)).json();
    expect(second.run_id).not.toBe(first.run_id);
    // The generated id with the same body is not a retry of the start that had no id.
    const named = await post(t, '/v1/runs', { ...body, run_id: first.run_id });
    expect(named.statusCode).toBe(409);
    expect(named.json().error.code).toBe('run_already_exists');
    expect(await events(t, first.run_id)).toHaveLength(2);
  });

  it.each([['a/b'], ['a:b'], ['a b'], ['tab\there'], ['x'.repeat(257)]])(
    'rejects the client run_id %j with 400',
    async (runId) => {
      const t = await newApp();
      const res = await post(t, '/v1/runs', { run_id: runId, root_node_type_ref: ref('x'), input: {} });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('invalid_request');
    },
  );

  it('stores metadata and the constraints in namespaced extensions', async () => {
    const t = await newApp();
    const run = await post(t, '/v1/runs', {
      root_node_type_ref: ref('composite.plan'),
      input: {},
      constraints: { structural: { max_depth: 2 }, extensions: { 'acme.x': 1 } },
      metadata: { labels: { team: 'a' } },
      extensions: { 'acme.trace': 'abc' },
    });
    expect(run.json().extensions).toEqual({
      'acme.trace': 'abc',
      'rc.constraints': { structural: { max_depth: 2 } },
      'rc.metadata': { labels: { team: 'a' } },
    });
  });
});

describe('create_node_runs', () => {
  it('creates queued children in request order with their events', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await createChildren(
      t,
      run.run_id,
      run.root_node_run_id,
      [
        { node_type_ref: ref('atomic.a'), inputs: { n: 1 } },
        {
          node_type_ref: ref('atomic.b'),
          inputs: { n: 2 },
          candidate_set_id: 'cs-1',
          binding_decision: { subtask_id: 'S1', chosen_node_type_ref: ref('atomic.b') },
        },
      ],
      { extensions: { 'acme.batch': 7 } },
    );
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.extensions).toEqual({ 'acme.batch': 7 });
    expect(
      body.node_runs.map((n: { node_type_ref: { node_type_id: string } }) => n.node_type_ref.node_type_id),
    ).toEqual(['atomic.a', 'atomic.b']);
    expect(body.node_runs[1]).toMatchObject({
      state: 'queued',
      kind: 'atomic',
      parent_node_run_id: run.root_node_run_id,
      extensions: {
        'rc.candidate_set_id': 'cs-1',
        'rc.binding_decision': { subtask_id: 'S1', chosen_node_type_ref: ref('atomic.b') },
      },
    });
    expect((await events(t, run.run_id)).map((e) => `${e.type}:${e.node_run_id ?? '-'}`)).toEqual([
      'run_started:-',
      `node_run_assigned:${run.root_node_run_id}`,
      `composite_decomposed:${run.root_node_run_id}`,
      'node_run_assigned:node_run_2',
      'node_run_assigned:node_run_3',
      'subtask_mapped:node_run_3',
      'candidate_set_generated:node_run_3',
    ]);
  });

  it('replays an idempotency key, conflicts on a different spec, and keeps request order', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const spec = { node_type_ref: ref('atomic.a'), inputs: { n: 1 }, idempotency_key: 'step-1' };
    const first = (await createChildren(t, run.run_id, run.root_node_run_id, [spec])).json().node_runs[0];
    const mixed = await createChildren(t, run.run_id, run.root_node_run_id, [
      { node_type_ref: ref('atomic.b'), inputs: {} },
      spec,
    ]);
    expect(mixed.statusCode).toBe(200);
    expect(mixed.json().node_runs[1]).toEqual(first);
    expect(mixed.json().node_runs[0].node_type_ref.node_type_id).toBe('atomic.b');
    const conflict = await createChildren(t, run.run_id, run.root_node_run_id, [
      { ...spec, inputs: { n: 2 } },
    ]);
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().error.code).toBe('idempotency_conflict');
    const evts = await events(t, run.run_id);
    expect(evts.filter((e) => e.type === 'composite_decomposed')).toHaveLength(2);
  });

  it('rejects a batch that breaks a structural limit without writing anything', async () => {
    const t = await newApp();
    const run = await startRun(t, { constraints: { structural: { max_children_per_composite: 2 } } });
    const before = await events(t, run.run_id);
    const res = await createChildren(t, run.run_id, run.root_node_run_id, [
      { node_type_ref: ref('atomic.a'), inputs: {} },
      { node_type_ref: ref('atomic.a'), inputs: {} },
      { node_type_ref: ref('atomic.a'), inputs: {} },
    ]);
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toMatchObject({
      code: 'constraint_violation',
      details: { constraint: 'structural.max_children_per_composite', limit: 2, attempted: 3 },
    });
    expect(await events(t, run.run_id)).toEqual(before);
    const missing = await t.request({ method: 'GET', url: '/v1/node-runs/node_run_2' });
    expect(missing.statusCode).toBe(404);
  });

  it('applies candidate deny lists to children but not to the root', async () => {
    const t = await newApp();
    const run = await startRun(t, {
      root_node_type_ref: ref('composite.banned'),
      constraints: { candidates: { denied_node_type_ids: ['composite.banned', 'atomic.rm'] } },
    });
    expect(run.state).toBe('running');
    const res = await createChildren(t, run.run_id, run.root_node_run_id, [
      { node_type_ref: ref('atomic.rm'), inputs: {} },
    ]);
    expect(res.statusCode).toBe(409);
    expect(res.json().error.details.constraint).toBe('candidates.denied_node_type_ids');
  });

  it.each([
    ['unknown run', { run_id: 'nope' }, 404, 'run_not_found'],
    ['unknown parent', { parent_node_run_id: 'nope' }, 404, 'parent_node_run_not_found'],
  ])('answers %s with %i', async (_name, override, status, code) => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await t.request({
      method: 'POST',
      url: '/v1/node-runs',
      payload: {
        run_id: run.run_id,
        parent_node_run_id: run.root_node_run_id,
        node_runs: [{ node_type_ref: ref('atomic.a'), inputs: {} }],
        ...override,
      },
    });
    expect(res.statusCode).toBe(status);
    expect(res.json().error.code).toBe(code);
  });

  it('rejects a parent from another run, an atomic parent, a finished parent and a finished run', async () => {
    const t = await newApp();
    const a = await startRun(t);
    const b = await startRun(t);
    const spec = [{ node_type_ref: ref('atomic.a'), inputs: {} }];
    const mismatch = await createChildren(t, a.run_id, b.root_node_run_id, spec);
    expect(mismatch.json().error.code).toBe('parent_node_run_mismatch');
    const atomic = (await createChildren(t, a.run_id, a.root_node_run_id, spec)).json().node_runs[0]
      .node_run_id;
    const invalid = await createChildren(t, a.run_id, atomic, spec);
    expect(invalid.json().error.code).toBe('parent_node_run_invalid');
    const composite = (
      await createChildren(t, a.run_id, a.root_node_run_id, [
        { node_type_ref: ref('composite.c'), inputs: {} },
      ])
    ).json().node_runs[0].node_run_id;
    await post(t, `/v1/node-runs/${composite}:complete`, { state: 'succeeded' });
    const terminal = await createChildren(t, a.run_id, composite, spec);
    expect(terminal.json().error.code).toBe('parent_node_run_terminal');
    await post(t, `/v1/runs/${a.run_id}:cancel`);
    const finished = await createChildren(t, a.run_id, a.root_node_run_id, spec);
    expect(finished.statusCode).toBe(409);
    expect(finished.json().error.code).toBe('run_already_terminal');
  });
});

describe(':evaluation and :complete', () => {
  it('appends recovery actions and accepts evaluations in any state', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const url = `/v1/node-runs/${run.root_node_run_id}:evaluation`;
    const first = await post(t, url, {
      evaluation_result: { status: 'fail' },
      recovery_action: { type: 'retry' },
    });
    expect(first.statusCode).toBe(204);
    expect(first.body).toBe('');
    await post(t, url, {
      evaluation_result: { status: 'success', confidence: 0.9 },
      recovery_action: { type: 'abort' },
    });
    const node = await get(t, `/v1/node-runs/${run.root_node_run_id}`);
    expect(node.evaluation_result).toEqual({ status: 'success', confidence: 0.9 });
    expect(node.recovery_actions).toEqual([{ type: 'retry' }, { type: 'abort' }]);
    const types = (await events(t, run.run_id)).map((e) => e.type);
    expect(types.slice(2)).toEqual([
      'node_evaluated',
      'recovery_applied',
      'node_evaluated',
      'recovery_applied',
    ]);
  });

  it('completes the root: the Run ends in the same state and terminal is final', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const url = `/v1/node-runs/${run.root_node_run_id}:complete`;
    const body = {
      state: 'failed',
      error: { code: 'boom', message: 'it broke' },
      outputs: { partial: true },
    };
    t.clock.advance(1500);
    expect((await post(t, url, body)).statusCode).toBe(204);
    const finished = await get(t, `/v1/runs/${run.run_id}`);
    expect(finished).toMatchObject({ state: 'failed', ended_at: '2026-01-01T00:00:01.500Z' });
    expect(finished.extensions['rc.completion_error']).toEqual({ code: 'boom', message: 'it broke' });
    const root = await get(t, `/v1/node-runs/${run.root_node_run_id}`);
    expect(root).toMatchObject({ state: 'failed', outputs: { partial: true } });
    expect(root.extensions['rc.completion_error'].code).toBe('boom');
    expect((await post(t, url, body)).statusCode).toBe(204);
    const other = await post(t, url, { state: 'succeeded' });
    expect(other.statusCode).toBe(409);
    expect(other.json().error.code).toBe('node_run_already_terminal');
    const completed = (await events(t, run.run_id)).filter((e) => e.type === 'run_completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ node_run_id: run.root_node_run_id, data: { state: 'failed' } });
  });

  it('completing a composite cancels its unfinished descendants; their late completions are 204 no-ops', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const [c] = (
      await createChildren(t, run.run_id, run.root_node_run_id, [
        { node_type_ref: ref('composite.c'), inputs: {} },
      ])
    ).json().node_runs;
    const [x, y] = (
      await createChildren(t, run.run_id, c.node_run_id, [
        { node_type_ref: ref('atomic.x'), inputs: {} },
        { node_type_ref: ref('atomic.y'), inputs: {} },
      ])
    ).json().node_runs;
    await post(t, `/v1/node-runs/${x.node_run_id}:complete`, { state: 'succeeded' });
    await post(t, `/v1/node-runs/${c.node_run_id}:complete`, { state: 'succeeded' });
    const canceled = await get(t, `/v1/node-runs/${y.node_run_id}`);
    expect(canceled.state).toBe('canceled');
    expect(canceled.extensions['rc.completion_error'].code).toBe('parent_completed');
    expect((await get(t, `/v1/node-runs/${x.node_run_id}`)).state).toBe('succeeded');
    const late = await post(t, `/v1/node-runs/${y.node_run_id}:complete`, {
      state: 'succeeded',
      outputs: { v: 1 },
    });
    expect(late.statusCode).toBe(204);
    expect((await get(t, `/v1/node-runs/${y.node_run_id}`)).state).toBe('canceled');
    expect((await get(t, `/v1/runs/${run.run_id}`)).state).toBe('running');
  });
});

describe('cancel_run', () => {
  it('cancels the Run and every unfinished NodeRun, is idempotent, and freezes the Run', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const [a, b] = (
      await createChildren(t, run.run_id, run.root_node_run_id, [
        { node_type_ref: ref('atomic.a'), inputs: {} },
        { node_type_ref: ref('atomic.b'), inputs: {} },
      ])
    ).json().node_runs;
    await post(t, `/v1/node-runs/${a.node_run_id}:complete`, { state: 'succeeded' });
    const canceled = await post(t, `/v1/runs/${run.run_id}:cancel`);
    expect(canceled.statusCode).toBe(200);
    expect(canceled.json()).toMatchObject({ state: 'canceled', ended_at: '2026-01-01T00:00:00.000Z' });
    expect((await get(t, `/v1/node-runs/${b.node_run_id}`)).state).toBe('canceled');
    expect((await get(t, `/v1/node-runs/${run.root_node_run_id}`)).state).toBe('canceled');
    expect((await get(t, `/v1/node-runs/${a.node_run_id}`)).state).toBe('succeeded');
    const again = await post(t, `/v1/runs/${run.run_id}:cancel`);
    expect(again.json()).toEqual(canceled.json());
    const late = await post(t, `/v1/node-runs/${run.root_node_run_id}:complete`, { state: 'succeeded' });
    expect(late.statusCode).toBe(204);
    expect((await get(t, `/v1/runs/${run.run_id}`)).state).toBe('canceled');
    const completed = (await events(t, run.run_id)).filter((e) => e.type === 'run_completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]?.node_run_id).toBeUndefined();
    expect(completed[0]?.data).toMatchObject({ state: 'canceled', canceled_node_run_count: 2 });
  });

  it('accepts an empty JSON body and answers 404 for an unknown run', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await t.request({
      method: 'POST',
      url: `/v1/runs/${run.run_id}:cancel`,
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(res.statusCode).toBe(200);
    const missing = await post(t, '/v1/runs/nope:cancel');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('run_not_found');
  });
});

describe('budgets', () => {
  it('fails the Run with budget_exceeded when max_wall_time_ms passes', async () => {
    const timers: { callback: () => void; ms: number; cleared: boolean }[] = [];
    const t = await newApp({
      timers: {
        setTimeout: (callback: () => void, ms: number) => {
          const handle = { callback, ms, cleared: false };
          timers.push(handle);
          return handle;
        },
        clearTimeout: (handle: unknown) => {
          (handle as { cleared: boolean }).cleared = true;
        },
      },
    });
    const run = await startRun(t, { constraints: { budgets: { max_wall_time_ms: 5000, max_cost: 1.5 } } });
    expect(timers).toHaveLength(1);
    expect(timers[0]?.ms).toBe(5000);
    t.clock.advance(5000);
    timers[0]?.callback();
    await expect(t.app.coordinator.expireRun(run.run_id)).resolves.toMatchObject({ state: 'failed' });
    const finished = await get(t, `/v1/runs/${run.run_id}`);
    expect(finished.extensions['rc.completion_error']).toMatchObject({
      code: 'budget_exceeded',
      details: { budget: 'max_wall_time_ms', limit: 5000 },
    });
    expect((await get(t, `/v1/node-runs/${run.root_node_run_id}`)).state).toBe('canceled');
    const completed = (await events(t, run.run_id)).filter((e) => e.type === 'run_completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ data: { state: 'failed', reason: 'budget_exceeded' } });
  });

  it('disarms the deadline when the Run finishes first', async () => {
    const t = await newApp();
    const run = await startRun(t, { constraints: { budgets: { max_wall_time_ms: 60_000 } } });
    expect(t.app.coordinator.armedDeadlines).toBe(1);
    await post(t, `/v1/node-runs/${run.root_node_run_id}:complete`, { state: 'succeeded' });
    expect(t.app.coordinator.armedDeadlines).toBe(0);
  });
});
