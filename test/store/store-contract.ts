/**
 * The contract every `Store` implementation must pass (design/coordinator.md §3 and §6): atomic
 * commits of a decision with its events, per-run `seq` from 1 without gaps even under concurrent
 * writers, nothing written when a decision throws, a view holding exactly what a decision declared it
 * needs, cascades applied as `endByCoordinator` describes, the event log, and commit notifications.
 * Run it from a `*.test.ts` file:
 *
 *   storeContract('MemoryStore', async () => new MemoryStore({ maxFinishedRuns: 1000 }));
 *
 * `makeStore` may return a store over shared storage (e.g. one PostgreSQL database): every test uses
 * fresh, unique run ids, and counts are compared before and after. Stores are closed after each
 * test. Notifications are expected to have been delivered, for commits made through the same store
 * instance, by the time `mutate()` resolves.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { endByCoordinator } from '../../src/core/cascade.js';
import { decideComplete, decideEvaluation, nodeRunNeeds } from '../../src/core/completion.js';
import { decideClaim } from '../../src/core/dispatch.js';
import type {
  Decision,
  EndedExecution,
  EventDraft,
  Needs,
  NodeRun,
  RunEvent,
  RunView,
} from '../../src/core/model.js';
import { createNeeds, decideCreateNodeRuns } from '../../src/core/node-runs.js';
import { decideStartRun, decideTerminateRun, RUN_ONLY } from '../../src/core/runs.js';
import { ArpError } from '../../src/errors.js';
import type { NodeRunCreateSpec, RunStartRequest } from '../../src/gen/contract.js';
import type { ListedRun, RunFilter, Store } from '../../src/store/store.js';

const NOW = new Date('2026-01-01T00:00:00.000Z');
const TIME = NOW.toISOString();

/** Which executions a commit says to stop (without the store's own bookkeeping of them). */
const executions = (ended: readonly EndedExecution[]) =>
  ended.map(({ nodeRunId, kind }) => ({ nodeRunId, kind }));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqs = (events: readonly { seq: number }[]) => events.map((event) => event.seq);
const spec = (type: string, extra: Partial<NodeRunCreateSpec> = {}): NodeRunCreateSpec => ({
  node_type_ref: { node_type_id: type, version: '1.0.0' },
  inputs: {},
  ...extra,
});

