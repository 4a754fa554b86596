/**
 * Assignment tokens through the real, listening app with inbound authentication `required`: a user
 * token (from a loopback OIDC issuer) starts a Run whose root is a composite; the coordinator hands
 * the fake Composite Executor an opaque `assignment_token` in `:begin`; with only that token, the
 * test then calls the coordinator over HTTP the way a composite executor does. The token allows
 * exactly the callbacks of a composite executor on its own NodeRun's subtree (403 `forbidden`
 * everywhere else) and stops working (401 `unauthorized`) once its NodeRun is terminal.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/auth/assignments.js';
import { type AuthSettings, disabledAuth, parseAuthSettings } from '../../src/auth/settings.js';
import type { RunEvent } from '../../src/core/model.js';
import type {
  CompositeBeginRequest,
  ErrorEnvelope,
  NodeRun,
  NodeRunsCreateResponse,
  Run,
} from '../../src/gen/contract.js';
import { AE_EXECUTE, CE_BEGIN, idle, useDispatch } from '../dispatch/harness.js';
import type { TestApp } from '../helpers/app.js';
import { callJson, type FakeService, freePort, type JsonResult, replies } from '../helpers/executors.js';
import { type Issuer, startIssuer } from '../helpers/oidc.js';

const h = useDispatch();

const plan = { node_type_id: 'composite.plan', version: '1.0.0' };
const sub = { node_type_id: 'composite.sub', version: '1.0.0' };
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };
const isBegin = (r: { method: string; path: string }) => r.method === 'POST' && r.path === CE_BEGIN;

let issuer: Issuer;
beforeAll(async () => {
  issuer = await startIssuer();
});
afterAll(async () => {
  await issuer?.close();
});

function requiredAuth(): AuthSettings {
  const problems: string[] = [];
  const settings = parseAuthSettings(
    {
      ARP_AUTH_MODE: 'required',
      ARP_AUTH_ISSUER: issuer.issuer,
      ARP_AUTH_AUDIENCE: 'arp-run-coordinator',
      ARP_AUTH_ALGORITHMS: 'RS256,ES256',
    },
    problems,
  );
  expect(problems).toEqual([]);
  expect(settings.inbound.mode).toBe('required');
  return settings;
}

interface Setup {
  readonly t: TestApp;
  readonly base: string;
  readonly ce: FakeService;
  readonly ae: FakeService;
  /** A user token minted by the issuer. */
  readonly user: string;
  /** Begin requests the fake Composite Executor received, by NodeRun id. */
  begin(nodeRunId: string): Promise<CompositeBeginRequest>;
}

/**
 * The app listening on the port its public URL names, with a fake Composite Executor that accepts
 * every begin (and cancel) and does nothing else, and a fake Atomic Executor that echoes.
 */
async function setup(auth: AuthSettings = requiredAuth()): Promise<Setup> {
  const ce = await h.fake();
  ce.on('POST', CE_BEGIN, () => ({ json: { accepted: true } }));
  ce.on('POST', /^\/v1\/composite-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => {
    const body = r.body as { node_run_id: string; inputs: Record<string, unknown> };
    return replies.succeeded(body.node_run_id, body.inputs);
  });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t = await h.app(
    { services: { atomicExecutor: ae.url, compositeExecutor: ce.url }, publicUrl: base },
    { options: { auth } },
  );
  await t.app.listen({ port, host: '127.0.0.1' });
  const user = await issuer.mint();
  return {
    t,
    base,
    ce,
    ae,
    user,
    async begin(nodeRunId) {
      const [found] = await ce.waitFor(
        1,
        (r) => isBegin(r) && (r.body as { node_run_id?: string }).node_run_id === nodeRunId,
      );
      return found!.body as CompositeBeginRequest;
    },
  };
}

