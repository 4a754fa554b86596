/**
 * The `rc.` extension namespace is the coordinator's bookkeeping (`rc.completion_error`,
 * `rc.constraints`, ...). A client that writes those keys would forge it: every request that can
 * carry them is rejected with 400 and changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { createChildren, ref, startRun, useApp } from '../helpers/app.js';

const newApp = useApp();
const forged = { 'rc.completion_error': { code: 'run_canceled', message: 'forged' } };

function expectReserved(res: { statusCode: number; json(): unknown }, path: string) {
  expect(res.statusCode).toBe(400);
  const { error } = res.json() as { error: { code: string; details: { errors: { path: string }[] } } };
  expect(error.code).toBe('invalid_request');
  expect(error.details.errors.map((e) => e.path)).toEqual([path]);
}

describe('extension keys reserved for the coordinator', () => {
  it('a start request forging rc.completion_error is 400 and starts nothing', async () => {
    const t = await newApp();
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { run_id: 'forged', root_node_type_ref: ref('composite.r'), input: {}, extensions: forged },
    });
    expectReserved(res, '/extensions/rc.completion_error');
    expect((await t.request({ method: 'GET', url: '/v1/runs/forged' })).statusCode).toBe(404);
  });

  it('a child spec forging rc.constraints is 400 and creates nothing', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await createChildren(t, run.run_id, run.root_node_run_id, [
      { node_type_ref: ref('atomic.a'), inputs: {} },
      { node_type_ref: ref('atomic.b'), inputs: {}, extensions: { 'rc.constraints': {} } },
    ]);
    expectReserved(res, '/node_runs/1/extensions/rc.constraints');
    const events = await t.request({ method: 'GET', url: `/v1/runs/${run.run_id}/events` });
    expect(events.body.trim().split('\n')).toHaveLength(2);
  });

  it('a create request whose own extensions use the namespace is 400', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await createChildren(
      t,
      run.run_id,
      run.root_node_run_id,
      [{ node_type_ref: ref('atomic.a'), inputs: {} }],
      { extensions: { 'rc.metadata': {} } },
    );
    expectReserved(res, '/extensions/rc.metadata');
  });

  it('a :complete forging rc.completion_error is 400 and leaves the NodeRun unfinished', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await t.request({
      method: 'POST',
      url: `/v1/node-runs/${run.root_node_run_id}:complete`,
      payload: { state: 'succeeded', extensions: forged },
    });
    expectReserved(res, '/extensions/rc.completion_error');
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${run.root_node_run_id}` });
    expect(root.json().state).toBe('queued');
  });

  it('an :evaluation carrying rc.* extensions is 400 and records nothing', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await t.request({
      method: 'POST',
      url: `/v1/node-runs/${run.root_node_run_id}:evaluation`,
      payload: { evaluation_result: { status: 'success' }, extensions: { 'rc.binding_decision': 1 } },
    });
    expectReserved(res, '/extensions/rc.binding_decision');
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${run.root_node_run_id}` });
    expect(root.json().evaluation_result).toBeUndefined();
  });

  it('other namespaces, and keys that merely contain "rc", are accepted', async () => {
    const t = await newApp();
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: {
        root_node_type_ref: ref('composite.r'),
        input: {},
        extensions: { 'acme.rc': 1, 'rcx.trace': 2, 'arc.a': 3 },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().extensions).toMatchObject({ 'acme.rc': 1, 'rcx.trace': 2, 'arc.a': 3 });
  });
});
