/**
 * MemoryStore: the shared Store contract, plus what only the memory store does: a bound on retained
 * finished Runs (design/coordinator.md §6), evicting the Run that finished longest ago first and
 * never a Run that is still running.
 */
import { describe, expect, it } from 'vitest';
import { decideComplete, nodeRunNeeds } from '../../src/core/completion.js';
import type { RunView } from '../../src/core/model.js';
import { createNeeds, decideCreateNodeRuns } from '../../src/core/node-runs.js';
import { decideStartRun, decideTerminateRun, RUN_ONLY } from '../../src/core/runs.js';
import { MemoryStore } from '../../src/store/memory.js';
import { storeContract } from './store-contract.js';

storeContract('MemoryStore', async () => new MemoryStore({ maxFinishedRuns: 1000 }));

const NOW = new Date('2026-01-01T00:00:00.000Z');

describe('MemoryStore retention of finished runs', () => {
  let ids = 0;

  /** Starts a run with one child under the root; returns its ids. */
  async function startRun(store: MemoryStore, runId: string) {
    const rootId = `node_run_${++ids}`;
    await store.mutate(runId, RUN_ONLY, (view: RunView) =>
      decideStartRun(view, {
        request: {
          run_id: runId,
          root_node_type_ref: { node_type_id: 'composite.root', version: '1' },
          input: {},
        },
        runId,
        rootNodeRunId: rootId,
        rootKind: 'composite',
        now: NOW,
      }),
    );
    const request = {
      run_id: runId,
      parent_node_run_id: rootId,
      node_runs: [{ node_type_ref: { node_type_id: 'atomic.leaf', version: '1' }, inputs: {} }],
    };
    const created = await store.mutate(runId, createNeeds(request), (view) =>
      decideCreateNodeRuns(view, {
        request,
        now: NOW,
        newId: () => `node_run_${++ids}`,
        kindOf: () => 'atomic',
      }),
    );
    return {
      runId,
      rootId,
      childId: created.value[0]!.node_run_id,
      nodeRunIds: [rootId, created.value[0]!.node_run_id],
    };
  }

  /** Finishes a run in one of the three ways a run becomes terminal. */
  async function finish(store: MemoryStore, runId: string, how: 'cancel' | 'complete' | 'expire' = 'cancel') {
    if (how === 'complete') {
      const rootId = (await store.getRun(runId))!.run.root_node_run_id;
      await store.mutate(runId, nodeRunNeeds(rootId), (view) =>
        decideComplete(view, rootId, { state: 'succeeded' }, NOW),
      );
    } else {
      await store.mutate(runId, RUN_ONLY, (view) =>
        decideTerminateRun(view, {
          now: NOW,
          state: how === 'cancel' ? 'canceled' : 'failed',
          reason: how === 'cancel' ? 'run_canceled' : 'budget_exceeded',
        }),
      );
    }
    expect((await store.getRun(runId))?.run.state).not.toBe('running');
  }

  async function isRetained(store: MemoryStore, run: { runId: string; nodeRunIds: string[] }) {
    const present = (await store.getRun(run.runId)) !== undefined;
    for (const id of run.nodeRunIds) {
      expect(await store.locate(id), `locate(${id})`).toBe(present ? run.runId : undefined);
      expect((await store.getNodeRun(id)) !== undefined, `getNodeRun(${id})`).toBe(present);
    }
    return present;
  }

  it('with maxFinishedRuns = 2, finishing a 3rd run evicts the oldest finished one', async () => {
    const store = new MemoryStore({ maxFinishedRuns: 2 });
    const a = await startRun(store, 'run_a');
    const b = await startRun(store, 'run_b');
    const c = await startRun(store, 'run_c');
    const running = await startRun(store, 'run_running');

    await finish(store, 'run_a', 'cancel');
    await finish(store, 'run_b', 'complete');
    expect(await Promise.all([a, b, c, running].map((run) => isRetained(store, run)))).toEqual([
      true,
      true,
      true,
      true,
    ]);

    await finish(store, 'run_c', 'expire');
    expect(await Promise.all([a, b, c, running].map((run) => isRetained(store, run)))).toEqual([
      false,
      true,
      true,
      true,
    ]);
    // The evicted run is gone from reads too.
    expect(await store.getRun('run_a')).toBeUndefined();
    expect(await store.events('run_a', 0, 10)).toBeUndefined();
    expect(await store.locate(a.rootId)).toBeUndefined();
  });

  it('evicts in the order runs finished, not the order they started', async () => {
    const store = new MemoryStore({ maxFinishedRuns: 2 });
    const runs = [
      await startRun(store, 'run_1'),
      await startRun(store, 'run_2'),
      await startRun(store, 'run_3'),
    ];
    await finish(store, 'run_3');
    await finish(store, 'run_1');
    await finish(store, 'run_2');
    expect(await Promise.all(runs.map((run) => isRetained(store, run)))).toEqual([true, true, false]);
  });

  it('never evicts running runs, however many there are', async () => {
    const store = new MemoryStore({ maxFinishedRuns: 2 });
    const running = [];
    for (let i = 0; i < 10; i++) running.push(await startRun(store, `run_live_${i}`));
    const finished = [];
    for (let i = 0; i < 5; i++) {
      finished.push(await startRun(store, `run_done_${i}`));
      await finish(store, `run_done_${i}`);
    }
    expect(await Promise.all(running.map((run) => isRetained(store, run)))).toEqual(running.map(() => true));
    expect(await Promise.all(finished.map((run) => isRetained(store, run)))).toEqual([
      false,
      false,
      false,
      true,
      true,
    ]);
    // A running run that finishes later joins the queue as the newest finished run.
    await finish(store, 'run_live_0');
    expect(await isRetained(store, running[0]!)).toBe(true);
    expect(await isRetained(store, finished[3]!)).toBe(false);
    expect(await isRetained(store, finished[4]!)).toBe(true);
  });

  it('with maxFinishedRuns = 0 a run is dropped as soon as it finishes', async () => {
    const store = new MemoryStore({ maxFinishedRuns: 0 });
    const run = await startRun(store, 'run_once');
    await store.mutate('run_once', RUN_ONLY, (view) =>
      decideTerminateRun(view, { now: NOW, state: 'canceled', reason: 'run_canceled' }),
    );
    expect(await isRetained(store, run)).toBe(false);
  });

  it('reports a throwing listener to onListenerError', async () => {
    const errors: unknown[] = [];
    const store = new MemoryStore({ maxFinishedRuns: 10, onListenerError: (error) => errors.push(error) });
    const failure = new Error('listener failure');
    store.subscribe('run_l', () => {
      throw failure;
    });
    await startRun(store, 'run_l');
    expect(errors).toEqual([failure, failure]);
  });
});