/** One call over HTTP to the coordinator, with `token` as Bearer (none when undefined). */
const call = (
  s: Setup,
  token: string | undefined,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<JsonResult> =>
  callJson(s.base, path, {
    method,
    ...(token === undefined ? {} : { token }),
    ...(body === undefined ? {} : { body }),
  });

async function startRun(s: Setup, root = plan): Promise<Run> {
  const res = await call(s, s.user, 'POST', '/v1/runs', { root_node_type_ref: root, input: {} });
  expect(res.status, res.text).toBe(200);
  return res.body as Run;
}

async function userGetNodeRun(s: Setup, id: string): Promise<NodeRun> {
  const res = await call(s, s.user, 'GET', `/v1/node-runs/${id}`);
  expect(res.status, res.text).toBe(200);
  return res.body as NodeRun;
}

async function userGetRun(s: Setup, id: string): Promise<Run> {
  const res = await call(s, s.user, 'GET', `/v1/runs/${id}`);
  expect(res.status, res.text).toBe(200);
  return res.body as Run;
}

/** create_node_runs as a composite executor sends it; answers the created NodeRuns. */
async function createChildren(
  s: Setup,
  token: string,
  runId: string,
  parentId: string,
  specs: Record<string, unknown>[],
): Promise<NodeRun[]> {
  const res = await call(s, token, 'POST', '/v1/node-runs', {
    run_id: runId,
    parent_node_run_id: parentId,
    node_runs: specs,
  });
  expect(res.status, res.text).toBe(200);
  return (res.body as NodeRunsCreateResponse).node_runs;
}

const evaluation = { evaluation_result: { status: 'success', reason_code: 'children_succeeded' } };
const succeeded = { state: 'succeeded', outputs: { ok: true } };

function expectForbidden(res: JsonResult, what: string): void {
  expect(res.status, `${what}: ${res.text}`).toBe(403);
  const envelope = res.body as ErrorEnvelope;
  expect(envelope.error.code, what).toBe('forbidden');
  expect(typeof envelope.error.message).toBe('string');
}

function expectUnauthorized(res: JsonResult, what: string): void {
  expect(res.status, `${what}: ${res.text}`).toBe(401);
  expect((res.body as ErrorEnvelope).error.code, what).toBe('unauthorized');
}

const parseEvents = (text: string): RunEvent[] =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RunEvent);

