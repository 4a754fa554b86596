/**
 * Two coordinator processes, A and B, on one PostgreSQL schema behave as one coordinator: requests
 * spread over both are decided once (idempotent creates, racing completions), a follow stream on one
 * process carries the other's commits, an assignment token minted by one is honoured and revoked on
 * both, NodeRuns created through both are executed exactly once, and either lists the Runs of both.
 * Real processes (`node --import tsx src/server.ts`, see processes.ts), real sockets, a real database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/core/model.js';
import type { CompositeBeginRequest, NodeRun, NodeRunsCreateResponse } from '../../src/gen/contract.js';
import { type FakeService, replies } from '../helpers/executors.js';
import { type Issuer, startIssuer } from '../helpers/oidc.js';
import {
  AE_EXECUTE,
  atomicType,
  CE_BEGIN,
  CE_CANCEL,
  call,
  caller,
  complete,
  compositeType,
  createNodeRuns,
  events,
  executorUrl,
  expectGapFree,
  expectStatus,
  Follow,
  getNodeRun,
  getRun,
  isBegin,
  isExecute,
  startRun,
  subject,
} from './api.js';
import { type CoordinatorProcess, useCluster } from './processes.js';

const h = useCluster();

/** A and B on the test's schema, started together (their migrations take turns). */
const pair = (env: (name: string) => Record<string, string> = () => ({})) =>
  Promise.all([h.start('a', env('a')), h.start('b', env('b'))]);

/** The process for the i-th of many requests: every other one goes to B. */
const spread = (i: number, a: CoordinatorProcess, b: CoordinatorProcess) => (i % 2 === 0 ? a : b).url;

const eventsOf = (log: readonly RunEvent[], nodeRunId: string) =>
  log.filter((e) => e.node_run_id === nodeRunId).map((e) => e.type);

/** An Atomic Executor that answers every execute at once, and a Composite Executor that accepts. */
async function executors(): Promise<{ ae: FakeService; ce: FakeService }> {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => replies.succeeded(subject(r), { by: caller(r) }));
  const ce = await h.fake();
  ce.on('POST', CE_BEGIN, () => ({ json: { accepted: true } }));
  ce.on('POST', CE_CANCEL, () => ({ status: 200, json: {} }));
  return { ae, ce };
}