describe('MemoryStore cascades over many NodeRuns', () => {
  /** A Run whose root has `count` queued children; returns its ids. */
  async function bigRun(store: MemoryStore, count: number, runId = 'run_big') {
    const rootId = `${runId}_root`;
    await store.mutate(runId, RUN_ONLY, (view) =>
      decideStartRun(view, {
        request: {
          run_id: runId,
          root_node_type_ref: { node_type_id: 'composite.root', version: '1' },
          input: {},
        },
        runId,
        rootNodeRunId: rootId,
        rootKind: 'composite',
        now: NOW,
      }),
    );
    let next = 0;
    const request = {
      run_id: runId,
      parent_node_run_id: rootId,
      node_runs: Array.from({ length: count }, () => ({
        node_type_ref: { node_type_id: 'atomic.leaf', version: '1' },
        inputs: {},
      })),
    };
    const created = await store.mutate(runId, createNeeds(request), (view) =>
      decideCreateNodeRuns(view, {
        request,
        now: NOW,
        newId: () => `${runId}_${++next}`,
        kindOf: () => 'atomic',
      }),
    );
    return { runId, rootId, childIds: created.value.map((n) => n.node_run_id) };
  }

  it('prepares a large cascade across event-loop turns, commits it at once, and serves other work meanwhile', async () => {
    const store = new MemoryStore({ maxFinishedRuns: 10, cascadeSlice: 100 });
    const { runId, rootId, childIds } = await bigRun(store, 1_000);
    const other = await bigRun(store, 1, 'run_other');

    const completing = store.mutate(runId, nodeRunNeeds(rootId), (view) =>
      decideComplete(view, rootId, { state: 'succeeded' }, NOW),
    );
    let settled = false;
    completing.then(() => {
      settled = true;
    });
    // Work on another Run gets through while the cascade is being prepared...
    await store.mutate(other.runId, RUN_ONLY, (view) =>
      decideTerminateRun(view, { now: NOW, state: 'canceled', reason: 'run_canceled' }),
    );
    expect((await store.getRun(other.runId))?.run.state).toBe('canceled');
    expect(settled, 'the cascade yielded to other work').toBe(false);
    // ...readers of this Run see it as it was before the commit, never half-done...
    expect((await store.getNodeRun(childIds[0]!))?.nodeRun.state).toBe('queued');
    expect((await store.getNodeRun(childIds[999]!))?.nodeRun.state).toBe('queued');
    // ...and a decision on this Run waits for the commit.
    const after = store.mutate(runId, RUN_ONLY, (view) => ({ value: view.liveNodeRunCount() }));
    const done = await completing;
    expect(done.committed.map((e) => e.type)).toEqual(['run_completed']);
    expect((await after).value).toBe(0);
    for (const id of childIds) expect((await store.getNodeRun(id))?.nodeRun.state).toBe('canceled');
  });

  it('a small cascade commits without giving up its turn', async () => {
    const store = new MemoryStore({ maxFinishedRuns: 10, cascadeSlice: 100 });
    const { runId, rootId, childIds } = await bigRun(store, 99);
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    await store.mutate(runId, nodeRunNeeds(rootId), (view) =>
      decideComplete(view, rootId, { state: 'succeeded' }, NOW),
    );
    expect(turned).toBe(false);
    expect((await store.getNodeRun(childIds[0]!))?.nodeRun.state).toBe('canceled');
  });
});