describe('assignment tokens with authentication required', () => {
  it('starts a Run with a user token and hands the composite executor an assignment token in :begin', async () => {
    const s = await setup();
    expectUnauthorized(
      await call(s, undefined, 'POST', '/v1/runs', { root_node_type_ref: plan, input: {} }),
      'start_run without a token',
    );
    const run = await startRun(s);
    expect(run.state).toBe('running');
    const begin = await s.begin(run.root_node_run_id);
    await idle(s.t);
    expect(begin).toMatchObject({
      node_run_id: run.root_node_run_id,
      run_id: run.run_id,
      coordinator_endpoint: s.base,
    });
    expect(typeof begin.assignment_token).toBe('string');
    expect(begin.assignment_token!.length).toBeGreaterThan(0);
    // Opaque, not the user's token and not a JWT.
    expect(begin.assignment_token).not.toBe(s.user);
    expect(begin.assignment_token!.split('.')).toHaveLength(1);
    // Bound to that NodeRun in the store, by its hash.
    expect(await s.t.app.coordinator.store.findAssignment(hashToken(begin.assignment_token!))).toEqual({
      runId: run.run_id,
      nodeRunId: run.root_node_run_id,
    });
  });

  it('allows every callback of a composite executor on its own NodeRun and its descendants', async () => {
    const s = await setup();
    const run = await startRun(s);
    const root = run.root_node_run_id;
    const token = (await s.begin(root)).assignment_token!;
    await idle(s.t);

    // Children under the composite: a child composite and an atomic child.
    const [child, atomic] = await createChildren(s, token, run.run_id, root, [
      { node_type_ref: sub, inputs: {} },
      { node_type_ref: echo, inputs: { text: 'hi' } },
    ]);
    expect(child!.run_id).toBe(run.run_id);
    expect(child!.parent_node_run_id).toBe(root);
    const childToken = (await s.begin(child!.node_run_id)).assignment_token!;
    expect(childToken).not.toBe(token);
    await idle(s.t);
    expect((await userGetNodeRun(s, atomic!.node_run_id)).state).toBe('succeeded');

    // Grandchildren under its own child.
    const [grandchild, grandAtomic] = await createChildren(s, token, run.run_id, child!.node_run_id, [
      { node_type_ref: sub, inputs: {} },
      { node_type_ref: echo, inputs: { text: 'deep' } },
    ]);
    expect(grandchild!.parent_node_run_id).toBe(child!.node_run_id);
    await s.begin(grandchild!.node_run_id);
    await idle(s.t);

    // Reads of itself and of descendants at every depth.
    for (const id of [root, child!.node_run_id, atomic!.node_run_id, grandchild!.node_run_id]) {
      const res = await call(s, token, 'GET', `/v1/node-runs/${id}`);
      expect(res.status, res.text).toBe(200);
      expect((res.body as NodeRun).node_run_id).toBe(id);
    }
    expect((await call(s, token, 'GET', `/v1/node-runs/${grandAtomic!.node_run_id}`)).status).toBe(200);

    // Event snapshots of itself and of a descendant.
    const events = await call(s, token, 'GET', `/v1/node-runs/${root}/events`);
    expect(events.status, events.text).toBe(200);
    const ids = new Set(parseEvents(events.text).map((e) => e.node_run_id));
    expect(ids).toContain(root);
    expect(ids).toContain(grandchild!.node_run_id);
    const childEvents = await call(s, token, 'GET', `/v1/node-runs/${child!.node_run_id}/events`);
    expect(childEvents.status, childEvents.text).toBe(200);
    expect(parseEvents(childEvents.text).map((e) => e.node_run_id)).not.toContain(root);

    // Evaluation and completion of descendants (a grandchild, a finished atomic child, a child).
    const grandPath = `/v1/node-runs/${grandchild!.node_run_id}`;
    expect((await call(s, token, 'POST', `${grandPath}:evaluation`, evaluation)).status).toBe(204);
    expect((await call(s, token, 'POST', `${grandPath}:complete`, succeeded)).status).toBe(204);
    const atomicEval = await call(
      s,
      token,
      'POST',
      `/v1/node-runs/${atomic!.node_run_id}:evaluation`,
      evaluation,
    );
    expect(atomicEval.status, atomicEval.text).toBe(204);
    const childPath = `/v1/node-runs/${child!.node_run_id}`;
    expect((await call(s, token, 'POST', `${childPath}:evaluation`, evaluation)).status).toBe(204);
    expect((await call(s, token, 'POST', `${childPath}:complete`, succeeded)).status).toBe(204);
    expect((await userGetNodeRun(s, grandchild!.node_run_id)).state).toBe('succeeded');
    expect((await userGetNodeRun(s, child!.node_run_id)).state).toBe('succeeded');

    // Evaluation and completion of itself.
    const rootPath = `/v1/node-runs/${root}`;
    expect((await call(s, token, 'POST', `${rootPath}:evaluation`, evaluation)).status).toBe(204);
    const done = await call(s, token, 'POST', `${rootPath}:complete`, succeeded);
    expect(done.status, done.text).toBe(204);
    await idle(s.t);
    const after = await userGetNodeRun(s, root);
    expect(after).toMatchObject({ state: 'succeeded', evaluation_result: evaluation.evaluation_result });
    expect((await userGetRun(s, run.run_id)).state).toBe('succeeded');
    // Every token is gone with its NodeRun.
    expect(await s.t.app.coordinator.store.findAssignment(hashToken(token))).toBeUndefined();
    expect(await s.t.app.coordinator.store.findAssignment(hashToken(childToken))).toBeUndefined();
    expectUnauthorized(await call(s, childToken, 'GET', childPath), 'finished child token');
  });

  it('forbids, with 403 forbidden, every operation that is not a callback on its own subtree', async () => {
    const s = await setup();
    const run = await startRun(s);
    const root = run.root_node_run_id;
    const token = (await s.begin(root)).assignment_token!;
    const other = await startRun(s);
    const otherRoot = other.root_node_run_id;
    const otherToken = (await s.begin(otherRoot)).assignment_token!;
    await idle(s.t);
    expect(otherToken).not.toBe(token);

    // Run-level operations, on its own Run or another.
    expectForbidden(
      await call(s, token, 'POST', '/v1/runs', { root_node_type_ref: plan, input: {} }),
      'start_run',
    );
    for (const runId of [run.run_id, other.run_id]) {
      expectForbidden(await call(s, token, 'GET', `/v1/runs/${runId}`), `get_run ${runId}`);
      expectForbidden(await call(s, token, 'GET', `/v1/runs/${runId}/events`), `stream_run_events ${runId}`);
      expectForbidden(await call(s, token, 'POST', `/v1/runs/${runId}:cancel`), `cancel_run ${runId}`);
    }

    // Children under a NodeRun of another Run, and mismatched run ids.
    const spec = { node_type_ref: echo, inputs: {} };
    const create = (runId: string, parent: string) =>
      call(s, token, 'POST', '/v1/node-runs', {
        run_id: runId,
        parent_node_run_id: parent,
        node_runs: [spec],
      });
    expectForbidden(await create(other.run_id, otherRoot), 'create under another run');
    expectForbidden(await create(other.run_id, root), 'create with the run_id of another run');
    expectForbidden(await create(run.run_id, otherRoot), 'create under a NodeRun of another run');

    // Reads, events, evaluation and completion of a NodeRun outside its subtree.
    const otherPath = `/v1/node-runs/${otherRoot}`;
    expectForbidden(await call(s, token, 'GET', otherPath), 'get_node_run of another run');
    expectForbidden(
      await call(s, token, 'GET', `${otherPath}/events`),
      'stream_node_run_events of another run',
    );
    expectForbidden(
      await call(s, token, 'POST', `${otherPath}:evaluation`, evaluation),
      'evaluation elsewhere',
    );
    expectForbidden(await call(s, token, 'POST', `${otherPath}:complete`, succeeded), 'complete elsewhere');
    // And the other way round.
    expectForbidden(await call(s, otherToken, 'GET', `/v1/node-runs/${root}`), 'the other token on this run');

    // Nothing forbidden had an effect: both Runs still run, nothing was created.
    expect((await userGetRun(s, run.run_id)).state).toBe('running');
    expect((await userGetRun(s, other.run_id)).state).toBe('running');
    expect((await userGetNodeRun(s, otherRoot)).state).toBe('running');
    const otherEvents = await call(s, s.user, 'GET', `/v1/runs/${other.run_id}/events`);
    expect(parseEvents(otherEvents.text).map((e) => e.type)).not.toContain('composite_decomposed');
    expect(s.ae.requests).toEqual([]);

    // Health and version stay public, whatever the token.
    expect((await call(s, token, 'GET', '/v1/health')).status).toBe(200);
    expect((await call(s, token, 'GET', '/v1/version')).status).toBe(200);
  });

  it("confines a child composite's token to the child's subtree (not its parent, not a sibling)", async () => {
    const s = await setup();
    const run = await startRun(s);
    const root = run.root_node_run_id;
    const token = (await s.begin(root)).assignment_token!;
    await idle(s.t);
    const [left, right] = await createChildren(s, token, run.run_id, root, [
      { node_type_ref: sub, inputs: {} },
      { node_type_ref: sub, inputs: {} },
    ]);
    const leftToken = (await s.begin(left!.node_run_id)).assignment_token!;
    const rightToken = (await s.begin(right!.node_run_id)).assignment_token!;
    await idle(s.t);
    const [leftChild] = await createChildren(s, leftToken, run.run_id, left!.node_run_id, [
      { node_type_ref: sub, inputs: {} },
    ]);
    await s.begin(leftChild!.node_run_id);
    await idle(s.t);

    const spec = { node_type_ref: echo, inputs: {} };
    const create = (tok: string, parent: string) =>
      call(s, tok, 'POST', '/v1/node-runs', {
        run_id: run.run_id,
        parent_node_run_id: parent,
        node_runs: [spec],
      });

    // The child's token on the root (its parent).
    const rootPath = `/v1/node-runs/${root}`;
    expectForbidden(await create(leftToken, root), 'child token: create under the root');
    expectForbidden(await call(s, leftToken, 'GET', rootPath), 'child token: get the root');
    expectForbidden(await call(s, leftToken, 'GET', `${rootPath}/events`), 'child token: root events');
    expectForbidden(
      await call(s, leftToken, 'POST', `${rootPath}:evaluation`, evaluation),
      'child token: evaluate root',
    );
    expectForbidden(
      await call(s, leftToken, 'POST', `${rootPath}:complete`, succeeded),
      'child token: complete root',
    );

    // A sibling composite's token on the left subtree, and the other way round.
    const leftPath = `/v1/node-runs/${left!.node_run_id}`;
    expectForbidden(await create(rightToken, left!.node_run_id), 'sibling: create under left');
    expectForbidden(await create(rightToken, leftChild!.node_run_id), 'sibling: create under left child');
    expectForbidden(await call(s, rightToken, 'GET', leftPath), 'sibling: get left');
    expectForbidden(
      await call(s, rightToken, 'GET', `/v1/node-runs/${leftChild!.node_run_id}`),
      'sibling: get left child',
    );
    expectForbidden(
      await call(s, rightToken, 'POST', `${leftPath}:complete`, succeeded),
      'sibling: complete left',
    );
    expectForbidden(
      await call(s, leftToken, 'GET', `/v1/node-runs/${right!.node_run_id}`),
      'left: get right',
    );

    // Nothing changed; the child's token still works on its own subtree.
    expect((await userGetNodeRun(s, root)).state).toBe('running');
    expect((await userGetNodeRun(s, left!.node_run_id)).state).toBe('running');
    expect((await call(s, leftToken, 'GET', leftPath)).status).toBe(200);
    expect((await call(s, leftToken, 'GET', `/v1/node-runs/${leftChild!.node_run_id}`)).status).toBe(200);
    const own = await call(
      s,
      leftToken,
      'POST',
      `/v1/node-runs/${leftChild!.node_run_id}:complete`,
      succeeded,
    );
    expect(own.status, own.text).toBe(204);
  });

  it('lists only its own subtree of its own Run, and no Runs at all', async () => {
    const s = await setup();
    const run = await startRun(s);
    const root = run.root_node_run_id;
    const token = (await s.begin(root)).assignment_token!;
    await idle(s.t);
    const [left, right] = await createChildren(s, token, run.run_id, root, [
      { node_type_ref: sub, inputs: {} },
      { node_type_ref: sub, inputs: {} },
    ]);
    const leftToken = (await s.begin(left!.node_run_id)).assignment_token!;
    await idle(s.t);
    const [leftChild] = await createChildren(s, leftToken, run.run_id, left!.node_run_id, [
      { node_type_ref: sub, inputs: {} },
    ]);
    const other = await startRun(s);
    await s.begin(other.root_node_run_id);
    await idle(s.t);

    const listed = async (tok: string, runId: string) => {
      const res = await call(s, tok, 'GET', `/rc/v1/runs/${runId}/node-runs`);
      expect(res.status, res.text).toBe(200);
      return (res.body as { items: NodeRun[] }).items.map((nodeRun) => nodeRun.node_run_id).sort();
    };
    expect(await listed(leftToken, run.run_id)).toEqual([left!.node_run_id, leftChild!.node_run_id].sort());
    expect(await listed(token, run.run_id)).toEqual(
      [root, left!.node_run_id, right!.node_run_id, leftChild!.node_run_id].sort(),
    );
    expect(await listed(s.user, run.run_id)).toEqual(await listed(token, run.run_id));

    expectForbidden(await call(s, leftToken, 'GET', `/rc/v1/runs/${other.run_id}/node-runs`), 'another Run');
    expectForbidden(await call(s, token, 'GET', '/rc/v1/runs'), 'list_runs');
    expectForbidden(await call(s, token, 'GET', '/rc/v1/run-counts'), 'count_runs');
    expectUnauthorized(await call(s, undefined, 'GET', '/rc/v1/runs'), 'list_runs without a token');
    const runs = await call(s, s.user, 'GET', '/rc/v1/runs');
    expect(runs.status, runs.text).toBe(200);
    expect((runs.body as { items: { run: Run }[] }).items.map((item) => item.run.run_id).sort()).toEqual(
      [run.run_id, other.run_id].sort(),
    );
  });

  it('stops accepting the token (401) once its composite is completed, including for get_node_run', async () => {
    const s = await setup();
    const run = await startRun(s);
    const root = run.root_node_run_id;
    const token = (await s.begin(root)).assignment_token!;
    await idle(s.t);
    const [child] = await createChildren(s, token, run.run_id, root, [{ node_type_ref: sub, inputs: {} }]);
    const childToken = (await s.begin(child!.node_run_id)).assignment_token!;
    await idle(s.t);
    expect((await call(s, childToken, 'GET', `/v1/node-runs/${child!.node_run_id}`)).status).toBe(200);

    const rootPath = `/v1/node-runs/${root}`;
    const done = await call(s, token, 'POST', `${rootPath}:complete`, succeeded);
    expect(done.status, done.text).toBe(204);
    await idle(s.t);
    expect((await userGetRun(s, run.run_id)).state).toBe('succeeded');

    const get = await call(s, token, 'GET', rootPath);
    expectUnauthorized(get, 'get_node_run after completion');
    expectUnauthorized(await call(s, token, 'GET', `${rootPath}/events`), 'events after completion');
    expectUnauthorized(await call(s, token, 'POST', `${rootPath}:complete`, succeeded), 'repeat complete');
    expectUnauthorized(await call(s, token, 'POST', `${rootPath}:evaluation`, evaluation), 'late evaluation');
    expectUnauthorized(
      await call(s, token, 'POST', '/v1/node-runs', {
        run_id: run.run_id,
        parent_node_run_id: root,
        node_runs: [{ node_type_ref: echo, inputs: {} }],
      }),
      'create after completion',
    );
    expectUnauthorized(await call(s, token, 'GET', `/v1/runs/${run.run_id}`), 'get_run after completion');
    // The child composite was ended with its parent: its token is gone too.
    expect((await userGetNodeRun(s, child!.node_run_id)).state).not.toBe('running');
    expectUnauthorized(
      await call(s, childToken, 'GET', `/v1/node-runs/${child!.node_run_id}`),
      'child token',
    );
    expect(await s.t.app.coordinator.store.findAssignment(hashToken(childToken))).toBeUndefined();
  });

  it('stops accepting the tokens (401) of a canceled Run', async () => {
    const s = await setup();
    const run = await startRun(s);
    const root = run.root_node_run_id;
    const token = (await s.begin(root)).assignment_token!;
    await idle(s.t);
    const [child] = await createChildren(s, token, run.run_id, root, [{ node_type_ref: sub, inputs: {} }]);
    const childToken = (await s.begin(child!.node_run_id)).assignment_token!;
    await idle(s.t);

    const canceled = await call(s, s.user, 'POST', `/v1/runs/${run.run_id}:cancel`);
    expect(canceled.status, canceled.text).toBe(200);
    expect((canceled.body as Run).state).toBe('canceled');
    await idle(s.t);

    expectUnauthorized(await call(s, token, 'GET', `/v1/node-runs/${root}`), 'get_node_run after cancel');
    expectUnauthorized(
      await call(s, token, 'POST', `/v1/node-runs/${root}:complete`, succeeded),
      'complete after cancel',
    );
    expectUnauthorized(
      await call(s, childToken, 'GET', `/v1/node-runs/${child!.node_run_id}`),
      'child token after cancel',
    );
    for (const t of [token, childToken])
      expect(await s.t.app.coordinator.store.findAssignment(hashToken(t))).toBeUndefined();
  });

  it('answers 401 to an unknown opaque token, including a near-copy of a valid one', async () => {
    const s = await setup();
    const run = await startRun(s);
    const token = (await s.begin(run.root_node_run_id)).assignment_token!;
    await idle(s.t);
    const path = `/v1/node-runs/${run.root_node_run_id}`;
    const flipped = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    for (const [name, guess] of [
      ['random', randomBytes(32).toString('base64url')],
      ['near-copy', flipped],
      ['prefix', token.slice(0, 20)],
    ] as const) {
      const res = await call(s, guess, 'GET', path);
      expectUnauthorized(res, name);
      expect(res.status).toBe(401);
    }
    const create = await call(s, randomBytes(32).toString('base64url'), 'POST', '/v1/node-runs', {
      run_id: run.run_id,
      parent_node_run_id: run.root_node_run_id,
      node_runs: [{ node_type_ref: echo, inputs: {} }],
    });
    expectUnauthorized(create, 'create with a random token');
    // The real token still works.
    expect((await call(s, token, 'GET', path)).status).toBe(200);
  });

  it('restricts assignment tokens in optional mode too (anonymous callers are a separate matter)', async () => {
    const problems: string[] = [];
    const auth = parseAuthSettings({ ARP_AUTH_MODE: 'optional', ARP_AUTH_ISSUER: issuer.issuer }, problems);
    expect(problems).toEqual([]);
    const s = await setup(auth);
    const run = await startRun(s);
    const token = (await s.begin(run.root_node_run_id)).assignment_token!;
    await idle(s.t);
    expectForbidden(await call(s, token, 'GET', `/v1/runs/${run.run_id}`), 'get_run with the token');
    expect((await call(s, token, 'GET', `/v1/node-runs/${run.root_node_run_id}`)).status).toBe(200);
    expect((await call(s, undefined, 'GET', `/v1/runs/${run.run_id}`)).status).toBe(200);
  });
});

