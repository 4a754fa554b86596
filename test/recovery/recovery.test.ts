/**
 * Recovery across processes sharing one PostgreSQL database (here PGlite): two coordinator apps, A
 * and B, on the same schema, as two instances behind a load balancer. "A stops" is simulated by A
 * never renewing its leases or delivering what it owes while the shared clock moves past them; B's
 * reconciler must then finish A's work exactly once. Every wait is on a request reaching a fake
 * executor or on a state change, never on a timer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXECUTION_OWNER_LOST } from '../../src/coordinator/reconciler.js';
import { defaultOrchestration, type OrchestrationOptions } from '../../src/coordinator/wiring.js';
import { migrate } from '../../src/store/postgres/migrate.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import {
  AE_EXECUTE,
  aeCancelPath,
  CE_BEGIN,
  ceCancelPath,
  completionError,
  getNodeRun,
  getRun,
  idle,
  startRun,
  useDispatch,
} from '../dispatch/harness.js';
import { ManualClock, type TestApp } from '../helpers/app.js';
import { Gates, type Reply, replies } from '../helpers/executors.js';
import { openPglite, type PgliteDatabase } from '../helpers/pglite.js';
import { eventually } from '../helpers/until.js';

const h = useDispatch();
let database: PgliteDatabase;
let schemas = 0;

beforeAll(async () => {
  database = await openPglite();
}, 60_000);

afterAll(async () => {
  await database?.close();
});

const LEASE_TTL = 30_000;
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };
const plan = { node_type_id: 'composite.plan', version: '1.0.0' };
const nodeRunIdOf = (r: { body: unknown }) => (r.body as { node_run_id: string }).node_run_id;

/** Two instances on a fresh schema, sharing a clock; B is the survivor. */
async function cluster(
  a: Partial<OrchestrationOptions>,
  b: Partial<OrchestrationOptions>,
  names: [string, string] = ['instance-a', 'instance-b'],
) {
  const schema = `recovery_${++schemas}`;
  await migrate(database.pool, schema);
  const clock = new ManualClock();
  const instance = async (instanceId: string, orchestration: Partial<OrchestrationOptions>) => {
    const store = new PostgresStore({
      db: database,
      schema,
      instanceId,
      now: () => clock.now().getTime(),
      leaseTtlMs: LEASE_TTL,
    });
    await store.start();
    const t = await h.app({ ...defaultOrchestration, ...orchestration }, { store, clock });
    await t.app.ready();
    return t;
  };
  const A = await instance(names[0], a);
  const B = await instance(names[1], b);
  return { A, B, clock, schema };
}

const pass = (t: TestApp) => t.app.coordinator.reconciler!.pass();

