/**
 * The contract every `Store` implementation must pass (design/coordinator.md §3 and §6): atomic
 * commits of a decision with its events, per-run `seq` from 1 without gaps even under concurrent
 * writers, nothing written when a decision throws, consistent reads, idempotency lookup, and commit
 * notifications. Run it from a `*.test.ts` file:
 *
 *   storeContract('MemoryStore', async () => new MemoryStore({ maxFinishedRuns: 1000 }));
 *
 * `makeStore` may return a store over shared storage (e.g. one PostgreSQL database): every test uses
 * fresh, unique run ids. Stores are closed after each test. Notifications are expected to have been
 * delivered, for commits made through the same store instance, by the time `mutate()` resolves.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { decideComplete, decideEvaluation } from '../../src/core/completion.js';
import type { Decision, EventDraft, NodeRun, RunView } from '../../src/core/model.js';
import { decideCreateNodeRuns } from '../../src/core/node-runs.js';
import { decideStartRun, decideTerminateRun } from '../../src/core/runs.js';
import { ArpError } from '../../src/errors.js';
import type { NodeRunCreateSpec, RunStartRequest } from '../../src/gen/contract.js';
import type { Store } from '../../src/store/store.js';

const NOW = new Date('2026-01-01T00:00:00.000Z');
const TIME = NOW.toISOString();

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqs = (events: readonly { seq: number }[]) => events.map((event) => event.seq);
const spec = (type: string, extra: Partial<NodeRunCreateSpec> = {}): NodeRunCreateSpec => ({
  node_type_ref: { node_type_id: type, version: '1.0.0' },
  inputs: {},
  ...extra,
});

/** A decision that only appends one event (returns the lastSeq it saw). */
const appendOne =
  (nodeRunId: string | undefined, data: Record<string, unknown> = {}) =>
  (view: RunView): Decision<number> => {
    const event: EventDraft = { type: 'node_evaluated', time: TIME, data: { status: 'unknown', ...data } };
    return {
      value: view.lastSeq(),
      changes: { events: [nodeRunId === undefined ? event : { ...event, node_run_id: nodeRunId }] },
    };
  };