// Bounds, not expectations: a test waits for processes to start (about a second each, more on a busy
// machine) and for leases to end.
describe('two coordinator processes on one database', { timeout: 90_000 }, () => {
  it('50 concurrent identical creates with one idempotency key, spread over both, make one NodeRun', async () => {
    const [a, b] = await pair();
    const run = await startRun(a.url);
    const request = {
      run_id: run.run_id,
      parent_node_run_id: run.root_node_run_id,
      node_runs: [{ node_type_ref: atomicType, inputs: { text: 'once' }, idempotency_key: 'only-once' }],
    };

    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => createNodeRuns(spread(i, a, b), request)),
    );

    const ids = answers.map(
      (res) => expectStatus<NodeRunsCreateResponse>(res, 200).node_runs[0]!.node_run_id,
    );
    expect(new Set(ids).size, 'distinct NodeRun ids answered').toBe(1);
    const [id] = ids as [string];
    const log = await events(b.url, run.run_id);
    expect(eventsOf(log, id)).toEqual(['node_run_assigned']);
    expect(log.filter((e) => e.type === 'composite_decomposed')).toHaveLength(1);
    expect((await getNodeRun(a.url, id)).extensions?.['rc.idempotency_key']).toBe('only-once');
  });

  it('20 racing completions over both change the NodeRun once: identical ones all 204, different ones one 204 and 409s', async () => {
    const [a, b] = await pair();
    const run = await startRun(a.url);
    const created = expectStatus<NodeRunsCreateResponse>(
      await createNodeRuns(b.url, {
        run_id: run.run_id,
        parent_node_run_id: run.root_node_run_id,
        node_runs: [
          { node_type_ref: atomicType, inputs: {}, idempotency_key: 'identical' },
          { node_type_ref: atomicType, inputs: {}, idempotency_key: 'different' },
        ],
      }),
      200,
    );
    const [identical, different] = created.node_runs.map((n) => n.node_run_id) as [string, string];

    const same = { state: 'succeeded', outputs: { answer: 42 } };
    const identicalAnswers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => complete(spread(i, a, b), identical, same)),
    );
    expect(identicalAnswers.map((res) => res.status)).toEqual(Array(20).fill(204));

    const bodies = Array.from({ length: 20 }, (_, i) => ({ state: 'succeeded', outputs: { caller: i } }));
    const differentAnswers = await Promise.all(
      bodies.map((body, i) => complete(spread(i, a, b), different, body)),
    );
    const winners = differentAnswers.flatMap((res, i) => (res.status === 204 ? [i] : []));
    expect(winners, 'completions accepted').toHaveLength(1);
    for (const res of differentAnswers.filter((r) => r.status !== 204)) {
      expect(res.status, res.text).toBe(409);
      expect((res.body as { error: { code: string } }).error.code).toBe('node_run_already_terminal');
    }

    expect((await getNodeRun(a.url, identical)).outputs).toEqual(same.outputs);
    expect((await getNodeRun(b.url, different)).outputs).toEqual(bodies[winners[0]!]!.outputs);
    const log = await events(a.url, run.run_id);
    expect(eventsOf(log, identical)).toEqual(['node_run_assigned', 'atomic_executed']);
    expect(eventsOf(log, different)).toEqual(['node_run_assigned', 'atomic_executed']);
  });

  it("a follow stream on A carries, in seq order and without gaps, every event of B's writes, and ends with the Run", async () => {
    const [a, b] = await pair();
    const run = await startRun(b.url);
    const follow = await Follow.open(a.url, run.run_id);
    expect((await follow.take(2)).map((e) => e.type)).toEqual(['run_started', 'node_run_assigned']);
    const parent = { run_id: run.run_id, parent_node_run_id: run.root_node_run_id };

    // Lock-step: each write through B, then its events on A's stream before the next write. A
    // learns of B's commits only through the database's notifications: nothing else wakes it.
    const child = expectStatus<NodeRunsCreateResponse>(
      await createNodeRuns(b.url, { ...parent, node_runs: [{ node_type_ref: atomicType, inputs: {} }] }),
      200,
    ).node_runs[0]!.node_run_id;
    expect((await follow.take(2)).map((e) => e.type)).toEqual(['composite_decomposed', 'node_run_assigned']);
    const evaluation = { evaluation_result: { status: 'success', reason_code: 'looks_good' } };
    expectStatus(await call(b.url, 'POST', `/v1/node-runs/${child}:evaluation`, { body: evaluation }), 204);
    expect((await follow.take(1)).map((e) => e.type)).toEqual(['node_evaluated']);
    expectStatus(await complete(b.url, child, { state: 'succeeded', outputs: {} }), 204);
    expect((await follow.take(1)).map((e) => [e.type, e.node_run_id])).toEqual([['atomic_executed', child]]);

    // A burst of concurrent writes through B: A's stream has all their events, in seq order.
    const burst = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        createNodeRuns(b.url, { ...parent, node_runs: [{ node_type_ref: atomicType, inputs: { i } }] }),
      ),
    );
    for (const res of burst) expectStatus(res, 200);
    const burstEvents = await follow.take(20);
    expect(burstEvents.filter((e) => e.type === 'node_run_assigned')).toHaveLength(10);

    // Completing the root through B ends the Run, and with it A's stream.
    expectStatus(await complete(b.url, run.root_node_run_id, { state: 'succeeded', outputs: {} }), 204);
    const last = await follow.rest();
    expect(last.map((e) => e.type)).toEqual(['run_completed']);

    expectGapFree(follow.received, run.run_id);
    expect(follow.received).toEqual(await events(b.url, run.run_id));
    expect((await getRun(a.url, run.run_id)).state).toBe('succeeded');
  });

  it('either process lists and counts the Runs started through both, and a cursor from one continues on the other', async () => {
    const [a, b] = await pair();
    const tenant = `tenant_${process.pid}_${Date.now()}`;
    const started: string[] = [];
    // One after the other, so that their start times order them.
    for (let i = 0; i < 5; i++)
      started.push((await startRun(spread(i, a, b), { run_context: { tenant_id: tenant } })).run_id);
    type Page = { items: { run: { run_id: string } }[]; next_cursor?: string };
    const list = async (base: string, query: string) =>
      expectStatus<Page>(await call(base, 'GET', `/rc/v1/runs?tenant_id=${tenant}&${query}`), 200);
    const whole = await list(a.url, 'limit=10');
    expect(new Set(whole.items.map((item) => item.run.run_id))).toEqual(new Set(started));
    expect((await list(b.url, 'limit=10')).items).toEqual(whole.items);

    const first = await list(a.url, 'limit=3');
    const rest = await list(b.url, `limit=3&cursor=${first.next_cursor}`);
    expect([...first.items, ...rest.items]).toEqual(whole.items);
    expect(rest.next_cursor).toBeUndefined();
    const counts = expectStatus<{ total: number; counts: { running: number } }>(
      await call(b.url, 'GET', `/rc/v1/run-counts?tenant_id=${tenant}`),
      200,
    );
    expect([counts.total, counts.counts.running]).toEqual([5, 5]);
  });

  describe('assignment tokens', () => {
    let issuer: Issuer;
    beforeAll(async () => {
      issuer = await startIssuer();
    });
    afterAll(async () => {
      await issuer?.close();
    });

    it('a token minted by A (composite begin) is accepted by B, and stops working on both once its NodeRun completed', async () => {
      const { ae, ce } = await executors();
      const publicUrl = 'http://coordinators.test';
      const [a, b] = await pair((name) => ({
        ARP_AUTH_MODE: 'required',
        ARP_AUTH_ISSUER: issuer.issuer,
        ARP_AUTH_AUDIENCE: 'arp-run-coordinator',
        RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, name),
        RC_COMPOSITE_EXECUTOR_URL: executorUrl(ce, name),
        RC_PUBLIC_URL: publicUrl,
      }));
      const user = await issuer.mint();
      const run = await startRun(a.url, { root_node_type_ref: compositeType }, user);

      const [begin] = await ce.waitFor(1, isBegin);
      expect(caller(begin!), 'the process that dispatched the root').toBe('a');
      const order = begin!.body as CompositeBeginRequest;
      expect(order.node_run_id).toBe(run.root_node_run_id);
      expect(order.coordinator_endpoint).toBe(publicUrl);
      const token = order.assignment_token;

      // Minted by A, accepted by B (and by A): the executor's callbacks on its subtree.
      const created = expectStatus<NodeRunsCreateResponse>(
        await createNodeRuns(
          b.url,
          {
            run_id: run.run_id,
            parent_node_run_id: run.root_node_run_id,
            node_runs: [{ node_type_ref: atomicType, inputs: { text: 'hi' } }],
          },
          token,
        ),
        200,
      );
      const child = created.node_runs[0]!.node_run_id;
      for (const p of [a, b]) {
        const res = await call(p.url, 'GET', `/v1/node-runs/${child}`, { token, schema: 'NodeRun' });
        expect(expectStatus<NodeRun>(res, 200).node_run_id).toBe(child);
      }
      // Outside its scope it is refused by B too.
      const outside = await call(b.url, 'GET', `/v1/runs/${run.run_id}`, { token });
      expect(outside.status, outside.text).toBe(403);

      // The executor completes its NodeRun through B; from then on the token opens nothing.
      await ae.waitFor(1, isExecute);
      expectStatus(
        await complete(b.url, run.root_node_run_id, { state: 'succeeded', outputs: {} }, token),
        204,
      );
      for (const p of [a, b]) {
        const read = await call(p.url, 'GET', `/v1/node-runs/${child}`, { token });
        expect(read.status, `${p.name}: ${read.text}`).toBe(401);
        expect((read.body as { error: { code: string } }).error.code).toBe('unauthorized');
        const again = await complete(p.url, run.root_node_run_id, { state: 'succeeded', outputs: {} }, token);
        expect(again.status, `${p.name}: ${again.text}`).toBe(401);
        // The user's own token still works: the 401 is the assignment token's.
        const asUser = await call(p.url, 'GET', `/v1/node-runs/${child}`, { token: user, schema: 'NodeRun' });
        expect(asUser.status, asUser.text).toBe(200);
      }
    });
  });

  it('200 atomic NodeRuns created through both are each executed exactly once, while both dispatch', async () => {
    const { ae, ce } = await executors();
    const [a, b] = await pair((name) => ({
      RC_ATOMIC_EXECUTOR_URL: executorUrl(ae, name),
      RC_COMPOSITE_EXECUTOR_URL: executorUrl(ce, name),
      RC_PUBLIC_URL: 'http://coordinators.test',
    }));
    const run = await startRun(a.url, { root_node_type_ref: compositeType });
    await ce.waitFor(1, isBegin);
    const follow = await Follow.open(b.url, run.run_id);

    const batches = await Promise.all(
      Array.from({ length: 20 }, (_, batch) =>
        createNodeRuns(spread(batch, a, b), {
          run_id: run.run_id,
          parent_node_run_id: run.root_node_run_id,
          node_runs: Array.from({ length: 10 }, (_, i) => ({
            node_type_ref: atomicType,
            inputs: { batch, i },
            idempotency_key: `${batch}-${i}`,
          })),
        }),
      ),
    );
    const ids = batches.flatMap((res) =>
      expectStatus<NodeRunsCreateResponse>(res, 200).node_runs.map((n) => n.node_run_id),
    );
    expect(new Set(ids).size).toBe(200);

    await ae.waitFor(200, isExecute);
    // Every child's result is recorded (one atomic_executed each) before the Run is ended.
    const done = new Set<string>();
    while (done.size < 200) {
      for (const e of await follow.take(1)) if (e.type === 'atomic_executed') done.add(e.node_run_id!);
    }
    expectStatus(await complete(a.url, run.root_node_run_id, { state: 'succeeded', outputs: {} }), 204);
    await follow.rest();

    const executes = ae.received(isExecute);
    const perNodeRun = new Map<string, number>();
    for (const r of executes) perNodeRun.set(subject(r), (perNodeRun.get(subject(r)) ?? 0) + 1);
    expect([...perNodeRun.keys()].sort()).toEqual([...ids].sort());
    expect(
      [...perNodeRun.values()].every((n) => n === 1),
      'each NodeRun executed once',
    ).toBe(true);
    expect(new Set(executes.map(caller)), 'both processes dispatched').toEqual(new Set(['a', 'b']));

    const log = await events(a.url, run.run_id);
    expect(follow.received).toEqual(log);
    for (const id of ids) {
      expect(eventsOf(log, id).filter((t) => t === 'atomic_executed')).toHaveLength(1);
    }
    const states = await Promise.all(ids.map(async (id) => (await getNodeRun(b.url, id)).state));
    expect(new Set(states)).toEqual(new Set(['succeeded']));
  });
});