describe('recovery across instances', () => {
  it('a queued NodeRun whose instance stopped before dispatching it is dispatched once by another', async () => {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, (r) => replies.succeeded(nodeRunIdOf(r)));
    // A takes the Run but dispatches nothing (it stops right after the commit).
    const { A, B, clock } = await cluster({}, { services: { atomicExecutor: ae.url } });
    const run = await startRun(A, { root_node_type_ref: echo });

    await pass(B);
    await idle(B);
    expect(
      ae.received((r) => r.path === AE_EXECUTE),
      'A still holds it',
    ).toEqual([]);

    clock.advance(LEASE_TTL + 1);
    await pass(B);
    await idle(B);
    await pass(B);
    await idle(B);
    expect(ae.received((r) => r.path === AE_EXECUTE).map(nodeRunIdOf)).toEqual([run.root_node_run_id]);
    expect((await getRun(A, run.run_id)).state).toBe('succeeded');
  });

  it('an atomic execution whose instance stopped fails with execution_owner_lost, is never run again, and its executor is told to stop', async () => {
    const ae = await h.fake();
    const gates = new Gates<Reply>();
    ae.on('POST', AE_EXECUTE, (r) => gates.wait(nodeRunIdOf(r)));
    ae.on('POST', /:cancel$/, () => ({ status: 200, json: {} }));
    const { A, B, clock } = await cluster(
      { services: { atomicExecutor: ae.url } },
      { services: { atomicExecutor: ae.url } },
    );
    const run = await startRun(A, { root_node_type_ref: echo });
    await ae.waitFor(1, (r) => r.path === AE_EXECUTE);
    expect((await getNodeRun(B, run.root_node_run_id)).state).toBe('running');

    clock.advance(LEASE_TTL + 1);
    await pass(B);
    await ae.waitFor(1, (r) => r.path === aeCancelPath(run.root_node_run_id));
    const root = await getNodeRun(B, run.root_node_run_id);
    expect(root.state).toBe('failed');
    expect(completionError(root)).toEqual(EXECUTION_OWNER_LOST);
    expect((await getRun(B, run.run_id)).state).toBe('failed');

    // A's late answer changes nothing, and nobody runs it again.
    gates.release(run.root_node_run_id, replies.succeeded(run.root_node_run_id));
    await idle(A);
    await pass(B);
    await idle(B);
    expect((await getNodeRun(B, run.root_node_run_id)).state).toBe('failed');
    expect(ae.received((r) => r.path === AE_EXECUTE)).toHaveLength(1);
  });

  it("a process restarted under the same instance name does not keep its previous life's executions alive", async () => {
    const ae = await h.fake();
    const gates = new Gates<Reply>();
    ae.on('POST', AE_EXECUTE, (r) => gates.wait(nodeRunIdOf(r)));
    ae.on('POST', /:cancel$/, () => ({ status: 200, json: {} }));
    const services = { atomicExecutor: ae.url };
    // B is A started again with the same RC_INSTANCE_ID; it renews its own leases on every pass.
    const { A, B, clock } = await cluster({ services }, { services }, ['pod-0', 'pod-0']);
    const run = await startRun(A, { root_node_type_ref: echo });
    await ae.waitFor(1, (r) => r.path === AE_EXECUTE);
    clock.advance(LEASE_TTL + 1);
    await pass(B);
    await ae.waitFor(1, (r) => r.path === aeCancelPath(run.root_node_run_id));
    expect(completionError(await getNodeRun(B, run.root_node_run_id))).toEqual(EXECUTION_OWNER_LOST);
    gates.release(run.root_node_run_id, replies.succeeded(run.root_node_run_id));
    await idle(A);
  });

  it('a cancel owed to an executor that its instance never delivered is delivered by another', async () => {
    const ae = await h.fake();
    const gates = new Gates<Reply>();
    ae.on('POST', AE_EXECUTE, (r) => gates.wait(nodeRunIdOf(r)));
    ae.on('POST', /:cancel$/, () => ({ status: 200, json: {} }));
    // B executes; the Run is canceled through A, which has no executor to tell.
    const { A, B, clock } = await cluster({}, { services: { atomicExecutor: ae.url } });
    const run = await startRun(B, { root_node_type_ref: echo });
    await ae.waitFor(1, (r) => r.path === AE_EXECUTE);
    const canceled = await A.request({ method: 'POST', url: `/v1/runs/${run.run_id}:cancel` });
    expect(canceled.json().state).toBe('canceled');

    await pass(B);
    expect(
      ae.received((r) => r.path.endsWith(':cancel')),
      'not due yet',
    ).toEqual([]);
    clock.advance(10_001);
    await pass(B);
    await ae.waitFor(1, (r) => r.path === aeCancelPath(run.root_node_run_id));
    gates.release(run.root_node_run_id, replies.succeeded(run.root_node_run_id));
    await idle(B);
    // Delivered once: the owed cancel is gone.
    clock.advance(600_000);
    await pass(B);
    await idle(B);
    expect(ae.received((r) => r.path.endsWith(':cancel'))).toHaveLength(1);
  });

  it("a Run's wall-time budget is kept by another instance from its stored deadline", async () => {
    const { A, B, clock } = await cluster({}, {});
    const run = await startRun(A, {
      root_node_type_ref: plan,
      constraints: { budgets: { max_wall_time_ms: 60_000 } },
    });
    await pass(B);
    expect((await getRun(B, run.run_id)).state).toBe('running');
    clock.advance(60_000);
    await pass(B);
    await eventually(async () => (await getRun(B, run.run_id)).state !== 'running', 'the deadline fired');
    const ended = await getRun(B, run.run_id);
    expect(ended.state).toBe('failed');
    expect(completionError(ended)?.code).toBe('budget_exceeded');
  });

  it("a composite's deadline is kept by another instance, and its executor is told to stop", async () => {
    const ce = await h.fake();
    ce.on('POST', CE_BEGIN, () => ({ json: { accepted: true } }));
    ce.on('POST', /:cancel$/, () => ({ status: 200, json: {} }));
    const services = { compositeExecutor: ce.url };
    const { A, B, clock } = await cluster(
      { services, publicUrl: 'http://127.0.0.1:1', compositeTimeoutMs: 120_000 },
      { services, publicUrl: 'http://127.0.0.1:1', compositeTimeoutMs: 120_000 },
    );
    const run = await startRun(A, { root_node_type_ref: plan });
    await idle(A);
    expect((await getNodeRun(B, run.root_node_run_id)).state).toBe('running');
    clock.advance(120_000);
    await pass(B);
    await ce.waitFor(1, (r) => r.path === ceCancelPath(run.root_node_run_id));
    const root = await getNodeRun(B, run.root_node_run_id);
    expect(root.state).toBe('failed');
    expect(completionError(root)?.code).toBe('node_run_timeout');
  });

  it('finished Runs past retention are deleted, running ones never', async () => {
    const { A, B, clock } = await cluster({}, {});
    const done = await startRun(A, { root_node_type_ref: plan });
    const live = await startRun(A, { root_node_type_ref: plan });
    await A.request({ method: 'POST', url: `/v1/runs/${done.run_id}:cancel` });
    clock.advance(7 * 86_400_000 + 60_001);
    await pass(B);
    expect((await B.request({ method: 'GET', url: `/v1/runs/${done.run_id}` })).statusCode).toBe(404);
    expect(
      (await B.request({ method: 'GET', url: `/v1/node-runs/${done.root_node_run_id}` })).statusCode,
    ).toBe(404);
    expect((await getRun(B, live.run_id)).state).toBe('running');
  });
});