describe('assignment tokens with authentication disabled', () => {
  it('still hands out a token, but no token (valid, stale or random) restricts anything', async () => {
    const s = await setup(disabledAuth);
    const run = await startRun(s);
    const root = run.root_node_run_id;
    const token = (await s.begin(root)).assignment_token!;
    expect(token.length).toBeGreaterThan(0);
    const other = await startRun(s);
    await s.begin(other.root_node_run_id);
    await idle(s.t);

    // Operations an assignment token may not make under authentication all pass.
    const started = await call(s, token, 'POST', '/v1/runs', { root_node_type_ref: echo, input: {} });
    expect(started.status, started.text).toBe(200);
    expect((await call(s, token, 'GET', `/v1/runs/${other.run_id}`)).status).toBe(200);
    expect((await call(s, token, 'GET', `/v1/runs/${run.run_id}/events`)).status).toBe(200);
    expect((await call(s, token, 'GET', `/v1/node-runs/${other.root_node_run_id}`)).status).toBe(200);
    const foreign = await call(s, token, 'POST', '/v1/node-runs', {
      run_id: other.run_id,
      parent_node_run_id: other.root_node_run_id,
      node_runs: [{ node_type_ref: echo, inputs: {} }],
    });
    expect(foreign.status, foreign.text).toBe(200);
    const random = randomBytes(32).toString('base64url');
    expect((await call(s, random, 'GET', `/v1/runs/${run.run_id}`)).status).toBe(200);
    expect((await call(s, undefined, 'GET', `/v1/runs/${run.run_id}`)).status).toBe(200);
    await idle(s.t);

    // After its NodeRun finished the token is still irrelevant.
    const done = await call(s, token, 'POST', `/v1/node-runs/${root}:complete`, succeeded);
    expect(done.status, done.text).toBe(204);
    expect((await call(s, token, 'GET', `/v1/node-runs/${root}`)).status).toBe(200);
    const canceled = await call(s, token, 'POST', `/v1/runs/${other.run_id}:cancel`);
    expect(canceled.status, canceled.text).toBe(200);
    await idle(s.t);
  });
});