export function storeContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    const opened: Store[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    async function open(): Promise<Store> {
      const store = await makeStore();
      opened.push(store);
      return store;
    }

    // Unique ids per test, so that stores over shared storage never collide.
    let counter = 0;
    const uid = (prefix: string) => `${prefix}_${randomUUID().replaceAll('-', '')}_${++counter}`;

    function startDecision(runId: string, request: Partial<RunStartRequest> = {}) {
      const rootNodeRunId = uid('node_run');
      const body: RunStartRequest = {
        run_id: runId,
        root_node_type_ref: { node_type_id: 'composite.root', version: '1.0.0' },
        input: {},
        ...request,
      };
      return (view: RunView) =>
        decideStartRun(view, { request: body, runId, rootNodeRunId, rootKind: 'composite', now: NOW });
    }

    async function start(store: Store, request: Partial<RunStartRequest> = {}) {
      const runId = uid('run');
      const result = await store.mutate(runId, startDecision(runId, request));
      return { runId, rootId: result.value.root_node_run_id, result };
    }

    function create(store: Store, runId: string, parentId: string, specs: NodeRunCreateSpec[]) {
      return store.mutate(runId, (view) =>
        decideCreateNodeRuns(view, {
          request: { run_id: runId, parent_node_run_id: parentId, node_runs: specs },
          now: NOW,
          newId: () => uid('node_run'),
          kindOf: () => 'composite',
        }),
      );
    }

    async function allEvents(store: Store, runId: string) {
      return store.read(runId, (view) => [...view.events(0, 100_000)]);
    }

    // -------------------------------------------------------------------------------------------

    describe('mutate', () => {
      it('commits a new run: the Run, its NodeRuns and its events with run_id and seq', async () => {
        const store = await open();
        const { runId, rootId, result } = await start(store);
        expect(result.value.run_id).toBe(runId);
        expect(result.committed.map((e) => [e.run_id, e.seq, e.type, e.node_run_id])).toEqual([
          [runId, 1, 'run_started', undefined],
          [runId, 2, 'node_run_assigned', rootId],
        ]);
        expect(result.committed[0]).not.toHaveProperty('node_run_id');
        expect(result.committed[0]!.data).toEqual({ root_node_run_id: rootId });
        expect(result.committed[0]!.time).toBe(TIME);

        expect(await store.getRun(runId)).toEqual(result.changes!.run);
        expect(await store.getNodeRun(rootId)).toEqual(result.changes!.nodeRuns![0]);
        expect(await store.locate(rootId)).toBe(runId);
        expect(await allEvents(store, runId)).toEqual(result.committed);
      });

      it('returns the decision value and effects along with the committed events', async () => {
        const store = await open();
        const { runId, rootId, result } = await start(store, {
          constraints: { budgets: { max_wall_time_ms: 1000 } },
        });
        expect(result.effects).toEqual([
          { type: 'dispatch', nodeRunId: rootId },
          { type: 'arm_deadline', runId, at: NOW.getTime() + 1000 },
        ]);
        const custom = await store.mutate(runId, () => ({
          value: { answer: 42 },
          effects: [{ type: 'disarm_deadline' as const, runId }],
        }));
        expect(custom.value).toEqual({ answer: 42 });
        expect(custom.effects).toEqual([{ type: 'disarm_deadline', runId }]);
        expect(custom.committed).toEqual([]);
      });

      it('keeps every bookkeeping field of the records it commits', async () => {
        const store = await open();
        const { runId, rootId } = await start(store, {
          constraints: { structural: { max_depth: 4 }, budgets: { max_wall_time_ms: 5 } },
        });
        const created = await create(store, runId, rootId, [
          spec('composite.a', { idempotency_key: 'k', constraints: { gates: { require_approval: true } } }),
        ]);
        const child = created.value[0]!;
        const completed = await store.mutate(runId, (view) =>
          decideComplete(view, child.node_run_id, { state: 'succeeded', outputs: { x: 1 } }, NOW),
        );
        const run = await store.getRun(runId);
        expect(run?.deadlineAt).toBe(NOW.getTime() + 5);
        expect(run?.constraints).toEqual({ structural: { max_depth: 4 }, budgets: { max_wall_time_ms: 5 } });
        expect(run?.startFingerprint).toEqual(expect.any(String));
        const root = await store.getNodeRun(rootId);
        expect(root).toEqual(created.changes!.nodeRuns![0]);
        expect(root).toMatchObject({ depth: 0, childCount: 1, rounds: 1 });
        expect(await store.read(runId, (view) => view.children(rootId))).toEqual([child.node_run_id]);
        const stored = await store.getNodeRun(child.node_run_id);
        expect(stored).toEqual(completed.changes!.nodeRuns![0]);
        expect(stored).toMatchObject({
          depth: 1,
          rounds: 0,
          childCount: 0,
          idempotency: { key: 'k', fingerprint: expect.any(String) },
          completionFingerprint: expect.any(String),
          endedByCoordinator: false,
          constraints: {
            structural: { max_depth: 4 },
            budgets: { max_wall_time_ms: 5 },
            gates: { require_approval: true },
          },
        });
      });

      it('replaces existing records and adds new ones in the same commit', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const [a, b] = (await create(store, runId, rootId, [spec('composite.a'), spec('composite.b')])).value;
        const canceled = await store.mutate(runId, (view) =>
          decideTerminateRun(view, { now: NOW, state: 'canceled', reason: 'run_canceled' }),
        );
        expect(canceled.committed.map((e) => [e.seq, e.type])).toEqual([[6, 'run_completed']]);
        expect((await store.getRun(runId))?.run.state).toBe('canceled');
        for (const id of [rootId, a!.node_run_id, b!.node_run_id]) {
          const record = await store.getNodeRun(id);
          expect(record?.nodeRun.state).toBe('canceled');
          expect(record?.endedByCoordinator).toBe(true);
        }
        expect(await store.read(runId, (view) => view.nodeRunCount())).toBe(3);
      });
    });

    describe('seq', () => {
      it('starts at 1 and is gap-free across many mutations of different kinds', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        let expected = 3;
        const check = (committed: readonly { seq: number }[]) => {
          expect(seqs(committed)).toEqual(range(expected, expected + committed.length - 1));
          expected += committed.length;
        };
        for (let round = 0; round < 10; round++) {
          const created = await create(store, runId, rootId, [
            spec(`composite.r${round}`),
            spec('composite.x'),
          ]);
          check(created.committed);
          const child = created.value[0]!.node_run_id;
          check(
            (
              await store.mutate(runId, (view) =>
                decideEvaluation(
                  view,
                  child,
                  { evaluation_result: { status: 'success' }, recovery_action: { type: 'retry' } },
                  NOW,
                ),
              )
            ).committed,
          );
          check((await store.mutate(runId, appendOne(undefined))).committed);
        }
        const events = await allEvents(store, runId);
        expect(seqs(events)).toEqual(range(1, expected - 1));
        expect(await store.read(runId, (view) => view.lastSeq())).toBe(expected - 1);
      });

      it('is per run: every run starts at 1', async () => {
        const store = await open();
        const a = await start(store);
        await store.mutate(a.runId, appendOne(a.rootId));
        const b = await start(store);
        expect(seqs(b.result.committed)).toEqual([1, 2]);
        expect(seqs(await allEvents(store, a.runId))).toEqual([1, 2, 3]);
      });
    });

    describe('a decide that throws', () => {
      it('on a new run: creates nothing, rejects with the same error, consumes no seq', async () => {
        const store = await open();
        const runId = uid('run');
        const error = new ArpError('invalid_request', 'nope');
        await expect(
          store.mutate(runId, () => {
            throw error;
          }),
        ).rejects.toBe(error);
        expect(await store.getRun(runId)).toBeUndefined();
        expect(await store.read(runId, (view) => [view.record, view.lastSeq(), view.nodeRunCount()])).toEqual(
          [undefined, 0, 0],
        );
        const started = await store.mutate(runId, startDecision(runId));
        expect(seqs(started.committed)).toEqual([1, 2]);
      });

      it('after inspecting the view: nothing changes, the next commit continues the sequence', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const before = await store.read(runId, (view) => ({
          record: view.record,
          nodeRuns: [...view.nodeRuns()],
          events: [...view.events(0, 100)],
        }));
        // A core decision that is rejected: the root allows no children.
        const limited = await start(store, { constraints: { structural: { max_total_nodes_per_run: 1 } } });
        await expect(
          create(store, limited.runId, limited.rootId, [spec('composite.a')]),
        ).rejects.toMatchObject({
          code: 'constraint_violation',
        });
        expect(await store.read(limited.runId, (view) => [view.nodeRunCount(), view.lastSeq()])).toEqual([
          1, 2,
        ]);
        // A decide that fails with a plain error after reading everything.
        await expect(
          store.mutate(runId, (view) => {
            [...view.nodeRuns()];
            view.events(0, 100);
            throw new TypeError('bug in a decide function');
          }),
        ).rejects.toBeInstanceOf(TypeError);
        const after = await store.read(runId, (view) => ({
          record: view.record,
          nodeRuns: [...view.nodeRuns()],
          events: [...view.events(0, 100)],
        }));
        expect(after).toEqual(before);
        const next = await store.mutate(runId, appendOne(rootId));
        expect(seqs(next.committed)).toEqual([3]);
      });

      it('a decision without changes commits nothing and consumes no seq', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const noop = await store.mutate(runId, (view) => ({ value: view.lastSeq() }));
        expect(noop.value).toBe(2);
        expect(noop.committed).toEqual([]);
        const empty = await store.mutate(runId, () => ({ value: 0, changes: { events: [] } }));
        expect(empty.committed).toEqual([]);
        expect(seqs((await store.mutate(runId, appendOne(rootId))).committed)).toEqual([3]);
      });
    });

    describe('read', () => {
      it('gives a consistent view of one run', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const created = await create(store, runId, rootId, [
          spec('composite.a', { idempotency_key: 'ka' }),
          spec('composite.b'),
        ]);
        const [a, b] = created.value.map((n) => n.node_run_id);
        const [a1] = (await create(store, runId, a!, [spec('composite.a1', { idempotency_key: 'ka' })]))
          .value;
        const other = await start(store);

        const seen = await store.read(runId, (view) => ({
          runId: view.runId,
          run: view.record?.run,
          count: view.nodeRunCount(),
          order: [...view.nodeRuns()].map((r) => r.nodeRun.node_run_id),
          lastSeq: view.lastSeq(),
          events: [...view.events(0, 1000)],
          root: view.nodeRun(rootId),
          children: [...view.children(rootId)],
          foreign: view.nodeRun(other.rootId),
          locateOwn: view.locate(a1!.node_run_id),
          locateForeign: view.locate(other.rootId),
          locateUnknown: view.locate('node_run_unknown'),
        }));
        expect(seen.runId).toBe(runId);
        expect(seen.run).toEqual((await store.getRun(runId))?.run);
        expect(seen.count).toBe(4);
        expect(seen.order).toEqual([rootId, a, b, a1!.node_run_id]);
        expect(seen.lastSeq).toBe(seen.events.length);
        expect(seqs(seen.events)).toEqual(range(1, seen.lastSeq));
        for (const event of seen.events) expect(event.run_id).toBe(runId);
        expect(seen.root?.childCount).toBe(2);
        expect(seen.children).toEqual([a, b]);
        expect(seen.foreign, 'nodeRun() only sees NodeRuns of this run').toBeUndefined();
        expect(seen.locateOwn).toBe(runId);
        expect(seen.locateForeign, 'locate() sees every run').toBe(other.runId);
        expect(seen.locateUnknown).toBeUndefined();
      });

      it('a view of an unknown run is empty', async () => {
        const store = await open();
        const seen = await store.read(uid('run_never_created'), (view) => ({
          record: view.record,
          count: view.nodeRunCount(),
          nodeRuns: [...view.nodeRuns()],
          lastSeq: view.lastSeq(),
          events: view.events(0, 10),
          idem: view.idempotent('node_run_x', 'k'),
        }));
        expect(seen).toEqual({
          record: undefined,
          count: 0,
          nodeRuns: [],
          lastSeq: 0,
          events: [],
          idem: undefined,
        });
      });

      it('returns what the read function returns, and reflects every earlier commit', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        for (let i = 0; i < 5; i++) await store.mutate(runId, appendOne(rootId, { i }));
        expect(await store.read(runId, (view) => view.lastSeq())).toBe(7);
        const data = await store.read(runId, (view) => view.events(2, 5).map((e) => e.data?.i));
        expect(data).toEqual([0, 1, 2, 3, 4]);
      });
    });

    describe('getRun / getNodeRun / locate', () => {
      it('find committed records and nothing else', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const [child] = (await create(store, runId, rootId, [spec('composite.a')])).value;
        expect((await store.getRun(runId))?.run.root_node_run_id).toBe(rootId);
        expect((await store.getNodeRun(child!.node_run_id))?.nodeRun).toEqual(child);
        expect(await store.locate(child!.node_run_id)).toBe(runId);
        expect(await store.getRun(uid('run'))).toBeUndefined();
        expect(await store.getNodeRun(uid('node_run'))).toBeUndefined();
        expect(await store.locate(uid('node_run'))).toBeUndefined();
      });

      it('return the latest committed version of a record', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        await store.mutate(runId, (view) => decideComplete(view, rootId, { state: 'failed' }, NOW));
        expect((await store.getNodeRun(rootId))?.nodeRun.state).toBe('failed');
        expect((await store.getRun(runId))?.run.state).toBe('failed');
        expect(await store.locate(rootId)).toBe(runId);
      });
    });

    describe('idempotent()', () => {
      it('finds a NodeRun by (parent, key), scoped to the parent and the run', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const [a, b] = (
          await create(store, runId, rootId, [
            spec('composite.a', { idempotency_key: 'k1' }),
            spec('composite.b', { idempotency_key: 'k2' }),
          ])
        ).value;
        const [a1] = (
          await create(store, runId, a!.node_run_id, [spec('composite.a1', { idempotency_key: 'k1' })])
        ).value;
        const other = await start(store);
        const found = await store.read(runId, (view) => ({
          rootK1: view.idempotent(rootId, 'k1')?.nodeRun.node_run_id,
          rootK2: view.idempotent(rootId, 'k2')?.nodeRun.node_run_id,
          aK1: view.idempotent(a!.node_run_id, 'k1')?.nodeRun.node_run_id,
          rootK3: view.idempotent(rootId, 'k3'),
          bK1: view.idempotent(b!.node_run_id, 'k1'),
        }));
        expect(found).toEqual({
          rootK1: a!.node_run_id,
          rootK2: b!.node_run_id,
          aK1: a1!.node_run_id,
          rootK3: undefined,
          bK1: undefined,
        });
        expect(await store.read(other.runId, (view) => view.idempotent(rootId, 'k1'))).toBeUndefined();
        // The record found is the latest version.
        await store.mutate(runId, (view) =>
          decideComplete(view, b!.node_run_id, { state: 'succeeded' }, NOW),
        );
        expect(await store.read(runId, (view) => view.idempotent(rootId, 'k2')?.nodeRun.state)).toBe(
          'succeeded',
        );
      });
    });

    describe('subscribe', () => {
      it('calls the listener after each commit that appends events to that run, and only then', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const other = await start(store);
        const seenSeqs: Promise<number>[] = [];
        let calls = 0;
        store.subscribe(runId, () => {
          calls++;
          // The commit is visible to a read started from inside the listener.
          seenSeqs.push(store.read(runId, (view) => view.lastSeq()));
        });

        await store.mutate(runId, appendOne(rootId));
        expect(calls).toBe(1);
        await store.mutate(runId, (view) => ({ value: view.lastSeq() }));
        expect(calls, 'not after a decision without changes').toBe(1);
        await expect(
          store.mutate(runId, () => {
            throw new Error('rejected');
          }),
        ).rejects.toThrow('rejected');
        expect(calls, 'not after a decide that throws').toBe(1);
        await store.mutate(other.runId, appendOne(other.rootId));
        expect(calls, 'not after commits to another run').toBe(1);
        await create(store, runId, rootId, [spec('composite.a'), spec('composite.b')]);
        expect(calls, 'once per commit, however many events').toBe(2);
        expect(await Promise.all(seenSeqs)).toEqual([3, 6]);
      });

      it('unsubscribe stops the listener (and may be called twice)', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        let first = 0;
        let second = 0;
        const stopFirst = store.subscribe(runId, () => first++);
        const stopSecond = store.subscribe(runId, () => second++);
        await store.mutate(runId, appendOne(rootId));
        stopFirst();
        stopFirst();
        await store.mutate(runId, appendOne(rootId));
        expect([first, second]).toEqual([1, 2]);
        stopSecond();
        await store.mutate(runId, appendOne(rootId));
        expect([first, second]).toEqual([1, 2]);
      });

      it('a listener that throws does not break mutate or the other listeners', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        let calls = 0;
        store.subscribe(runId, () => {
          throw new Error('listener failure');
        });
        store.subscribe(runId, () => calls++);
        const result = await store.mutate(runId, appendOne(rootId));
        expect(seqs(result.committed)).toEqual([3]);
        expect(calls).toBe(1);
        expect(await store.read(runId, (view) => view.lastSeq())).toBe(3);
        const next = await store.mutate(runId, appendOne(rootId));
        expect(seqs(next.committed)).toEqual([4]);
        expect(calls).toBe(2);
      });

      it('a listener can subscribe before the run exists', async () => {
        const store = await open();
        const runId = uid('run');
        let calls = 0;
        store.subscribe(runId, () => calls++);
        await store.mutate(runId, startDecision(runId));
        expect(calls).toBe(1);
      });
    });

    describe('concurrency', () => {
      it('50 concurrent appends on one run get seq 1..50+k exactly once each', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const k = 2;
        const results = await Promise.all(
          range(1, 50).map((i) => store.mutate(runId, appendOne(rootId, { i }))),
        );
        const assigned = results.map((r) => r.committed[0]!.seq);
        expect([...assigned].sort((x, y) => x - y)).toEqual(range(k + 1, k + 50));
        // Each decision saw the state right before its own commit: no interleaving.
        for (const result of results) expect(result.committed[0]!.seq).toBe(result.value + 1);
        const events = await allEvents(store, runId);
        expect(seqs(events)).toEqual(range(1, k + 50));
        expect(
          events
            .slice(k)
            .map((e) => e.data?.i)
            .sort((x, y) => Number(x) - Number(y)),
        ).toEqual(range(1, 50));
      });

      it('concurrent read-modify-write decisions on one record lose no update', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        await Promise.all(
          range(1, 50).map((i) =>
            store.mutate(runId, (view) =>
              decideEvaluation(
                view,
                rootId,
                {
                  evaluation_result: { status: 'unknown' },
                  recovery_action: { type: 'retry', message: `${i}` },
                },
                NOW,
              ),
            ),
          ),
        );
        const root = await store.getNodeRun(rootId);
        const messages = (root?.nodeRun.recovery_actions ?? []).map((a) => Number(a.message));
        expect(messages.sort((x, y) => x - y)).toEqual(range(1, 50));
        expect(seqs(await allEvents(store, runId))).toEqual(range(1, 2 + 100));
      });

      it('concurrent appends on many runs keep each run gap-free', async () => {
        const store = await open();
        const runs = await Promise.all(range(1, 5).map(() => start(store)));
        await Promise.all(
          range(1, 10).flatMap((i) =>
            runs.map((run) => store.mutate(run.runId, appendOne(run.rootId, { i }))),
          ),
        );
        for (const run of runs) expect(seqs(await allEvents(store, run.runId))).toEqual(range(1, 12));
      });

      it('concurrent identical starts create the run exactly once', async () => {
        const store = await open();
        const runId = uid('run');
        const results = await Promise.all(range(1, 20).map(() => store.mutate(runId, startDecision(runId))));
        expect(results.filter((r) => r.committed.length > 0)).toHaveLength(1);
        const run = (await store.getRun(runId))?.run;
        for (const result of results) expect(result.value).toEqual(run);
        expect(await store.read(runId, (view) => [view.nodeRunCount(), view.lastSeq()])).toEqual([1, 2]);
      });

      it('concurrent identical creates with one idempotency key create one NodeRun', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const keyed = spec('composite.once', { idempotency_key: 'once', inputs: { x: 1 } });
        const results = await Promise.all(range(1, 20).map(() => create(store, runId, rootId, [keyed])));
        const ids = new Set(results.map((r) => (r.value[0] as NodeRun).node_run_id));
        expect(ids.size).toBe(1);
        expect(results.filter((r) => r.committed.length > 0)).toHaveLength(1);
        expect(await store.read(runId, (view) => [view.nodeRunCount(), view.lastSeq()])).toEqual([2, 4]);
        expect((await store.getNodeRun(rootId))?.rounds).toBe(1);
      });
    });

    describe('events(afterSeq, limit)', () => {
      it('pages through the events in seq order', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        for (let i = 0; i < 8; i++) await store.mutate(runId, appendOne(rootId, { i }));
        const page = (after: number, limit: number) =>
          store.read(runId, (view) => seqs(view.events(after, limit)));
        expect(await page(0, 3)).toEqual([1, 2, 3]);
        expect(await page(3, 3)).toEqual([4, 5, 6]);
        expect(await page(6, 3)).toEqual([7, 8, 9]);
        expect(await page(9, 3)).toEqual([10]);
        expect(await page(10, 3)).toEqual([]);
        expect(await page(50, 3)).toEqual([]);
        expect(await page(4, 1)).toEqual([5]);
        expect(await page(0, 0)).toEqual([]);
        expect(await page(0, 1000)).toEqual(range(1, 10));

        // Resuming from the last seq seen yields every event exactly once.
        const collected: number[] = [];
        for (let after = 0; ; ) {
          const next = await page(after, 4);
          if (next.length === 0) break;
          collected.push(...next);
          after = next[next.length - 1]!;
        }
        expect(collected).toEqual(range(1, 10));
      });
    });
  });
}