/** A decision that only appends one event. */
const appendOne =
  (nodeRunId: string | undefined, data: Record<string, unknown> = {}) =>
  (): Decision<void> => {
    const event: EventDraft = { type: 'node_evaluated', time: TIME, data: { status: 'unknown', ...data } };
    return {
      value: undefined,
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

    function startDecision(runId: string, request: Partial<RunStartRequest> = {}, now = NOW) {
      const rootNodeRunId = uid('node_run');
      const body: RunStartRequest = {
        run_id: runId,
        root_node_type_ref: { node_type_id: 'composite.root', version: '1.0.0' },
        input: {},
        ...request,
      };
      return (view: RunView) =>
        decideStartRun(view, { request: body, runId, rootNodeRunId, rootKind: 'composite', now });
    }

    async function start(store: Store, request: Partial<RunStartRequest> = {}, now = NOW, id = uid('run')) {
      const runId = id;
      const result = await store.mutate(runId, RUN_ONLY, startDecision(runId, request, now));
      return { runId, rootId: result.value.root_node_run_id, result };
    }

    function create(
      store: Store,
      runId: string,
      parentId: string,
      specs: NodeRunCreateSpec[],
      kind: 'atomic' | 'composite' = 'composite',
    ) {
      const request = { run_id: runId, parent_node_run_id: parentId, node_runs: specs };
      return store.mutate(runId, createNeeds(request), (view) =>
        decideCreateNodeRuns(view, { request, now: NOW, newId: () => uid('node_run'), kindOf: () => kind }),
      );
    }

    /** What a decision holding `needs` sees, through a decision that changes nothing. */
    async function peek<T>(
      store: Store,
      runId: string,
      needs: Needs,
      read: (view: RunView) => T,
    ): Promise<T> {
      const result = await store.mutate(runId, needs, (view) => ({ value: read(view) }));
      expect(result.committed).toEqual([]);
      return result.value;
    }

    /** Puts a NodeRun into `running` as the dispatcher's claim does. */
    function claim(store: Store, runId: string, nodeRunId: string, kind: 'atomic' | 'composite') {
      return store.mutate(runId, nodeRunNeeds(nodeRunId), (view) =>
        decideClaim(view, {
          nodeRunId,
          kind,
          binding: { executor_instance_id: 'x', endpoint: 'http://x' },
          now: NOW,
        }),
      );
    }

    /** The Run's whole log, each line parsed (and checked to carry its seq and node). */
    async function allEvents(store: Store, runId: string): Promise<RunEvent[]> {
      return ((await store.events(runId, 0, 100_000))?.events ?? []).map((logged) => {
        const event = JSON.parse(logged.line) as RunEvent;
        expect([event.seq, event.node_run_id]).toEqual([logged.seq, logged.nodeRunId]);
        return event;
      });
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
        expect(executions(result.ended)).toEqual([]);

        expect(await store.getRun(runId)).toEqual(result.changes!.run);
        expect(await store.getNodeRun(rootId)).toEqual(result.changes!.created![0]);
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
        const custom = await store.mutate(runId, RUN_ONLY, () => ({
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
        const completed = await store.mutate(runId, nodeRunNeeds(child.node_run_id), (view) =>
          decideComplete(view, child.node_run_id, { state: 'succeeded', outputs: { x: 1 } }, NOW),
        );
        const run = await store.getRun(runId);
        expect(run?.deadlineAt).toBe(NOW.getTime() + 5);
        expect(run?.constraints).toEqual({ structural: { max_depth: 4 }, budgets: { max_wall_time_ms: 5 } });
        expect(run?.startFingerprint).toEqual(expect.any(String));
        expect(run?.steps).toBe(0);
        const root = await store.getNodeRun(rootId);
        expect(root).toEqual(created.changes!.updated![0]);
        expect(root).toMatchObject({ depth: 0, childCount: 1, rounds: 1 });
        const stored = await store.getNodeRun(child.node_run_id);
        expect(stored).toEqual(completed.changes!.updated![0]);
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
        const claimed = await claim(store, runId, rootId, 'composite');
        expect(claimed.value).toBe('claimed');
        expect(await store.getNodeRun(rootId)).toEqual(claimed.changes!.updated![0]);
      });

      it('serves documents as the text they were written as: numbers in their short form, keys in order, also after a cascade', async () => {
        const store = await open();
        const inputs = { z: 1e308, a: [5e-324, -1.5e300], m: { y: '\u2028"q"', b: null } };
        const { runId, rootId } = await start(store, { input: inputs });
        const [child] = (await create(store, runId, rootId, [spec('composite.c', { inputs })])).value;
        const root = (await store.getNodeRun(rootId))!.nodeRun;
        expect(await store.nodeRunJson(rootId)).toBe(JSON.stringify(root));
        expect(await store.runJson(runId)).toBe(JSON.stringify((await store.getRun(runId))!.run));
        await store.mutate(runId, RUN_ONLY, (view) =>
          decideTerminateRun(view, { now: NOW, state: 'canceled', reason: 'run_canceled' }),
        );
        const ended = (await store.getNodeRun(child!.node_run_id))!.nodeRun;
        expect(ended.state).toBe('canceled');
        const text = await store.nodeRunJson(child!.node_run_id);
        expect(text).toBe(JSON.stringify(ended));
        expect(text).toContain('"z":1e+308');
        expect(text!.length).toBeLessThan(1_000);
      });

      it('keeps wire objects exactly, including unicode, nulls inside free-form data and large numbers', async () => {
        const store = await open();
        const inputs = {
          text: 'héllo 🌍 \u2028 "quoted"',
          nested: { n: null, list: [1, 2.5, -0.125, 1e21] },
        };
        const { runId, rootId } = await start(store, { input: inputs, run_context: { tenant_id: 't' } });
        expect((await store.getNodeRun(rootId))?.nodeRun.inputs).toEqual(inputs);
        expect((await store.getRun(runId))?.run.run_context).toEqual({ tenant_id: 't' });
      });
    });

    describe('cascade', () => {
      /** root → a (running), b (queued) → b1 (queued), c (succeeded). */
      async function tree(store: Store) {
        const { runId, rootId } = await start(store);
        const [a, b, c] = (
          await create(store, runId, rootId, [spec('atomic.a'), spec('composite.b'), spec('atomic.c')])
        ).value.map((n) => n.node_run_id);
        const [b1] = (await create(store, runId, b!, [spec('atomic.b1')])).value.map((n) => n.node_run_id);
        await claim(store, runId, rootId, 'composite');
        await claim(store, runId, a!, 'atomic');
        await store.mutate(runId, nodeRunNeeds(c!), (view) =>
          decideComplete(view, c!, { state: 'succeeded' }, NOW),
        );
        return { runId, rootId, a: a!, b: b!, c: c!, b1: b1! };
      }

      it('completing a composite ends its unfinished descendants as endByCoordinator says, and reports the running ones', async () => {
        const store = await open();
        const t = await tree(store);
        const before = new Map(
          await Promise.all(
            [t.a, t.b, t.b1, t.c].map(async (id) => [id, (await store.getNodeRun(id))!] as const),
          ),
        );
        const later = new Date(NOW.getTime() + 5000);
        const result = await store.mutate(t.runId, nodeRunNeeds(t.rootId), (view) =>
          decideComplete(view, t.rootId, { state: 'succeeded' }, later),
        );
        expect(executions(result.ended)).toEqual([{ nodeRunId: t.a, kind: 'atomic' }]);
        for (const id of [t.a, t.b, t.b1]) {
          expect(await store.getNodeRun(id)).toEqual(
            endByCoordinator(before.get(id)!, 'parent_completed', later.toISOString()),
          );
        }
        expect(await store.getNodeRun(t.c), 'finished NodeRuns keep their state').toEqual(before.get(t.c));
        expect((await store.getRun(t.runId))?.run.state).toBe('succeeded');
      });

      it('a cascade below a NodeRun leaves its siblings alone', async () => {
        const store = await open();
        const t = await tree(store);
        const a = await store.getNodeRun(t.a);
        await store.mutate(t.runId, nodeRunNeeds(t.b), (view) =>
          decideComplete(view, t.b, { state: 'failed' }, NOW),
        );
        expect((await store.getNodeRun(t.b1))?.nodeRun.state).toBe('canceled');
        expect(await store.getNodeRun(t.a)).toEqual(a);
        expect((await store.getNodeRun(t.rootId))?.nodeRun.state).toBe('running');
      });

      it('terminating the Run ends every unfinished NodeRun, the root included, and counts them', async () => {
        const store = await open();
        const t = await tree(store);
        expect(await peek(store, t.runId, RUN_ONLY, (view) => view.liveNodeRunCount())).toBe(4);
        const result = await store.mutate(t.runId, RUN_ONLY, (view) =>
          decideTerminateRun(view, { now: NOW, state: 'canceled', reason: 'run_canceled' }),
        );
        expect(result.committed.map((e) => [e.type, e.data?.canceled_node_run_count])).toEqual([
          ['run_completed', 4],
        ]);
        expect(new Set(executions(result.ended))).toEqual(
          new Set([
            { nodeRunId: t.rootId, kind: 'composite' },
            { nodeRunId: t.a, kind: 'atomic' },
          ]),
        );
        for (const id of [t.rootId, t.a, t.b, t.b1]) {
          const record = await store.getNodeRun(id);
          expect(record?.nodeRun.state).toBe('canceled');
          expect(record?.endedByCoordinator).toBe(true);
          expect(record?.nodeRun.extensions?.['rc.completion_error']).toEqual({
            code: 'run_canceled',
            message: 'The Run was canceled.',
          });
        }
        expect((await store.getNodeRun(t.c))?.nodeRun.state).toBe('succeeded');
        expect(
          await peek(store, t.runId, RUN_ONLY, (view) => [view.nodeRunCount(), view.liveNodeRunCount()]),
        ).toEqual([5, 0]);
      });
    });

    describe('the view', () => {
      it('holds the declared NodeRuns of its Run, locates declared ids anywhere, and counts', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const [a, b] = (
          await create(store, runId, rootId, [spec('composite.a'), spec('composite.b')])
        ).value.map((n) => n.node_run_id);
        const other = await start(store);
        const unknown = uid('node_run');
        await store.mutate(runId, nodeRunNeeds(b!), (view) =>
          decideComplete(view, b!, { state: 'failed' }, NOW),
        );
        const seen = await peek(store, runId, { nodeRuns: [rootId, a!, other.rootId, unknown] }, (view) => ({
          runId: view.runId,
          run: view.record?.run,
          count: view.nodeRunCount(),
          live: view.liveNodeRunCount(),
          root: view.nodeRun(rootId),
          a: view.nodeRun(a!)?.nodeRun.node_run_id,
          foreign: view.nodeRun(other.rootId),
          unknown: view.nodeRun(unknown),
          locateOwn: view.locate(a!),
          locateForeign: view.locate(other.rootId),
          locateUnknown: view.locate(unknown),
        }));
        expect(seen.runId).toBe(runId);
        expect(seen.run).toEqual((await store.getRun(runId))?.run);
        expect(seen.count).toBe(3);
        expect(seen.live).toBe(2);
        expect(seen.root).toEqual(await store.getNodeRun(rootId));
        expect(seen.root?.childCount).toBe(2);
        expect(seen.a).toBe(a);
        expect(seen.foreign, 'nodeRun() only sees NodeRuns of this run').toBeUndefined();
        expect(seen.unknown).toBeUndefined();
        expect(seen.locateOwn).toBe(runId);
        expect(seen.locateForeign, 'locate() sees every run').toBe(other.runId);
        expect(seen.locateUnknown).toBeUndefined();
      });

      it('of an unknown run is empty', async () => {
        const store = await open();
        const runId = uid('run_never_created');
        const seen = await peek(store, runId, { nodeRuns: ['node_run_x'] }, (view) => ({
          record: view.record,
          count: view.nodeRunCount(),
          live: view.liveNodeRunCount(),
          nodeRun: view.nodeRun('node_run_x'),
        }));
        expect(seen).toEqual({ record: undefined, count: 0, live: 0, nodeRun: undefined });
        expect(await store.getRun(runId)).toBeUndefined();
        expect(await store.events(runId, 0, 10)).toBeUndefined();
      });

      it('finds NodeRuns by idempotency key, scoped to the parent and the run, in their latest version', async () => {
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
        const keys = (parentId: string, ...k: string[]): Needs => ({ idempotency: { parentId, keys: k } });
        const lookup = (rid: string, parentId: string, key: string) =>
          peek(
            store,
            rid,
            keys(parentId, key),
            (view) => view.idempotent(parentId, key)?.nodeRun.node_run_id,
          );
        expect(await lookup(runId, rootId, 'k1')).toBe(a!.node_run_id);
        expect(await lookup(runId, rootId, 'k2')).toBe(b!.node_run_id);
        expect(await lookup(runId, a!.node_run_id, 'k1')).toBe(a1!.node_run_id);
        expect(await lookup(runId, rootId, 'k3')).toBeUndefined();
        expect(await lookup(runId, b!.node_run_id, 'k1')).toBeUndefined();
        const other = await start(store);
        expect(await lookup(other.runId, rootId, 'k1')).toBeUndefined();
        await store.mutate(runId, nodeRunNeeds(b!.node_run_id), (view) =>
          decideComplete(view, b!.node_run_id, { state: 'succeeded' }, NOW),
        );
        expect(
          await peek(store, runId, keys(rootId, 'k1', 'k2'), (view) => [
            view.idempotent(rootId, 'k1')?.nodeRun.state,
            view.idempotent(rootId, 'k2')?.nodeRun.state,
          ]),
        ).toEqual(['queued', 'succeeded']);
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
          const evaluated = await store.mutate(runId, nodeRunNeeds(child), (view) =>
            decideEvaluation(
              view,
              child,
              { evaluation_result: { status: 'success' }, recovery_action: { type: 'retry' } },
              NOW,
            ),
          );
          check(evaluated.committed);
          check((await store.mutate(runId, RUN_ONLY, appendOne(undefined))).committed);
        }
        const page = await store.events(runId, 0, 10_000);
        expect(seqs(page!.events)).toEqual(range(1, expected - 1));
        expect(page!.lastSeq).toBe(expected - 1);
      });

      it('is per run: every run starts at 1', async () => {
        const store = await open();
        const a = await start(store);
        await store.mutate(a.runId, RUN_ONLY, appendOne(a.rootId));
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
          store.mutate(runId, RUN_ONLY, () => {
            throw error;
          }),
        ).rejects.toBe(error);
        expect(await store.getRun(runId)).toBeUndefined();
        expect(await store.events(runId, 0, 10)).toBeUndefined();
        const started = await store.mutate(runId, RUN_ONLY, startDecision(runId));
        expect(seqs(started.committed)).toEqual([1, 2]);
      });

      it('after inspecting the view: nothing changes, the next commit continues the sequence', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const snapshot = async () => ({
          run: await store.getRun(runId),
          root: await store.getNodeRun(rootId),
          events: await allEvents(store, runId),
        });
        const before = await snapshot();
        // A core decision that is rejected: the root allows no children.
        const limited = await start(store, { constraints: { structural: { max_total_nodes_per_run: 1 } } });
        await expect(
          create(store, limited.runId, limited.rootId, [spec('composite.a')]),
        ).rejects.toMatchObject({
          code: 'constraint_violation',
        });
        expect(seqs(await allEvents(store, limited.runId))).toEqual([1, 2]);
        // A decide that fails with a plain error after reading.
        await expect(
          store.mutate(runId, nodeRunNeeds(rootId), (view) => {
            view.nodeRun(rootId);
            throw new TypeError('bug in a decide function');
          }),
        ).rejects.toBeInstanceOf(TypeError);
        expect(await snapshot()).toEqual(before);
        const next = await store.mutate(runId, RUN_ONLY, appendOne(rootId));
        expect(seqs(next.committed)).toEqual([3]);
      });

      it('a decision without changes commits nothing and consumes no seq', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const noop = await store.mutate(runId, RUN_ONLY, () => ({ value: 7 }));
        expect(noop.value).toBe(7);
        expect(noop.committed).toEqual([]);
        const empty = await store.mutate(runId, RUN_ONLY, () => ({ value: 0, changes: { events: [] } }));
        expect(empty.committed).toEqual([]);
        expect(seqs((await store.mutate(runId, RUN_ONLY, appendOne(rootId))).committed)).toEqual([3]);
      });
    });

    describe('getRun / getNodeRun / locate / countLiveRuns', () => {
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
        await store.mutate(runId, nodeRunNeeds(rootId), (view) =>
          decideComplete(view, rootId, { state: 'failed' }, NOW),
        );
        expect((await store.getNodeRun(rootId))?.nodeRun.state).toBe('failed');
        expect((await store.getRun(runId))?.run.state).toBe('failed');
        expect(await store.locate(rootId)).toBe(runId);
      });

      it('ids holding U+0000 (possible in a URL) name nothing', async () => {
        const store = await open();
        const id = 'node_run_\u0000x';
        expect(await store.getRun(id)).toBeUndefined();
        expect(await store.getNodeRun(id)).toBeUndefined();
        expect(await store.locate(id)).toBeUndefined();
        expect(await store.runJson(id)).toBeUndefined();
        expect(await store.nodeRunJson(id)).toBeUndefined();
        expect(await store.events(id, 0, 10)).toBeUndefined();
        const seen = await peek(store, id, { nodeRuns: [id] }, (view) => [view.record, view.nodeRun(id)]);
        expect(seen).toEqual([undefined, undefined]);
      });

      it('countLiveRuns counts the Runs that have not finished', async () => {
        const store = await open();
        const before = await store.countLiveRuns({ fresh: true });
        const a = await start(store);
        await start(store);
        expect(await store.countLiveRuns({ fresh: true })).toBe(before + 2);
        await store.mutate(a.runId, RUN_ONLY, (view) =>
          decideTerminateRun(view, { now: NOW, state: 'canceled', reason: 'run_canceled' }),
        );
        expect(await store.countLiveRuns({ fresh: true })).toBe(before + 1);
      });
    });

    describe('listRuns / countRuns / listNodeRuns', () => {
      const at = (minute: number) => new Date(NOW.getTime() + minute * 60_000);
      /** Runs of one tenant (unique per test, so that stores over shared storage agree). */
      async function tenantRuns(store: Store, specs: { minute: number; type?: string; id?: string }[]) {
        const tenant = uid('tenant');
        const runs = [];
        for (const { minute, type, id } of specs) {
          const request: Partial<RunStartRequest> = {
            run_context: { tenant_id: tenant },
            ...(type ? { root_node_type_ref: { node_type_id: type, version: '1.0.0' } } : {}),
          };
          runs.push(await start(store, request, at(minute), id));
        }
        return { tenant, runIds: runs.map((run) => run.runId) };
      }
      const ids = (listed: readonly ListedRun[]) => listed.map((run) => run.position.runId);

      it('list Runs newest first, then by run id, in pages that continue after a position', async () => {
        const store = await open();
        const prefix = uid('run');
        const { tenant, runIds } = await tenantRuns(store, [
          { minute: 1, id: `${prefix}_b` },
          { minute: 3 },
          { minute: 2, id: `${prefix}_a` },
          { minute: 2, id: `${prefix}_c` },
          { minute: 0 },
        ]);
        const [b, three, a, c, zero] = runIds as [string, string, string, string, string];
        const all = await store.listRuns({ tenantId: tenant }, undefined, 100);
        expect(ids(all)).toEqual([three, c, a, b, zero]);
        expect(all[1]?.position).toEqual({ startedAt: at(2).getTime(), runId: c });
        expect(JSON.parse(all[0]!.json)).toEqual((await store.getRun(three))?.run);
        expect(all[0]?.json).toBe(await store.runJson(three));
        expect(all[0]?.rootNodeTypeId).toBe('composite.root');

        const first = await store.listRuns({ tenantId: tenant }, undefined, 2);
        expect(ids(first)).toEqual([three, c]);
        // A newer Run started between pages changes nothing that follows.
        await tenantRunsOf(store, tenant, 5);
        const second = await store.listRuns({ tenantId: tenant }, first[1]!.position, 2);
        expect(ids(second)).toEqual([a, b]);
        const third = await store.listRuns({ tenantId: tenant }, second[1]!.position, 2);
        expect(ids(third)).toEqual([zero]);
        expect(await store.listRuns({ tenantId: tenant }, third[0]!.position, 2)).toEqual([]);
      });

      async function tenantRunsOf(store: Store, tenant: string, minute: number) {
        return start(store, { run_context: { tenant_id: tenant } }, at(minute));
      }

      it('filter by state, root node type and start time, every filter at once', async () => {
        const store = await open();
        const { tenant, runIds } = await tenantRuns(store, [
          { minute: 0, type: 'composite.a' },
          { minute: 1, type: 'composite.b' },
          { minute: 2, type: 'composite.a' },
          { minute: 3, type: 'composite.a' },
        ]);
        const [r0, r1, r2, r3] = runIds as [string, string, string, string];
        await store.mutate(r2, RUN_ONLY, (view) =>
          decideTerminateRun(view, { now: at(4), state: 'canceled', reason: 'run_canceled' }),
        );
        const list = (filter: RunFilter) => store.listRuns({ tenantId: tenant, ...filter }, undefined, 100);
        expect(ids(await list({ states: ['canceled'] }))).toEqual([r2]);
        expect(ids(await list({ states: ['running', 'canceled'] }))).toEqual([r3, r2, r1, r0]);
        expect(ids(await list({ states: ['succeeded'] }))).toEqual([]);
        expect(ids(await list({ rootNodeTypeId: 'composite.a' }))).toEqual([r3, r2, r0]);
        expect((await list({ rootNodeTypeId: 'composite.b' }))[0]?.rootNodeTypeId).toBe('composite.b');
        // From is inclusive, before is exclusive.
        expect(ids(await list({ startedFrom: at(1).getTime() }))).toEqual([r3, r2, r1]);
        expect(ids(await list({ startedBefore: at(1).getTime() }))).toEqual([r0]);
        expect(
          ids(
            await list({
              states: ['running'],
              rootNodeTypeId: 'composite.a',
              startedFrom: at(0).getTime(),
              startedBefore: at(3).getTime() + 1,
            }),
          ),
        ).toEqual([r3, r0]);
        expect(await store.listRuns({ tenantId: uid('tenant') }, undefined, 100)).toEqual([]);
      });

      it('count Runs by state, under the same filters', async () => {
        const store = await open();
        const { tenant, runIds } = await tenantRuns(store, [
          { minute: 0, type: 'composite.a' },
          { minute: 1, type: 'composite.a' },
          { minute: 2, type: 'composite.b' },
        ]);
        await store.mutate(runIds[0]!, RUN_ONLY, (view) =>
          decideTerminateRun(view, { now: at(4), state: 'canceled', reason: 'run_canceled' }),
        );
        const none = { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
        expect(await store.countRuns({ tenantId: tenant })).toEqual({ ...none, running: 2, canceled: 1 });
        expect(await store.countRuns({ tenantId: tenant, rootNodeTypeId: 'composite.a' })).toEqual({
          ...none,
          running: 1,
          canceled: 1,
        });
        expect(await store.countRuns({ tenantId: tenant, startedFrom: at(1).getTime() })).toEqual({
          ...none,
          running: 2,
        });
        expect(await store.countRuns({ tenantId: uid('tenant') })).toEqual(none);
      });

      it('list the NodeRuns of a Run by id, in pages, or only a subtree', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const [a, b] = (await create(store, runId, rootId, [spec('composite.a'), spec('composite.b')])).value;
        const [a1, a2] = (
          await create(store, runId, a!.node_run_id, [spec('atomic.x'), spec('atomic.y')], 'atomic')
        ).value;
        const records = [rootId, a!.node_run_id, b!.node_run_id, a1!.node_run_id, a2!.node_run_id];
        const sorted = [...records].sort();
        const listed = (await store.listNodeRuns(runId, { limit: 100 }))!;
        expect(listed.map((json) => JSON.parse(json).node_run_id)).toEqual(sorted);
        expect(listed[sorted.indexOf(a1!.node_run_id)]).toBe(await store.nodeRunJson(a1!.node_run_id));

        const page = (await store.listNodeRuns(runId, { limit: 2, after: sorted[1] }))!;
        expect(page.map((json) => JSON.parse(json).node_run_id)).toEqual(sorted.slice(2, 4));

        const subtree = (await store.listNodeRuns(runId, { limit: 100, under: a!.node_run_id }))!;
        expect(subtree.map((json) => JSON.parse(json).node_run_id)).toEqual(
          [a!.node_run_id, a1!.node_run_id, a2!.node_run_id].sort(),
        );
        const leaf = (await store.listNodeRuns(runId, { limit: 100, under: a2!.node_run_id }))!;
        expect(leaf.map((json) => JSON.parse(json).node_run_id)).toEqual([a2!.node_run_id]);
        // Not a NodeRun of this Run: an empty subtree.
        expect(await store.listNodeRuns(runId, { limit: 100, under: uid('node_run') })).toEqual([]);
        expect(await store.listNodeRuns(uid('run'), { limit: 100 })).toBeUndefined();
        expect(await store.listNodeRuns(runId, { limit: 100, after: sorted.at(-1) })).toEqual([]);
      });
    });

    describe('events(afterSeq, limit)', () => {
      it('pages through the events in seq order and says when the Run has finished', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        for (let i = 0; i < 8; i++) await store.mutate(runId, RUN_ONLY, appendOne(rootId, { i }));
        const page = async (after: number, limit: number) =>
          seqs((await store.events(runId, after, limit))!.events);
        expect(await page(0, 3)).toEqual([1, 2, 3]);
        expect(await page(3, 3)).toEqual([4, 5, 6]);
        expect(await page(6, 3)).toEqual([7, 8, 9]);
        expect(await page(9, 3)).toEqual([10]);
        expect(await page(10, 3)).toEqual([]);
        expect(await page(50, 3)).toEqual([]);
        expect(await page(4, 1)).toEqual([5]);
        expect(await page(0, 0)).toEqual([]);
        expect(await page(0, 1000)).toEqual(range(1, 10));
        expect(await store.events(runId, 0, 1)).toMatchObject({ lastSeq: 10, finished: false });
        const data = (await store.events(runId, 2, 8))!.events.map((e) => JSON.parse(e.line).data?.i);
        expect(data).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

        // Resuming from the last seq seen yields every event exactly once.
        const collected: number[] = [];
        for (let after = 0; ; ) {
          const next = await page(after, 4);
          if (next.length === 0) break;
          collected.push(...next);
          after = next[next.length - 1]!;
        }
        expect(collected).toEqual(range(1, 10));
        await store.mutate(runId, RUN_ONLY, (view) =>
          decideTerminateRun(view, { now: NOW, state: 'canceled', reason: 'run_canceled' }),
        );
        expect(await store.events(runId, 10, 10)).toMatchObject({ lastSeq: 11, finished: true });
      });
    });

    describe('subscribe', () => {
      it('calls the listener after each commit that appends events to that run, and only then', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const other = await start(store);
        const seenSeqs: Promise<number | undefined>[] = [];
        let calls = 0;
        store.subscribe(runId, () => {
          calls++;
          // The commit is visible to a read started from inside the listener.
          seenSeqs.push(store.events(runId, 0, 0).then((page) => page?.lastSeq));
        });

        await store.mutate(runId, RUN_ONLY, appendOne(rootId));
        expect(calls).toBe(1);
        await store.mutate(runId, RUN_ONLY, () => ({ value: 0 }));
        expect(calls, 'not after a decision without changes').toBe(1);
        await expect(
          store.mutate(runId, RUN_ONLY, () => {
            throw new Error('rejected');
          }),
        ).rejects.toThrow('rejected');
        expect(calls, 'not after a decide that throws').toBe(1);
        await store.mutate(other.runId, RUN_ONLY, appendOne(other.rootId));
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
        await store.mutate(runId, RUN_ONLY, appendOne(rootId));
        stopFirst();
        stopFirst();
        await store.mutate(runId, RUN_ONLY, appendOne(rootId));
        expect([first, second]).toEqual([1, 2]);
        stopSecond();
        await store.mutate(runId, RUN_ONLY, appendOne(rootId));
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
        const result = await store.mutate(runId, RUN_ONLY, appendOne(rootId));
        expect(seqs(result.committed)).toEqual([3]);
        expect(calls).toBe(1);
        const next = await store.mutate(runId, RUN_ONLY, appendOne(rootId));
        expect(seqs(next.committed)).toEqual([4]);
        expect(calls).toBe(2);
      });

      it('a listener can subscribe before the run exists', async () => {
        const store = await open();
        const runId = uid('run');
        let calls = 0;
        store.subscribe(runId, () => calls++);
        await store.mutate(runId, RUN_ONLY, startDecision(runId));
        expect(calls).toBe(1);
      });
    });

    describe('concurrency', () => {
      it('50 concurrent appends on one run get seq 1..50+k exactly once each', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const k = 2;
        const results = await Promise.all(
          range(1, 50).map((i) => store.mutate(runId, RUN_ONLY, appendOne(rootId, { i }))),
        );
        const assigned = results.map((r) => r.committed[0]!.seq);
        expect([...assigned].sort((x, y) => x - y)).toEqual(range(k + 1, k + 50));
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
            store.mutate(runId, nodeRunNeeds(rootId), (view) =>
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
            runs.map((run) => store.mutate(run.runId, RUN_ONLY, appendOne(run.rootId, { i }))),
          ),
        );
        for (const run of runs) expect(seqs(await allEvents(store, run.runId))).toEqual(range(1, 12));
      });

      it('concurrent cancels, expiries and root completions end the Run exactly once', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        await create(store, runId, rootId, [spec('composite.a'), spec('composite.b')]);
        const results = await Promise.all(
          range(1, 30).map((i) =>
            i % 3 === 0
              ? store.mutate(runId, nodeRunNeeds(rootId), (view) =>
                  decideComplete(view, rootId, { state: 'succeeded' }, NOW),
                )
              : store.mutate(runId, RUN_ONLY, (view) =>
                  decideTerminateRun(view, {
                    now: NOW,
                    state: i % 3 === 1 ? 'canceled' : 'failed',
                    reason: i % 3 === 1 ? 'run_canceled' : 'budget_exceeded',
                  }),
                ),
          ),
        );
        const ends = (await allEvents(store, runId)).filter((e) => e.type === 'run_completed');
        expect(ends).toHaveLength(1);
        expect(results.filter((r) => r.committed.some((e) => e.type === 'run_completed'))).toHaveLength(1);
        expect(seqs(await allEvents(store, runId))).toEqual(range(1, 6));
      });

      it('concurrent identical starts create the run exactly once', async () => {
        const store = await open();
        const runId = uid('run');
        const decide = startDecision(runId);
        const results = await Promise.all(range(1, 20).map(() => store.mutate(runId, RUN_ONLY, decide)));
        expect(results.filter((r) => r.committed.length > 0)).toHaveLength(1);
        const run = (await store.getRun(runId))?.run;
        for (const result of results) expect(result.value).toEqual(run);
        expect(seqs(await allEvents(store, runId))).toEqual([1, 2]);
        expect(await peek(store, runId, RUN_ONLY, (view) => view.nodeRunCount())).toBe(1);
      });

      it('concurrent identical creates with one idempotency key create one NodeRun', async () => {
        const store = await open();
        const { runId, rootId } = await start(store);
        const keyed = spec('composite.once', { idempotency_key: 'once', inputs: { x: 1 } });
        const results = await Promise.all(range(1, 20).map(() => create(store, runId, rootId, [keyed])));
        const ids = new Set(results.map((r) => (r.value[0] as NodeRun).node_run_id));
        expect(ids.size).toBe(1);
        expect(results.filter((r) => r.committed.length > 0)).toHaveLength(1);
        expect(await peek(store, runId, RUN_ONLY, (view) => view.nodeRunCount())).toBe(2);
        expect(seqs(await allEvents(store, runId))).toEqual([1, 2, 3, 4]);
        expect((await store.getNodeRun(rootId))?.rounds).toBe(1);
      });
    });
  });
}
